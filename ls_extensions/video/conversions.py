"""Snapshot conversions into our video formats: run by a Celery worker, restarted when a worker dies.

`request_conversion` (the convert view) creates Label Studio's `ConvertedFormat` (status `created`, the
snapshot list shows it) and our `VideoConversion` (options, heartbeat) in one transaction and publishes
`ls_ext_video.convert_snapshot` after commit. The task `claim`s the conversion (`created` ->
`in_progress`, attempts + 1), converts while stamping `heartbeat_at`, and stores the result only while
its claim is still the latest one. A conversion without progress for `stale_seconds()` (its worker was
killed, its message lost, the broker down at publish) is restarted: by `sweep` (beat, and when a worker
starts) or by a new convert request for the same snapshot and format. Restarted `MAX_RESTARTS` times
by the sweep, it fails with that reason instead of looping.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from datetime import timedelta

import ijson
from data_export.models import ConvertedFormat
from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from ls_extensions import publishing

from . import conf
from .export.building import build_export
from .export.catalogue import require_format
from .export.errors import VideoExportError
from .export.options import ExportOptions
from .export.streaming import export_file_name, write_export_file
from .models import VideoConversion

logger = logging.getLogger(__name__)

STALE_SETTING = conf.CONVERSION_STALE_SECONDS.name
MAX_RESTARTS = 3  # by the sweep, in a row; a new convert request starts counting again


def stale_seconds() -> float:
    """No progress for this long: the conversion's worker is presumed dead and the conversion restarted."""
    return conf.CONVERSION_STALE_SECONDS.get()


def heartbeat_seconds() -> float:
    """How often a running conversion stamps its heartbeat (a fifth of the staleness window)."""
    return stale_seconds() / 5


class AlreadyConverting(VideoExportError):
    """A conversion of this snapshot into this format exists and is not stale (or is done)."""


class ConversionLost(Exception):
    """This worker's claim is no longer the latest (the conversion was restarted): stop, store nothing."""


Status = ConvertedFormat.Status


# ---------------------------------------------------------------- publishing


def publish_conversion(converted_id: int) -> bool:
    """Publish the conversion task now; a broker that is down is logged, never raised (`sweep` publishes it)."""
    return _publish('convert_snapshot', converted_id)


def publish_sweep() -> bool:
    return _publish('sweep_conversions')


TASK_NAMES = {
    'convert_snapshot': 'ls_ext_video.convert_snapshot',
    'sweep_conversions': 'ls_ext_video.sweep_conversions',
}


def _publish(task_name: str, *args) -> bool:
    """By the Celery name (``tasks.py`` imports this module, never the other way); KeyError for a wrong name."""
    return publishing.publish_named(TASK_NAMES[task_name], *args)


# ---------------------------------------------------------------- the convert request


def _is_stale(heartbeat, now) -> bool:
    return heartbeat is None or (now - heartbeat).total_seconds() > stale_seconds()


def request_conversion(snapshot, export_type: str, options: dict, user):
    """The `ConvertedFormat` that will hold `snapshot` in `export_type`, published to a worker after commit.

    A conversion of the same snapshot and format that is completed, or running with a recent heartbeat,
    is refused (`AlreadyConverting`, 400, as Label Studio refuses a second conversion); a stale one is
    restarted with these options.
    """
    now = timezone.now()
    with transaction.atomic():
        existing = (
            ConvertedFormat.objects.select_for_update()
            .filter(export=snapshot, export_type=export_type)
            .exclude(status=Status.FAILED)
            .order_by('-id')
            .first()
        )
        if existing is None:
            converted = ConvertedFormat.objects.create(
                export=snapshot,
                export_type=export_type,
                project=snapshot.project,
                organization=snapshot.project.organization,
                created_by=user,
            )
            VideoConversion.objects.create(converted_format=converted, options=options, heartbeat_at=now)
        else:
            converted = existing
            _restart_for_request(existing, options, now)
        transaction.on_commit(lambda: publish_conversion(converted.id))
    return converted


