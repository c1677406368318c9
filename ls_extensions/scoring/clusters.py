"""Diversity in the stream: one task per cluster of near-duplicate images first.

A task's cluster is its image's signature (``signatures.py``), read from the local file (an upload or a
local-files storage, with the export's security rules: ``video.export.sources.resolve_video``) or a data URI,
once per task and kept (``TaskCluster``). A cluster is *covered* when one of its tasks has an annotation or
is locked by another annotator (Label Studio's ``TaskLock``): the stream then passes over its other tasks
while an uncovered cluster has a scored candidate, so neither one annotator nor two working side by side
get near-duplicates back to back.

Cost per next-task request: per window of ``WINDOW`` candidates (the stream's index walk), the clusters of
those tasks (primary-key look-ups; an image is read only the first time a task is a candidate) and one
indexed query for which of those clusters are covered; at most ``MAX_WINDOWS`` windows, then the plain
uncertainty order. Independent of the project's size: the same at 100k tasks as at 100.
"""

import base64
import binascii
import io
import logging

from django.db import OperationalError
from django.db.models import Q
from django.utils import timezone

from ls_extensions.scoring import signatures
from ls_extensions.scoring.models import ScoringPolicy, TaskCluster

logger = logging.getLogger(__name__)

WINDOW = 50
MAX_WINDOWS = 10
BACKFILL = 200


def _image_keys(project):
    return [key for key, tag in (project.data_types or {}).items() if str(tag).lower() == 'image']


def _open_image(project, url):
    """A PIL image of a task's image URL when it is a local file this project may read or a data URI."""
    from PIL import Image

    from ls_extensions.video.export.errors import MalformedVideoUrl
    from ls_extensions.video.export.sources import resolve_video

    if not isinstance(url, str):
        return None
    if url.startswith('data:image/'):
        try:
            return Image.open(io.BytesIO(base64.b64decode(url.split(',', 1)[1], validate=False)))
        except (IndexError, binascii.Error, OSError):
            return None
    try:
        path = resolve_video(project, url)  # any local file of the project, by the export's rules
    except MalformedVideoUrl:
        return None
    return Image.open(path) if path is not None else None


def cluster_of(project, task_data):
    """The signature of the task's image, or None when it cannot be read here."""
    for key in _image_keys(project):
        try:
            image = _open_image(project, (task_data or {}).get(key))
            if image is None:
                continue
            image.draft('L', (signatures.SIDE * 8, signatures.SIDE * 8))  # JPEG: decode at a fraction of the size
            return signatures.signature_of(signatures.thumbnail(image.convert('L')))
        except (OSError, ValueError) as error:  # an unreadable image is a task without a cluster
            logger.info('no image signature for a task of project %s: %s', project.id, error)
    return None


def ensure(project, task_ids):
    """{task id: cluster} for ``task_ids``, computing (and keeping) the clusters not known yet."""
    from tasks.models import Task

    known = dict(TaskCluster.objects.filter(task_id__in=task_ids).values_list('task_id', 'cluster'))
    missing = [i for i in task_ids if i not in known]
    if missing:
        found = {t.id: cluster_of(project, t.data) for t in Task.objects.filter(id__in=missing).only('id', 'data')}
        rows = [TaskCluster(task_id=i, project_id=project.id, cluster=c) for i, c in found.items()]
        try:
            TaskCluster.objects.bulk_create(rows, ignore_conflicts=True)
        except OperationalError as error:  # a busy SQLite: keep them for this request, store them next time
            logger.info('task clusters of project %s not stored now: %s', project.id, error)
        known.update(found)
    return known


def backfill_annotated(project, policy):
    """Clusters for annotated tasks that have none (annotated before diversity was on, or imported with
    annotations), ``BACKFILL`` per request until none is left, so that their clusters count as covered."""
    if policy.clusters_backfilled:
        return
    from tasks.models import Task

    without = Task.objects.filter(project_id=project.id, annotations__isnull=False, ls_ext_cluster__isnull=True)
    ids = list(without.values_list('id', flat=True).distinct()[:BACKFILL])
    ensure(project, ids)
    if len(ids) < BACKFILL:
        ScoringPolicy.objects.filter(pk=policy.pk).update(clusters_backfilled=True)
        policy.clusters_backfilled = True


def annotation_saved(annotation):
    """A new annotation's task gets its cluster now when the project's stream is diverse."""
    if ScoringPolicy.objects.filter(project_id=annotation.project_id, diverse=True).exists():
        ensure(annotation.project, [annotation.task_id])


def covered(project_id, clusters, user):
    """The clusters among ``clusters`` that hold an annotated task or one locked by another annotator."""
    if not clusters:
        return set()
    rows = TaskCluster.objects.filter(project_id=project_id, cluster__in=clusters)
    locked = Q(task__locks__expire_at__gt=timezone.now()) & ~Q(task__locks__user=user)
    return set(rows.filter(Q(task__annotations__isnull=False) | locked).values_list('cluster', flat=True).distinct())


def first_of_a_new_cluster(scored, project, user, policy):
    """The most uncertain unlocked task of ``scored`` (in its order) whose cluster is not covered, or None."""
    from projects.functions.next_task import _get_first_unlocked

    backfill_annotated(project, policy)
    for start in range(0, WINDOW * MAX_WINDOWS, WINDOW):
        ids = list(scored.values_list('id', flat=True)[start : start + WINDOW])
        if not ids:
            return None
        by_task = ensure(project, ids)
        taken = covered(project.id, {c for c in by_task.values() if c is not None}, user)
        fresh = [i for i in ids if by_task.get(i) is None or by_task[i] not in taken]
        if fresh:
            task = _get_first_unlocked(scored.filter(id__in=fresh), user)
            if task is not None:
                return task
    return None
