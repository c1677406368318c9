"""Where scoring jobs run (``LS_EXT_SCORING_RUNNER``): on Celery after commit, or inline in the caller."""

from django.db import transaction

from ls_extensions.scoring import conf


def runner():
    """'celery' (web and worker processes) or 'inline' (the caller runs the job: tests, scripts)."""
    return conf.RUNNER.get()


def after_commit(fn):
    """Run ``fn`` once the current transaction commits; the inline runner runs it now."""
    if runner() == 'inline':
        fn()
    else:
        transaction.on_commit(fn)
