"""The enforced Content-Security-Policy of the offline overlay (django-csp 3.x settings)."""

import os

from ls_extensions.privacy.egress_rules import ALLOWED_HOSTS_ENV, parse_allow_list

SELF = "'self'"


def allowed_sources(environ=os.environ):
    """CSP host sources for the user's allow-list; IP networks have no CSP form and are left out."""
    sources = []
    for rule in parse_allow_list(environ.get(ALLOWED_HOSTS_ENV, '')):
        if rule.network is not None:
            if rule.network.num_addresses != 1:
                continue
            address = rule.network.network_address
            host = f'[{address}]' if address.version == 6 else str(address)
        else:
            host = rule.host or '*' + rule.suffix
        sources.append(f'{host}:{rule.port}' if rule.port else host)
    return tuple(sources)


def offline_policy(environ=os.environ):
    """Every fetch directive is 'self' plus allowed hosts; inline code stays allowed because
    Label Studio's templates rely on it (this policy is about where data goes, not about XSS)."""
    hosts = allowed_sources(environ)
    return {
        'CSP_REPORT_ONLY': False,
        'CSP_REPORT_URI': None,
        'CSP_INCLUDE_NONCE_IN': [],
        'CSP_DEFAULT_SRC': (SELF, *hosts),
        'CSP_SCRIPT_SRC': (SELF, "'unsafe-inline'", "'unsafe-eval'", 'blob:', *hosts),
        'CSP_STYLE_SRC': (SELF, "'unsafe-inline'", *hosts),
        'CSP_IMG_SRC': (SELF, 'data:', 'blob:', *hosts),
        'CSP_MEDIA_SRC': (SELF, 'data:', 'blob:', *hosts),
        'CSP_FONT_SRC': (SELF, 'data:', *hosts),
        'CSP_CONNECT_SRC': (SELF, *hosts),
        'CSP_WORKER_SRC': (SELF, 'blob:'),
        'CSP_FRAME_SRC': (SELF, *hosts),
        'CSP_OBJECT_SRC': ("'none'",),
        'CSP_FORM_ACTION': (SELF,),
    }
