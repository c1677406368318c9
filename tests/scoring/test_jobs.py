"""Scoring jobs on Celery, in-process: published after commit to a real broker (kombu's SQLite transport),
run from the message as a worker runs it, once per job however often delivered; a broker that is down
fails no request, and the sweep catches up later; a job cut off with its worker is done again."""

import json
import time

import pytest
from django.db import transaction

from tests.conftest import box
from tests.scoring.conftest import make_tasks, predict, stored

pytestmark = pytest.mark.django_db


@pytest.fixture
def celery_runner(settings):
    settings.LS_EXT_SCORING_RUNNER = 'celery'


@pytest.fixture
def broker(broker_at, tmp_path):
    """A real broker: kombu's SQLAlchemy transport on a SQLite file, as ``make run`` uses."""
    broker_at(f'sqla+sqlite:///{tmp_path / "broker.sqlite3"}')


@pytest.fixture
def dead_broker(broker_at):
    from tests.support.server import free_port

    broker_at(f'amqp://guest:guest@127.0.0.1:{free_port()}//')  # nothing listens there


def deliver_all(limit=20):
    """What a worker does: take each message off the default queue and run its task; returns their names."""
    from ls_extensions.celery import app

    app.loader.import_default_modules()  # as a worker starts: autodiscovery imports the apps' tasks modules
    names = []
    with app.connection_for_read() as connection, connection.SimpleQueue('celery') as queue:
        for _ in range(limit):
            try:
                message = queue.get(timeout=1)
            except queue.Empty:
                return names
            args, kwargs, _ = message.decode()
            names.append((message.headers['task'], tuple(args)))
            app.tasks[message.headers['task']](*args, **kwargs)
            message.ack()
    raise AssertionError(f'messages did not settle: {names}')


def jobs_of(project):
    from ls_extensions.scoring.models import RecomputeJob

    return RecomputeJob.objects.filter(project=project).order_by('id')


