"""Videos made by ``frames_to_video`` become tasks of a Label Studio project.

Each video is stored the way a browser upload is (a ``FileUpload`` under ``MEDIA_ROOT/upload/<project>``,
served at ``/data/upload/...``), so the labeling UI, the export and permissions treat it as any upload.
The project's ``<Video frameRate>`` must equal the encoding fps: otherwise the UI's frame numbers
would not line up with the source images or with the per-frame export.
"""

import logging
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from django.core.files import File
from django.db import transaction

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


def video_tags(label_config):
    """(name, value, framerate or None) of each <Video> tag; tag and attribute names as the UI reads them."""
    try:
        root = ET.fromstring(label_config or '<View/>')
    except ET.ParseError:
        return []
    tags = []
    for node in root.iter():
        if node.tag.lower() == 'video':
            attrs = {k.lower(): v for k, v in node.attrib.items()}
            tags.append((attrs.get('name'), attrs.get('value', ''), attrs.get('framerate')))
    return tags


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
    project_fps = Fraction(framerate) if framerate else Fraction(24)  # the UI's default
    if project_fps != Fraction(fps):
        raise ImportRefused(
            f'project {project.id} plays videos at frameRate={framerate or "24 (default)"} but they were '
            f'encoded at {float(fps):g} fps: UI frames would not match the source images; '
            f'encode with --fps {float(project_fps):g} or use another project'
        )
    return value.lstrip('$') or 'video'


def import_videos(project, user, records, out_dir, fps, labels=()):
    """Create one task per new video record; return (created, already_there) counts.

    A video whose source folder is already a task of the project is not imported twice.
    """
    from data_import.models import FileUpload
    from tasks.models import Task

    data_key = ensure_label_config(project, fps, labels)
    known = set(
        project.tasks.filter(**{f'data__{SOURCE_KEY}__isnull': False}).values_list(f'data__{SOURCE_KEY}', flat=True)
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
        with transaction.atomic(), open(path, 'rb') as fh:
            upload = FileUpload(user=user, project=project)
            upload.file.save(path.name, File(fh), save=True)
            data = {data_key: upload.url, SOURCE_KEY: record.source, 'frames': record.frame_count}
            Task.objects.create(project=project, file_upload=upload, data=data)
        new_data.append(data)
        created += 1
    if new_data:
        project.summary.update_data_columns(new_data)  # what Label Studio's import does for its columns
    return created, existing