def _restart_for_request(existing, options: dict, now) -> None:
    conversion = VideoConversion.objects.filter(converted_format=existing).first()
    # a conversion from before conversions ran on workers has no row of ours: its age is its heartbeat
    heartbeat = conversion.heartbeat_at if conversion else (existing.updated_at or existing.created_at)
    if existing.status == Status.COMPLETED:
        raise AlreadyConverting(
            f'{existing.export_type} is already converted: GET exports/{existing.export_id}/download'
            f'?exportType={existing.export_type}',
            converted_format=existing.id,
        )
    if not _is_stale(heartbeat, now):
        since = f', last progress {(now - heartbeat).total_seconds():.0f} s ago' if heartbeat else ''
        raise AlreadyConverting(
            f'Conversion to {existing.export_type} already started ({existing.status}{since}); a conversion '
            f'without progress for {stale_seconds():.0f} s ({STALE_SETTING}) is restarted',
            converted_format=existing.id,
        )
    if conversion is None:
        conversion = VideoConversion.objects.create(converted_format=existing, options=options, heartbeat_at=now)
    VideoConversion.objects.filter(pk=conversion.pk).update(options=options, heartbeat_at=now, restarts=0)
    existing.status, existing.traceback = Status.CREATED, None
    existing.save(update_fields=['status', 'traceback'])
    logger.warning(
        'video conversion %s: no progress since %s, restarted by a new convert request', existing.id, heartbeat
    )


# ---------------------------------------------------------------- the worker side


def claim(converted_id: int) -> VideoConversion | None:
    """`created` -> `in_progress` for this worker (attempts + 1); None if it is not waiting for a worker."""
    with transaction.atomic():
        if not ConvertedFormat.objects.filter(pk=converted_id, status=Status.CREATED).update(status=Status.IN_PROGRESS):
            return None
        if not VideoConversion.objects.filter(converted_format_id=converted_id).update(
            attempts=F('attempts') + 1, heartbeat_at=timezone.now()
        ):  # not one of ours (no options to run it with): left as it was
            transaction.set_rollback(True)
            return None
    return (
        VideoConversion.objects.select_related('converted_format__export__project')
        .filter(converted_format_id=converted_id)
        .first()
    )


class Heartbeat:
    """Stamps `heartbeat_at` at most every `heartbeat_seconds()`; raises `ConversionLost` once not the owner."""

    def __init__(self, conversion: VideoConversion):
        self.pk, self.attempt = conversion.pk, conversion.attempts
        self.last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last < heartbeat_seconds():
            return
        self.last = time.monotonic()
        try:
            owned = VideoConversion.objects.filter(
                pk=self.pk, attempts=self.attempt, converted_format__status=Status.IN_PROGRESS
            ).update(heartbeat_at=timezone.now())
        except DatabaseError:  # a busy database is no reason to stop converting
            logger.warning('video conversion %s: heartbeat not stamped', self.pk, exc_info=True)
            return
        if not owned:
            raise ConversionLost(f'video conversion {self.pk}: attempt {self.attempt} is no longer the owner')


class _BeatingFile:
    """The output file, stamping the heartbeat on writes (the writers write often; stamps are rate-limited)."""

    def __init__(self, file, beat: Heartbeat):
        self._file, self._beat = file, beat

    def write(self, data):
        self._beat()
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


def snapshot_tasks(file, options: ExportOptions, beat=lambda: None):
    """Tasks of a snapshot's JSON file, read incrementally, filtered like the API's."""
    wanted = set(options.task_ids) if options.task_ids is not None else None
    for task in ijson.items(file, 'item', use_float=True):
        beat()
        if wanted is not None and task.get('id') not in wanted:
            continue
        if options.only_annotated and not task.get('annotations'):
            continue
        yield task


