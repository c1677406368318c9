"""Exporting a model's predictions instead of the annotations: which model version, and which results of a task.

The rest of the export does not change with the source: the same task dicts (`predictions` in place of
`annotations`, as Label Studio's own export JSON has them), the same track validation, frame rule and
writers. What is particular to predictions lives here:
- `with_model_version`: the version to export, checked before any task is read (a 400 when it has no
  predictions, never an empty file): the one asked for, else the project's `model_version` when predictions
  carry it, else the version of the newest prediction. (Label Studio's `project.model_version` often holds
  an ML backend's title rather than a version its predictions carry, hence the fallback.)
- `results_of`: a task's annotations (not cancelled) or its predictions of that version;
- `unpredicted_reason`: why a task without such a prediction is skipped (listed like other skipped tasks);
- `score_of`: a track's confidence, the region's `score` (our model server writes one per track), else the
  prediction's.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .errors import NoPredictions
from .options import ANNOTATIONS, PREDICTIONS, ExportOptions


def _version_filter(version: str):
    """Label Studio stores "no version" as '' or NULL: both are the version ''."""
    from django.db.models import Q

    return Q(model_version=version) | Q(model_version__isnull=True) if version == '' else Q(model_version=version)


def _project_predictions(project):
    from tasks.models import Prediction

    return Prediction.objects.filter(task__project=project)


def resolve_model_version(project, requested: str | None) -> str:
    """The model version whose predictions to export; `NoPredictions` (400) when there are none of it."""
    predictions = _project_predictions(project)
    if requested is not None:
        if not predictions.filter(_version_filter(requested)).exists():
            known = _known_versions(predictions)
            raise NoPredictions(
                f'project {project.id} has no predictions of model version {requested[:200]!r}'
                + (f'; versions with predictions: {", ".join(repr(v) for v in known)}' if known else ''),
                model_versions=known,
            )
        return requested
    current = project.model_version or ''
    if current and predictions.filter(_version_filter(current)).exists():
        return current
    newest = predictions.order_by('-id').values('model_version').first()  # a row: its version may be NULL
    if newest is None:
        raise NoPredictions(
            f'project {project.id} has no predictions to export (retrieve them first: Data Manager, '
            '"Retrieve Predictions"), or export source=annotations',
            model_versions=[],
        )
    return newest['model_version'] or ''


def _known_versions(predictions, most: int = 20) -> list[str]:
    """A few versions that do have predictions, newest first, for the 400's message (one grouped query)."""
    from django.db.models import Max

    rows = predictions.values('model_version').annotate(newest=Max('id')).order_by('-newest')[: most + 1]
    versions: list[str] = []
    for row in rows:
        version = row['model_version'] or ''  # NULL and '' are one version
        if version not in versions:
            versions.append(version)
    return versions[:most]


def with_model_version(project, options: ExportOptions) -> ExportOptions:
    """The options with the predictions' model version resolved (unchanged for the annotations source)."""
    if options.source != PREDICTIONS:
        return options
    return replace(options, model_version=resolve_model_version(project, options.model_version))


def predictions_of_version(queryset, version: str):
    """A Prediction queryset narrowed to one model version ('' includes NULL)."""
    return queryset.filter(_version_filter(version))


def results_of(task: dict, options: ExportOptions) -> list[dict]:
    """The result holders the tracks come from: non-cancelled annotations, or predictions of the version.

    A snapshot made without predictions lists their ids only (ints): those hold no tracks.
    """
    holders = task.get(options.source) or []
    if not isinstance(holders, list):
        return []
    holders = [h for h in holders if isinstance(h, dict) and not h.get('was_cancelled')]
    if options.source == ANNOTATIONS:
        return holders
    version = options.model_version or ''
    return [h for h in holders if (h.get('model_version') or '') == version]


def unpredicted_reason(task: dict, options: ExportOptions) -> str:
    """Why a task is skipped by a predictions export: it has no prediction of the model version."""
    reason = f'it has no prediction of model version {options.model_version!r}'
    if any(not isinstance(p, dict) for p in task.get(PREDICTIONS) or []):
        reason += ' (the snapshot lists prediction ids only: create it with predictions included)'
    return reason


def score_of(result: dict, holder: dict, options: ExportOptions) -> float | None:
    """A predicted track's confidence: its region's `score`, else its prediction's; None for annotations."""
    if options.source != PREDICTIONS:
        return None
    for score in (result.get('score'), holder.get('score')):
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            return float(score)
    return None
