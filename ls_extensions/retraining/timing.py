"""When the retraining steps run: the ``LS_EXT_RETRAINING_*`` timing settings, back-off, time budgets."""

import os

from django.utils import timezone

from ls_extensions.retraining import conf


def poll_seconds():
    return conf.POLL_SECONDS.get()


def stale_seconds():
    """A step not taken for this long was lost (worker killed, message dropped): ``sweep`` publishes it again."""
    return conf.STALE_SECONDS.get()


def retry_seconds(attempt):
    """Back-off before retry ``attempt`` (1, 2, ...) after a connection error: base * 2^(attempt-1), at most 10 min."""
    base = conf.RETRY_SECONDS.get()
    return min(base * 2 ** max(attempt - 1, 0), 600.0)


def max_retries():
    """Connection errors retried within one run, and failed runs retried in a row before the policy stops."""
    return conf.MAX_RETRIES.get()


# Label Studio's timeout for /setup, /train and /predict (`ml.api_connector.TIMEOUT_PREDICT`), from the same
# variable: raised for long videos (README, "Videos in the learning loop"), a step's heartbeat follows it
LABEL_STUDIO_BACKEND_TIMEOUT = float(os.environ.get('ML_TIMEOUT_PREDICT', 100))
BACKEND_CALL_SECONDS = LABEL_STUDIO_BACKEND_TIMEOUT + 50

POLL_CALL_SECONDS = 30  # a poll's calls (/training, /versions) time out after 10 s each


def seconds_since(moment):
    return round((timezone.now() - moment).total_seconds(), 2) if moment else None