def run_conversion(converted_id: int) -> bool:
    """The task's work: claim, convert, store. True when this call completed the conversion.

    A refusal (`VideoExportError`, e.g. a video too long) or crash marks the conversion failed with the
    reason; a lost claim stores nothing (the newer attempt does).
    """
    from .serializers import VideoFrameOptionsSerializer

    conversion = claim(converted_id)
    if conversion is None:
        logger.info('video conversion %s: not waiting for a worker (done, or claimed by another)', converted_id)
        return False
    converted = conversion.converted_format
    beat = Heartbeat(conversion)
    try:
        chosen = require_format(converted.export_type)
        serializer = VideoFrameOptionsSerializer(data=conversion.options)
        serializer.is_valid(raise_exception=True)
        options = serializer.options(chosen)
        snapshot = converted.export
        project = snapshot.project
        with snapshot.file.open('rb') as source:
            export = build_export(project, snapshot_tasks(source, options, beat), options)
        name = export_file_name(project, chosen.exporter)
        with tempfile.NamedTemporaryFile(suffix=f'.{chosen.exporter.ext}', dir=settings.FILE_UPLOAD_TEMP_DIR) as out:
            write_export_file(chosen.exporter, export, _BeatingFile(out, beat))
            out.seek(0)
            stored = converted.file.storage.save(
                converted.file.field.generate_filename(converted, f'{project.id}/{name}'), File(out, name=name)
            )
    except ConversionLost as lost:
        logger.warning('%s; stopped', lost)
        return False
    except Exception as error:
        if isinstance(error, VideoExportError):
            reason = error.message
        else:
            logger.exception('video conversion %s failed', converted_id)
            reason = traceback.format_exc()
        _finish(conversion, Status.FAILED, traceback=reason)
        return False
    if not _finish(conversion, Status.COMPLETED, file=stored):
        converted.file.storage.delete(stored)
        return False
    return True


def _finish(conversion: VideoConversion, status: str, **fields) -> bool:
    """Store the outcome if this attempt still owns the conversion."""
    done = ConvertedFormat.objects.filter(
        pk=conversion.converted_format_id,
        status=Status.IN_PROGRESS,
        ls_ext_video_conversion__attempts=conversion.attempts,
    ).update(status=status, finished_at=timezone.now(), **{'traceback': None, **fields})
    if not done:
        logger.warning('video conversion %s: attempt %s was restarted meanwhile', conversion.pk, conversion.attempts)
    return bool(done)


# ---------------------------------------------------------------- recovery


def sweep(now=None) -> int:
    """Restart every conversion without progress for `stale_seconds()`; returns how many were published.

    Runs periodically (beat) and when a worker starts. Of two sweeps at once, one restarts a conversion
    (compare-and-swap on its heartbeat). A conversion already restarted `MAX_RESTARTS` times fails.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds())
    published = 0
    stale = VideoConversion.objects.filter(
        heartbeat_at__lt=cutoff, converted_format__status__in=(Status.CREATED, Status.IN_PROGRESS)
    ).select_related('converted_format')
    for conversion in stale:
        converted = conversion.converted_format
        if not VideoConversion.objects.filter(pk=conversion.pk, heartbeat_at=conversion.heartbeat_at).update(
            heartbeat_at=now, restarts=F('restarts') + 1
        ):
            continue  # another sweep or a convert request got it
        silent = (now - conversion.heartbeat_at).total_seconds()
        if conversion.restarts >= MAX_RESTARTS:
            reason = (
                f'no progress for {silent:.0f} s after {conversion.restarts} restarts ({converted.status}, attempt '
                f'{conversion.attempts}): given up; see the Celery worker logs, then convert again'
            )
            ConvertedFormat.objects.filter(pk=converted.pk, status=converted.status).update(
                status=Status.FAILED, traceback=reason, finished_at=now
            )
            logger.error('video conversion %s: %s', converted.pk, reason)
            continue
        ConvertedFormat.objects.filter(pk=converted.pk, status__in=(Status.CREATED, Status.IN_PROGRESS)).update(
            status=Status.CREATED
        )
        logger.warning(
            'video conversion %s: no progress for %.0f s (%s), published again', converted.pk, silent, converted.status
        )
        published += publish_conversion(converted.pk)
    return published
