"""The retraining settings (``LS_EXT_RETRAINING_*``): timing of the steps, lost-step detection, retries."""

from ls_extensions.conf import Setting

POLL_SECONDS = Setting('LS_EXT_RETRAINING_POLL_SECONDS', float, 5.0, minimum=0, help='between two training polls')
STALE_SECONDS = Setting('LS_EXT_RETRAINING_STALE_SECONDS', float, 300.0, minimum=0, help='a step this late was lost')
RETRY_SECONDS = Setting('LS_EXT_RETRAINING_RETRY_SECONDS', float, 5.0, minimum=0, help='back-off base after an error')
MAX_RETRIES = Setting('LS_EXT_RETRAINING_MAX_RETRIES', int, 4, minimum=0, help='retries in a run; failed runs in a row')
SWEEP_SECONDS = Setting('LS_EXT_RETRAINING_SWEEP_SECONDS', float, 60.0, minimum=0.1, help='the sweep on Celery beat')
