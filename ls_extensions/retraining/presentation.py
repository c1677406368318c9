"""A training run as a user reads it: its kind in words, its metrics as labelled values.

Pure (no Django): the page and its tests share it. A run's ``metrics`` mixes what the model server
reported (loss, mAP, images, its own message) with our bookkeeping (polls, rescans); only the first
kind is shown, and a finished run never shows the progress it had mid-run.
"""

import math

PREDICT_ONLY_TITLE = 'Pre-annotation with the served model'
PREDICT_ONLY_HELP = (
    'Started when automatic retraining was switched on: every unlabeled task gets a prediction of the model '
    'version the backend serves now, and the project then uses that version. No training.'
)

# bookkeeping of the run steps: never shown
HIDDEN = {'predict_only', 'progress', 'unreachable_polls', 'rescans', 'backend_message', 'rejected'}


def _number(value, digits=3):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f'{value:.{digits}f}'.rstrip('0').rstrip('.')


def _seconds(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    if value < 60:
        return f'{_number(value, 2 if value < 1 else 1)} s'
    minutes, seconds = divmod(int(round(value)), 60)
    return f'{minutes} min {seconds} s'


def _map_change(metrics):
    before, after = metrics.get('map_before'), metrics.get('map_after')
    if before is None and after is None:
        return None
    return f'{_number(before) if before is not None else "–"} → {_number(after) if after is not None else "–"}'


def _images(metrics):
    train, held_out = metrics.get('train_images'), metrics.get('eval_images')
    if train is None and held_out is None:
        return None
    text = f'{_number(train or 0)} trained on'
    if held_out:
        text += f', {_number(held_out)} held out for mAP'
    return text


# (label, function of the metrics returning the shown value or None), in the order shown
SHOWN = [
    ('Loss', lambda m: _number(m['loss'], 4) if m.get('loss') is not None else None),
    ('mAP@0.5 before → after', _map_change),
    ('Images', _images),
    ('Epochs', lambda m: _number(m['epochs'], 2) if m.get('epochs') is not None else None),
    ('Seconds per epoch', lambda m: _seconds(m['seconds_per_epoch']) if m.get('seconds_per_epoch') else None),
    ('Training took', lambda m: _seconds(m['training_seconds']) if m.get('training_seconds') is not None else None),
    ('Run took', lambda m: _seconds(m['run_seconds']) if m.get('run_seconds') is not None else None),
    (
        'Tasks without a prediction',
        lambda m: _number(m['tasks_without_prediction']) if m.get('tasks_without_prediction') else None,
    ),
]
KNOWN = HIDDEN | {
    'loss',
    'map_before',
    'map_after',
    'train_images',
    'eval_images',
    'epochs',
    'seconds_per_epoch',
    'training_seconds',
    'run_seconds',
    'tasks_without_prediction',
    'train_seconds',  # the model server's own clock of the same training: "Training took" says it
}


def readable_metrics(metrics, finished):
    """[(label, value)] for the page. Mid-run: the latest progress the backend reported (epoch, loss)."""
    metrics = metrics or {}
    rows = []
    if not finished and isinstance(metrics.get('progress'), dict) and metrics['progress']:
        progress = metrics['progress']  # the backend's own report: anything else is not shown
        epoch, epochs = progress.get('epoch'), progress.get('epochs')
        if epoch is not None:
            rows.append(('Epoch', f'{_number(epoch)} of {_number(epochs)}' if epochs else _number(epoch)))
        if progress.get('loss') is not None:
            rows.append(('Loss so far', _number(progress['loss'], 4)))
        return rows
    for label, shown in SHOWN:
        value = shown(metrics)
        if value is not None:
            rows.append((label, value))
    for key in sorted(set(metrics) - KNOWN):  # an adapter's own numbers, by their name
        value = metrics[key]
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((key.replace('_', ' ').capitalize(), _number(value)))
    return rows


def run_title(trigger, metrics):
    """What started the run, in words: the pre-annotation run is named for what it does."""
    if (metrics or {}).get('predict_only'):
        return PREDICT_ONLY_TITLE
    return trigger


def backend_message(metrics):
    """The model server's own note on its training job (e.g. why no mAP was measured), or ''."""
    return str((metrics or {}).get('backend_message') or '')
