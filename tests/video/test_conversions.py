"""Snapshot conversions into video formats on a Celery worker, and their recovery (ls_extensions/video/conversions.py).

In-process: the convert request goes through the real API; the Celery task runs eagerly where a worker
would run it (`worker` fixture). A worker that died is the state it leaves in the database: the
conversion claimed (`in_progress`) and no heartbeat since, moved back past the staleness window.
tests/video/test_conversion_worker.py kills a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.video.test_export_api import CRAB, FISH, add_task, track, unzip, upload_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def video_task(video_project, user):
    return add_task(video_project, user, upload_video(video_project, user), [track(FISH, 'fish'), track(CRAB, 'crab')])


@pytest.fixture
def snapshot_base(client_owner, video_project, video_task):
    response = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    assert response.status_code == 201 and response.json()['status'] == 'completed'
    return f'/api/projects/{video_project.id}/exports/{response.json()["id"]}'


def convert(client, base, **body):
    return client.post(f'{base}/convert', {'export_type': 'VIDEO_MOT', **body}, content_type='application/json')


def conversion_row(converted_id):
    from ls_extensions.video.models import VideoConversion

    return VideoConversion.objects.select_related('converted_format').get(converted_format_id=converted_id)


def age_heartbeat(converted_id, seconds):
    """What a worker killed `seconds` ago leaves: its last heartbeat that long ago."""
    from ls_extensions.video.models import VideoConversion

    VideoConversion.objects.filter(converted_format_id=converted_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def mot_frames(client, base):
    download = client.get(f'{base}/download', {'exportType': 'VIDEO_MOT'})
    assert download.status_code == 200
    rows = unzip(b''.join(download.streaming_content))['gt/gt.txt'].splitlines()
    return [int(line.split(b',')[0]) for line in rows]


def test_a_stale_in_progress_conversion_is_converted_again_by_a_new_request(
    client_owner, snapshot_base, worker, django_capture_on_commit_callbacks, settings
):
    from ls_extensions.video import conversions

    with django_capture_on_commit_callbacks():  # published; its worker claims it and dies
        first = convert(client_owner, snapshot_base)
    converted_id = first.json()['converted_format']
    dead = conversions.claim(converted_id)
    assert dead.attempts == 1 and dead.converted_format.status == 'in_progress'

    busy = convert(client_owner, snapshot_base)  # recent heartbeat: presumed alive
    assert busy.status_code == 400 and 'already started (in_progress' in busy.json()['detail']
    age_heartbeat(converted_id, conversions.stale_seconds() + 1)
    with worker():
        again = convert(client_owner, snapshot_base, frame_stride=2)
    assert again.status_code == 200 and again.json()['converted_format'] == converted_id
    row = conversion_row(converted_id)
    assert row.converted_format.status == 'completed', row.converted_format.traceback
    assert row.attempts == 2 and row.options['frame_stride'] == 2
    assert mot_frames(client_owner, snapshot_base) == [1, 3, 5, 3, 5, 7, 9, 11]  # the new request's stride

    # the dead worker, were it to wake up, owns nothing any more: at its next stamp it stops, it stores nothing
    settings.LS_EXT_VIDEO_CONVERSION_STALE_SECONDS = 0  # its next stamp is due at once
    with pytest.raises(conversions.ConversionLost):
        conversions.Heartbeat(dead)()
    assert not conversions._finish(dead, 'failed', traceback='late')
    assert conversion_row(converted_id).converted_format.status == 'completed'
    done = convert(client_owner, snapshot_base)
    assert done.status_code == 400 and 'VIDEO_MOT is already converted: GET exports/' in done.json()['detail']


def test_the_sweep_publishes_lost_conversions_again_and_gives_up_after_its_restarts(
    client_owner, snapshot_base, worker, django_capture_on_commit_callbacks
):
    from ls_extensions.video import conversions, tasks

    with django_capture_on_commit_callbacks():  # the message is lost: nothing runs it
        lost = convert(client_owner, snapshot_base).json()['converted_format']
    with worker():
        assert tasks.sweep_conversions.apply().get() == 0  # not stale yet: left alone
    assert conversion_row(lost).converted_format.status == 'created'
    age_heartbeat(lost, conversions.stale_seconds() + 1)
    with worker():
        assert tasks.sweep_conversions.apply().get() == 1
    row = conversion_row(lost)
    assert (row.converted_format.status, row.restarts, row.attempts) == ('completed', 1, 1)

    # a conversion that stalls every time it is restarted ends, with the reason, and can be asked for again
    with django_capture_on_commit_callbacks():
        stuck = convert(client_owner, snapshot_base, export_type='VIDEO_CSV').json()['converted_format']
    for _ in range(conversions.MAX_RESTARTS):
        assert conversions.claim(stuck) is not None  # claimed by a worker that then dies
        age_heartbeat(stuck, conversions.stale_seconds() + 1)
        assert conversions.sweep() == 1  # published again (to the test's broker, which no worker reads)
        assert conversion_row(stuck).converted_format.status == 'created'
    conversions.claim(stuck)
    age_heartbeat(stuck, conversions.stale_seconds() + 1)
    assert conversions.sweep() == 0
    row = conversion_row(stuck)
    assert row.converted_format.status == 'failed' and 'given up' in row.converted_format.traceback
    listed = client_owner.get(snapshot_base.rsplit('/', 1)[0] + '/').json()[0]['converted_formats']
    assert {(c['export_type'], c['status']) for c in listed} == {('VIDEO_MOT', 'completed'), ('VIDEO_CSV', 'failed')}
    with worker():
        fresh = convert(client_owner, snapshot_base, export_type='VIDEO_CSV')
    assert fresh.status_code == 200 and fresh.json()['converted_format'] != stuck
    assert conversion_row(fresh.json()['converted_format']).converted_format.status == 'completed'


def test_a_running_conversion_stamps_its_heartbeat_while_it_writes(client_owner, snapshot_base, worker, settings):
    settings.LS_EXT_VIDEO_CONVERSION_STALE_SECONDS = 0  # stamp at every chance (a fifth of the window)
    with CaptureQueriesContext(connection) as queries, worker():
        converted_id = convert(client_owner, snapshot_base, images=True).json()['converted_format']
    assert conversion_row(converted_id).converted_format.status == 'completed'
    stamps = [
        q['sql'] for q in queries if q['sql'].startswith('UPDATE "ls_ext_video_videoconversion" SET "heartbeat_at"')
    ]
    assert len(stamps) >= 10, len(stamps)  # every task read and every write of the zip (12 frame images)


def test_a_broker_that_is_down_at_publish_leaves_the_conversion_to_the_sweep(
    client_owner, snapshot_base, worker, django_capture_on_commit_callbacks, caplog, monkeypatch
):
    from ls_extensions.celery import app
    from ls_extensions.video import conversions
    from tests.support.server import free_port

    def drop_pool():  # not closed: an earlier test's pooled connection would reach the working broker
        app._pool = None
        app.amqp._producer_pool = None

    with monkeypatch.context() as patch:
        dead = f'redis://127.0.0.1:{free_port()}/0'  # nothing listens: a refused connection
        for key in ('broker_url', 'broker_write_url', 'broker_read_url'):  # celery 5.5 resolves all three
            patch.setattr(app.conf, key, dead)
        drop_pool()
        with django_capture_on_commit_callbacks(execute=True):
            response = convert(client_owner, snapshot_base)
    drop_pool()
    assert response.status_code == 200  # the request does not fail on the broker
    converted_id = response.json()['converted_format']
    assert conversion_row(converted_id).converted_format.status == 'created'
    assert any('could not publish' in r.message and 'convert_snapshot' in r.message for r in caplog.records)
    age_heartbeat(converted_id, conversions.stale_seconds() + 1)
    with worker():
        assert conversions.sweep() == 1
    assert conversion_row(converted_id).converted_format.status == 'completed'


def test_a_conversion_from_before_conversions_ran_on_workers_is_not_stuck(client_owner, snapshot_base, worker):
    """Rows left `in_progress` by the old inline path have no VideoConversion; their age decides."""
    from data_export.models import ConvertedFormat, Export

    from ls_extensions.video import conversions

    snapshot = Export.objects.get(id=int(snapshot_base.rsplit('/', 1)[1]))
    old = ConvertedFormat.objects.create(
        export=snapshot, export_type='VIDEO_MOT', project=snapshot.project, status='in_progress'
    )
    ConvertedFormat.objects.filter(id=old.id).update(
        updated_at=timezone.now() - timedelta(seconds=conversions.stale_seconds() + 1)
    )
    with worker():
        response = convert(client_owner, snapshot_base)
    assert response.status_code == 200 and response.json()['converted_format'] == old.id
    assert conversion_row(old.id).converted_format.status == 'completed'


def test_conversions_publish_the_video_tasks_by_their_registered_names():
    from ls_extensions.celery import app
    from ls_extensions.video import conversions, tasks

    for name, celery_name in conversions.TASK_NAMES.items():
        assert getattr(tasks, name).name == celery_name and celery_name in app.tasks
