"""The egress guard's socket hooks: the patches of the ``socket`` module that hand each outbound attempt to ``Guard.check``.

What is checked: forward look-ups (``getaddrinfo``, ``gethostbyname[_ex]``), reverse look-ups
(``gethostbyaddr``, ``getnameinfo`` unless numeric), ``connect``/``connect_ex``, and the calls
that carry their own destination (``sendto`` with or without flags, ``sendmsg`` with an
address). An address an allowed name resolved to is let through only on the port of the rule
that allowed the name, and only for ``RESOLUTION_SECONDS`` after the look-up.

What is not seen, on purpose or by necessity:

- ``send``/``sendall``/``sendfile``/``sendmsg`` without an address go to the peer of a connected
  socket, whose ``connect`` was checked; ``sendmsg_afalg`` talks to the kernel's crypto API
  (``AF_ALG``), not to a network.
- Families other than IPv4/IPv6 (``AF_UNIX`` stays on the machine; ``AF_PACKET`` raw sockets
  need root, which none of our processes has).
- Code in C that opens its own sockets (libpq under psycopg2, hiredis): only the configured
  database, broker and cache use such clients, and their hosts are allowed at start-up.
- Other programs (a subprocess running ``curl``) and functions bound before the guard was
  installed (``from socket import getaddrinfo`` in a module imported before our settings).

``egress.install`` is the one caller of ``patch_socket``, once per process.
"""

import socket

from ls_extensions.privacy.egress_rules import as_ip, is_loopback


def _address_host_port(address):
    if isinstance(address, tuple) and len(address) >= 2:
        return address[0], address[1]
    return None, None  # AF_UNIX paths and the like stay on this machine


def _inet(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def patch_socket(guard):
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex
    original_gethostbyaddr = socket.gethostbyaddr
    original_getnameinfo = socket.getnameinfo
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_sendmsg = socket.socket.sendmsg

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        is_name = as_ip(host) is None  # an address literal needs no look-up; connect() checks it
        if is_name:
            guard.check('dns', host, port)
        results = original_getaddrinfo(host, port, *args, **kwargs)
        if is_name and not is_loopback(host):
            guard.remember_resolution(host, port, results)
        return results

    def gethostbyname(host):
        if as_ip(host) is None:
            guard.check('dns', host, None)
        return original_gethostbyname(host)

    def gethostbyname_ex(host):
        if as_ip(host) is None:
            guard.check('dns', host, None)
        return original_gethostbyname_ex(host)

    def gethostbyaddr(host):
        # a reverse look-up sends the address to the resolver; a name is resolved forward first
        guard.check('rdns', host, None)
        return original_gethostbyaddr(host)

    def getnameinfo(sockaddr, flags):
        # CPython accepts only numeric hosts here; with NI_NUMERICHOST nothing is looked up
        if not flags & socket.NI_NUMERICHOST and isinstance(sockaddr, tuple) and sockaddr:
            guard.check('rdns', sockaddr[0], None)
        return original_getnameinfo(sockaddr, flags)

    def connect(self, address):
        if _inet(self):
            guard.check('connect', *_address_host_port(address))
        return original_connect(self, address)

    def connect_ex(self, address):
        if _inet(self):
            guard.check('connect', *_address_host_port(address))
        return original_connect_ex(self, address)

    def sendto(self, data, *args):
        # sendto(data, address) and sendto(data, flags, address): the address is always last
        if _inet(self) and args:
            guard.check('sendto', *_address_host_port(args[-1]))
        return original_sendto(self, data, *args)

    def sendmsg(self, buffers, *args):
        # sendmsg(buffers[, ancdata[, flags[, address]]]): without an address it goes to the connected peer
        if _inet(self) and len(args) >= 3 and args[2] is not None:
            guard.check('sendmsg', *_address_host_port(args[2]))
        return original_sendmsg(self, buffers, *args)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.getnameinfo = getnameinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.socket.sendmsg = sendmsg
