"""Label Studio's SSRF block list with loopback taken out, so a model server on the same machine works.

Label Studio (1.23) checks ML backend URLs, the webhook it creates at ``<backend>/webhook`` and
every request to them against one list of banned networks (``core/utils/io.py:validate_ip``). A
backend on 127.0.0.1 is refused unless that list allows loopback. Rather than switching SSRF
protection off (``SSRF_PROTECTION_ENABLED=False`` / ``ML_BLOCK_LOCAL_IP=False``, which would also open
private networks and the cloud metadata address), the settings overlay replaces the default list
with the same list minus loopback:

    from ls_extensions.ml_backend.ssrf import BANNED_SUBNETS_EXCEPT_LOOPBACK
    USE_DEFAULT_BANNED_SUBNETS = False
    USER_ADDITIONAL_BANNED_SUBNETS = [*BANNED_SUBNETS_EXCEPT_LOOPBACK, *USER_ADDITIONAL_BANNED_SUBNETS]

Our egress guard still limits every non-loopback destination to the allow-list. A test compares
this list with the one in the installed Label Studio, so an upgrade that changes it is noticed.
"""

LOOPBACK_SUBNETS = ('127.0.0.0/8', '::1/128')

LABEL_STUDIO_DEFAULT_BANNED_SUBNETS = (
    '0.0.0.0/8',
    '10.0.0.0/8',
    '100.64.0.0/10',
    '127.0.0.0/8',
    '169.254.0.0/16',
    '172.16.0.0/12',
    '192.0.0.0/24',
    '192.0.2.0/24',
    '192.88.99.0/24',
    '192.168.0.0/16',
    '198.18.0.0/15',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '224.0.0.0/4',
    '233.252.0.0/24',
    '240.0.0.0/4',
    '255.255.255.255/32',
    '::/128',
    '::1/128',
    '::ffff:0:0/96',
    '::ffff:0:0:0/96',
    '64:ff9b::/96',
    '64:ff9b:1::/48',
    '100::/64',
    '2001:0000::/32',
    '2001:20::/28',
    '2001:db8::/32',
    '2002::/16',
    'fc00::/7',
    'fe80::/10',
    'ff00::/8',
)

BANNED_SUBNETS_EXCEPT_LOOPBACK = [s for s in LABEL_STUDIO_DEFAULT_BANNED_SUBNETS if s not in LOOPBACK_SUBNETS]


def env():
    """The same as environment variables (for a ``label-studio start`` without our overlay change)."""
    return {
        'LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS': 'false',
        'LABEL_STUDIO_USER_ADDITIONAL_BANNED_SUBNETS': ','.join(BANNED_SUBNETS_EXCEPT_LOOPBACK),
    }
