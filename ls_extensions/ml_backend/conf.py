"""The ML backend settings: the backends the operator lists, and whether our URL check replaces Label Studio's.

Both are set by the overlay from ``LS_EXT_ML_BACKEND_URLS`` (``ssrf.ml_backend_settings``, which refuses an
entry it cannot parse); ``LS_EXT_ML_URL_CHECK`` is derived, never set by hand.
"""

from ls_extensions.conf import Setting

BACKEND_URLS = Setting('LS_EXT_ML_BACKEND_URLS', tuple, (), help='ML backends allowed on loopback or the LAN')
URL_CHECK = Setting('LS_EXT_ML_URL_CHECK', bool, False, help="our check of /api/ml URLs instead of Label Studio's")
