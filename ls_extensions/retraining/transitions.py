"""The run's status moves: one table of the allowed transitions and the one conditional UPDATE that makes them.

A step moves a run on with ``transition(run_id, from_status, to_status, **fields)``: an UPDATE of the run
``WHERE status = from_status`` (and any ``where`` conditions, e.g. a heartbeat compare-and-swap), so of two
deliveries of a step one wins and the other gets False. A pair not in :data:`ALLOWED` raises ValueError.
"""

from ls_extensions.retraining.models import TrainingRun

QUEUED, REQUESTING, TRAINING = TrainingRun.QUEUED, TrainingRun.REQUESTING, TrainingRun.TRAINING
PREDICTING, SUCCEEDED, FAILED = TrainingRun.PREDICTING, TrainingRun.SUCCEEDED, TrainingRun.FAILED
REJECTED = TrainingRun.REJECTED

UNFINISHED = (QUEUED, REQUESTING, TRAINING, PREDICTING)  # every status a run can fail from

ALLOWED = frozenset(
    {
        (QUEUED, REQUESTING),  # begin_training claims the step
        (REQUESTING, REQUESTING),  # a lost delivery's claim (stale heartbeat) taken over
        (REQUESTING, QUEUED),  # unclaimed: the backend was not reached, the step is retried
        (REQUESTING, TRAINING),  # the backend took the training request
        (REQUESTING, PREDICTING),  # a predict-only run: straight to re-prediction
        (TRAINING, PREDICTING),  # a new version: re-predict the unlabeled tasks
        (TRAINING, SUCCEEDED),  # a new version, no re-prediction
        (PREDICTING, SUCCEEDED),  # every batch predicted
        (TRAINING, REJECTED),  # the backend's gate kept the served version (the new one was worse)
        *((status, FAILED) for status in UNFINISHED),
    }
)


def transition(run_id, from_status, to_status, *, where=None, **fields):
    """Move run ``run_id`` from ``from_status`` (one status, or a tuple of them) to ``to_status``, setting ``fields``.

    True if this call moved it; False if the run was not (or no longer) in ``from_status`` or did not match
    ``where`` (another delivery won). A move not in :data:`ALLOWED` raises ValueError, before any query.
    """
    sources = (from_status,) if isinstance(from_status, str) else tuple(from_status)
    refused = [(source, to_status) for source in sources if (source, to_status) not in ALLOWED]
    if refused or not sources:
        raise ValueError(f'training run status move not allowed: {refused or (from_status, to_status)}')
    status = {'status': sources[0]} if len(sources) == 1 else {'status__in': sources}
    runs = TrainingRun.objects.filter(pk=run_id, **status, **(where or {}))
    return bool(runs.update(status=to_status, **fields))
