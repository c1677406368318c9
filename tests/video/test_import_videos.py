"""frames_to_video --project: image folders become playable video tasks of a real project."""

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from ls_extensions.video.frames import probe
from ls_extensions.video.importer import tracking_config, video_tags
from tests.conftest import make_project
from tests.label_configs import VIDEO_TRACKING


def frame_folder(root, name, count, size=(64, 48)):
    folder = Path(root) / name
    folder.mkdir(parents=True)
    for i in range(count):
        image = np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8)
        cv2.imwrite(str(folder / f'img{i}.jpg'), image)
    return folder


def run(root, out, project, *extra):
    stdout = io.StringIO()
    call_command(
        'frames_to_video',
        str(root),
        '--out',
        str(out),
        '--fps',
        '25',
        '--project',
        str(project.id),
        *extra,
        verbosity=1,
        stdout=stdout,
        stderr=io.StringIO(),
    )
    return stdout.getvalue()


def test_empty_project_gets_a_tracking_config_and_one_task_per_folder(tmp_path, user, client_owner):
    from tasks.models import Task

    project = make_project(user, '<View></View>', 'fish')
    frame_folder(tmp_path / 'src', 'site-a/cam1', 12)
    frame_folder(tmp_path / 'src', 'site-b', 7)
    output = run(tmp_path / 'src', tmp_path / 'out', project, '--labels', 'fish, crab')

    assert '2 task(s) created' in output
    project.refresh_from_db()
    assert video_tags(project.label_config) == [('video', '$video', '25')]
    tasks = {t.data['source_folder']: t for t in Task.objects.filter(project=project)}
    assert set(tasks) == {'site-a/cam1', 'site-b'}
    assert tasks['site-a/cam1'].data['frames'] == 12
    response = client_owner.get(tasks['site-b'].data['video'])
    assert response.status_code == 200
    served = tmp_path / 'served.mp4'
    served.write_bytes(b''.join(response.streaming_content) if response.streaming else response.content)
    assert probe(served).frame_count == 7


def test_running_again_imports_nothing_twice(tmp_path, user):
    project = make_project(user, VIDEO_TRACKING, 'fish')
    frame_folder(tmp_path / 'src', 'a', 5)
    run(tmp_path / 'src', tmp_path / 'out', project)
    assert '0 task(s) created, 1 already there' in run(tmp_path / 'src', tmp_path / 'out', project)
    assert project.tasks.count() == 1


def test_frame_rate_mismatch_is_refused_with_the_fix(tmp_path, user):
    project = make_project(user, tracking_config(30, ['fish']), 'fish')
    frame_folder(tmp_path / 'src', 'a', 5)
    with pytest.raises(CommandError, match='frameRate=30 but they were encoded at 25 fps'):
        run(tmp_path / 'src', tmp_path / 'out', project)
    assert project.tasks.count() == 0


def test_unconfigured_project_needs_labels(tmp_path, user):
    project = make_project(user, '<View></View>', 'fish')
    frame_folder(tmp_path / 'src', 'a', 3)
    with pytest.raises(CommandError, match='--labels'):
        run(tmp_path / 'src', tmp_path / 'out', project)


def test_unknown_project_or_outsider_is_refused_before_encoding(tmp_path, user, other_user):
    project = make_project(user, VIDEO_TRACKING, 'fish')
    frame_folder(tmp_path / 'src', 'a', 3)
    with pytest.raises(CommandError, match='project 999999 does not exist'):
        call_command(
            'frames_to_video',
            str(tmp_path / 'src'),
            '--out',
            str(tmp_path / 'out'),
            '--fps',
            '25',
            '--project',
            '999999',
        )
    with pytest.raises(CommandError, match='is not a member'):
        run(tmp_path / 'src', tmp_path / 'out', project, '--user', other_user.email)
    assert not (tmp_path / 'out').exists()
