"""Videos made by ``frames_to_video`` become tasks of a Label Studio project.

Each video is stored the way a browser upload is (a ``FileUpload`` under ``MEDIA_ROOT/upload/<project>``,
served at ``/data/upload/...``), so the labeling UI, the export and permissions treat it as any upload.
The project's ``<Video frameRate>`` must equal the encoding fps: otherwise the UI's frame numbers
would not line up with the source images or with the per-frame export; the project's frame rate is
read by ``export.config.project_frame_rate``, next to the export's own reading. Each imported file is also
probed (packets only, ``probe.check_alignment``) and a file whose timestamps would still mis-align
(camera files imported as they are) is logged with the reason; ``check_upload`` does the same for a
video uploaded through Label Studio's own import once ``connect_upload_check`` has run.
"""

import logging
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import av
from django.core.files import File
from django.db import transaction

from ls_extensions.video.export.config import project_frame_rate, video_tags
from ls_extensions.video.probe import VIDEO_SUFFIXES, check_alignment

logger = logging.getLogger(__name__)

SOURCE_KEY = 'source_folder'


class ImportRefused(ValueError):
    """The project cannot take these videos as they are; the message says why."""


def tracking_config(fps, labels):
    """A video object-tracking label config whose frame rate is the encoding fps."""
    view = ET.Element('View')
    choices = ET.SubElement(view, 'Labels', name='videoLabels', toName='video', allowEmpty='true')
    for label in labels:
        ET.SubElement(choices, 'Label', value=label)
    ET.SubElement(view, 'Video', name='video', value='$video', framerate=f'{float(fps):g}')
    ET.SubElement(view, 'VideoRectangle', name='box', toName='video')
    ET.indent(view)
    return ET.tostring(view, encoding='unicode')


def ensure_label_config(project, fps, labels):
    """Give an unconfigured project a tracking config; refuse one whose frame rate differs. Returns the data key."""
    tags = video_tags(project.label_config)
    if not tags:
        if project.tasks.exists():
            raise ImportRefused(
                f'project {project.id} has tasks but no <Video> tag; import into an empty or video project'
            )
        if not labels:
            raise ImportRefused('the project has no video label config yet: name its labels with --labels')
        project.label_config = tracking_config(fps, labels)
        project.save()
        return 'video'
    name, value, framerate = tags[0]
    project_fps = project_frame_rate(project)
    if project_fps is None:
        raise ImportRefused(
            f'project {project.id} has <Video frameRate="{framerate}">: give it a fixed, positive frame rate'
        )
    if project_fps != Fraction(fps):
        raise ImportRefused(
            f'project {project.id} plays videos at frameRate={framerate or "24 (default)"} but they were '
            f'encoded at {float(fps):g} fps: UI frames would not match the source images; '
            f'encode with --fps {float(project_fps):g} or use another project'
        )
    return value.lstrip('$') or 'video'


def alignment_warning(path, fps):
    """A sentence naming ``path`` and why Label Studio's frame numbers would not match it at ``fps``, or None.

    Packets only (no decoding), so it is cheap enough for an import; an unreadable file is a warning too.
    """
    try:
        _, verdict = check_alignment(path, float(fps), decode=False)
    except (av.FFmpegError, ValueError, OSError) as exc:
        return f'{Path(path).name} cannot be read as a video ({exc}); Label Studio may not play it'
    if not verdict.reasons:
        return None
    return (
        f'{Path(path).name} would mis-align at frameRate={float(fps):g}: {" ".join(verdict.reasons)} '
        'Run manage.py prepare_videos on it first.'
    )


def check_upload(sender, instance, created=False, **kwargs):
    """post_save of Label Studio's FileUpload: log a warning for an uploaded video that would mis-align."""
    if not created or not instance.project_id or getattr(instance, '_ls_ext_checked', False):
        return  # import_videos has checked (and said) it already
    if Path(instance.file.name).suffix.lower() not in VIDEO_SUFFIXES:
        return
    fps = project_frame_rate(instance.project)
    try:
        path = instance.file.path
    except NotImplementedError:  # a storage without local paths (S3): not read here
        return
    if fps is None:
        return
    try:
        warning = alignment_warning(path, fps)
    except Exception:  # noqa: BLE001 - an advisory check never fails Label Studio's upload
        logger.exception('project %s: the alignment check of %s failed', instance.project_id, instance.file.name)
        return
    if warning:
        logger.warning('project %s: uploaded %s', instance.project_id, warning)


def connect_upload_check():
    """Probe videos uploaded through Label Studio's import (call from AppConfig.ready; idempotent)."""
    from data_import.models import FileUpload
    from django.db.models.signals import post_save

    post_save.connect(check_upload, sender=FileUpload, dispatch_uid='ls_ext_video_upload_check')


def import_videos(project, user, records, out_dir, fps, labels=(), source_key=SOURCE_KEY, warn=None):
    """Create one task per new video record; return (created, already_there) counts.

    A video whose source (``record.source``, stored as ``data[source_key]``) is already a task of the
    project is not imported twice. A file that would mis-align is imported with a warning, logged and
    passed to ``warn(message)``.
    """
    from data_import.models import FileUpload
    from tasks.models import Task

    data_key = ensure_label_config(project, fps, labels)
    known = set(
        project.tasks.filter(**{f'data__{source_key}__isnull': False}).values_list(f'data__{source_key}', flat=True)
    )
    created = existing = 0
    new_data = []
    for record in records:
        if record.status == 'failed':
            continue
        if record.source in known:
            existing += 1
            continue
        path = Path(out_dir) / record.video
        warning = alignment_warning(path, fps)
        if warning:
            logger.warning('project %s: importing %s', project.id, warning)
            if warn:
                warn(warning)
        with transaction.atomic(), open(path, 'rb') as fh:
            upload = FileUpload(user=user, project=project)
            upload._ls_ext_checked = True
            upload.file.save(path.name, File(fh), save=True)
            data = {data_key: upload.url, source_key: record.source, 'frames': record.frame_count}
            Task.objects.create(project=project, file_upload=upload, data=data)
        new_data.append(data)
        created += 1
    if new_data:
        project.summary.update_data_columns(new_data)  # what Label Studio's import does for its columns
    return created, existing