def test_published_after_commit_and_run_from_the_message(
    celery_runner, broker, image_project, django_capture_on_commit_callbacks
):
    """The test the thread runner had skipped, on Celery: nothing runs before commit, the worker's task does."""
    tasks = make_tasks(image_project, 3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            for task, low in zip(tasks, (0.2, 0.5, 0.9), strict=True):
                predict(task, 'v1', scores=[low])
        assert not jobs_of(image_project).exists()  # the work is decided on commit, not inside the transaction
    assert callbacks  # ran at "commit": the job was queued and published
    assert stored(image_project) == {}  # published, not run: no worker took it yet
    (job,) = jobs_of(image_project)
    assert (job.kind, job.status) == ('recompute', 'queued')

    assert deliver_all() == [('ls_ext_scoring.run_job', (job.id,))]
    assert sorted(v for v, _, _ in stored(image_project).values()) == pytest.approx([0.1, 0.5, 0.8])
    job.refresh_from_db()
    assert (job.status, job.progress, job.model_version, job.total, job.scored) == ('done', 1.0, 'v1', 3, 3)
    assert job.heartbeat_at is not None and job.finished_at >= job.started_at


def test_a_message_delivered_twice_runs_the_job_once(celery_runner, image_project):
    from ls_extensions.scoring import jobs, tasks

    for task, low in zip(make_tasks(image_project, 2), (0.3, 0.6), strict=True):
        predict(task, 'v1', scores=[low])
    job = jobs.enqueue(image_project.id, reason='test')
    tasks.run_job(job.id)
    job.refresh_from_db()
    first = (job.status, job.started_at, job.finished_at, job.done)
    assert first[0] == 'done' and first[3] == 2
    tasks.run_job(job.id)  # acks_late: a worker that died after the work but before the ack gets it again
    job.refresh_from_db()
    assert (job.status, job.started_at, job.finished_at, job.done) == first


def test_a_broker_that_is_down_fails_no_request_and_the_sweep_catches_up(
    celery_runner,
    dead_broker,
    broker_at,
    settings,
    tmp_path,
    client_owner,
    image_project,
    django_capture_on_commit_callbacks,
):
    from ls_extensions.scoring import jobs, tasks

    for task, low in zip(make_tasks(image_project, 2), (0.4, 0.7), strict=True):
        body = {'task': task.id, 'model_version': 'v1', 'score': 0.5, 'result': [box(1, 1, 5, 5, score=low)]}
        with django_capture_on_commit_callbacks(execute=True):  # the publish runs inside the request
            response = client_owner.post('/api/predictions/', json.dumps(body), content_type='application/json')
        assert response.status_code == 201, response.content
    with django_capture_on_commit_callbacks(execute=True):
        assert client_owner.get(f'/api/dm/columns/?project={image_project.id}').status_code == 200
    (job,) = jobs_of(image_project)
    assert job.status == 'queued' and stored(image_project) == {}  # kept for later, nothing lost
    started = time.perf_counter()
    assert tasks.publish(job.id) is False
    assert time.perf_counter() - started < 2.5  # one connection attempt, not kombu's minutes of retries

    report = client_owner.get(f'/api/projects/{image_project.id}/uncertainty/').json()
    assert report['up_to_date'] is False and report['job']['status'] == 'queued'
    settings.LS_EXT_SCORING_STALE_SECONDS = 0  # the job counts as waiting too long, without waiting
    assert jobs.sweep() == {'lost': 0, 'republished': 0, 'queued': 0}  # still down: still queued
    broker_at(f'sqla+sqlite:///{tmp_path / "broker.sqlite3"}')
    assert jobs.sweep() == {'lost': 0, 'republished': 1, 'queued': 0}
    assert deliver_all() == [('ls_ext_scoring.run_job', (job.id,))]
    assert sorted(v for v, _, _ in stored(image_project).values()) == pytest.approx([0.3, 0.6])
    assert client_owner.get(f'/api/projects/{image_project.id}/uncertainty/').json()['up_to_date'] is True


def test_a_recompute_cut_off_with_its_worker_is_failed_and_done_again(
    scored_project, celery_runner, broker, django_capture_on_commit_callbacks
):
    """The state a SIGKILLed worker leaves mid-recompute: the switch done (old rows gone), the job running."""
    from datetime import timedelta

    from django.utils import timezone

    from ls_extensions.scoring import jobs, tasks
    from ls_extensions.scoring.models import RecomputeJob

    before = stored(scored_project)
    job = jobs.enqueue(scored_project.id, reason='measure changed')
    assert jobs.claim(job.id) == 1
    jobs._switch(scored_project.id)  # ... and the worker died here
    assert stored(scored_project) == {}
    assert jobs.keep_fresh(scored_project.id) is None  # running and alive: no second job
    assert jobs.sweep() == {'lost': 0, 'republished': 0, 'queued': 0}

    RecomputeJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep() == {'lost': 1, 'republished': 0, 'queued': 1}
    job.refresh_from_db()
    assert job.status == 'failed' and 'the worker running it stopped' in job.error
    delivered = deliver_all()
    assert [name for name, _ in delivered] == ['ls_ext_scoring.run_job']
    assert stored(scored_project) == before
    again = jobs_of(scored_project).last()
    assert (again.status, again.reason) == ('done', 'a recompute was left unfinished')
    tasks.run_job(job.id)  # the lost job's redelivered message changes nothing
    assert stored(scored_project) == before


def test_a_job_that_keeps_failing_is_not_queued_again_forever(scored_project, celery_runner, client_owner):
    """Failures count: after three in a row the sweep stops re-queueing; the report shows why; a user retries."""
    from ls_extensions.scoring import jobs
    from ls_extensions.scoring.models import RecomputeJob

    jobs._switch(scored_project.id)  # scores incomplete: the sweep would queue a recompute
    error = 'OperationalError: disk I/O error'
    for _ in range(jobs.FAILURES_IN_A_ROW - 1):
        RecomputeJob.objects.create(project=scored_project, status='failed', error=error)
    assert jobs.keep_fresh(scored_project.id) is not None  # two failures: tried again
    RecomputeJob.objects.filter(project=scored_project, status='queued').update(status='failed', error=error)
    assert jobs.keep_fresh(scored_project.id) is None
    assert jobs.sweep()['queued'] == 0
    report = client_owner.get(f'/api/projects/{scored_project.id}/uncertainty/').json()
    assert (report['up_to_date'], report['job']['status'], report['job']['error']) == (False, 'failed', error)

    response = client_owner.post(f'/api/projects/{scored_project.id}/uncertainty/recompute/')
    assert response.status_code == 202 and response.json()['status'] == 'queued'  # the user's retry is queued


def test_the_request_hands_the_publish_to_the_publisher_thread_and_never_waits_on_it(
    celery_runner, broker, settings, client_owner, image_project, django_capture_on_commit_callbacks
):
    """The production path: the publish runs on the publisher thread. That thread is held busy here, so the
    request can only answer if it does not wait on the publish; the message arrives once the thread is free."""
    import threading

    from ls_extensions import publishing

    settings.LS_EXT_PUBLISH_IN_BACKGROUND = True
    (task,) = make_tasks(image_project, 1)
    held, publisher_threads = threading.Event(), []
    busy = publishing.in_background(held.wait, 60)
    body = {'task': task.id, 'model_version': 'v1', 'score': 0.5, 'result': [box(1, 1, 5, 5, score=0.4)]}
    with django_capture_on_commit_callbacks(execute=True):
        response = client_owner.post('/api/predictions/', json.dumps(body), content_type='application/json')
    assert response.status_code == 201, response.content
    with django_capture_on_commit_callbacks(execute=True):
        assert client_owner.get(f'/api/dm/columns/?project={image_project.id}').status_code == 200
    (job,) = jobs_of(image_project)
    try:
        assert job.status == 'queued' and not busy.done()  # answered while the publisher was still busy
        assert deliver_all() == []  # nothing published yet: the publish waits its turn on that thread
        publishing.in_background(lambda: publisher_threads.append(threading.current_thread().name))
    finally:
        held.set()  # the publisher thread serves the whole process: never leave it held
    publishing.wait_idle()
    assert publisher_threads[0].startswith(publishing.THREAD_NAME)
    assert deliver_all() == [('ls_ext_scoring.run_job', (job.id,))]
    assert [v for v, _, _ in stored(image_project).values()] == pytest.approx([1 - 0.4])  # the job ran
