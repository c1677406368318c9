"""Real processes: Label Studio (``label-studio start``, our offline settings) queues the uncertainty work, a
Celery worker on its data dir (embedded SQLite broker, as ``make run`` starts it) does it. No thread in the
web process scores anything: until a worker runs, the work waits in the broker and the job says so."""

import time

from tests.conftest import box
from tests.label_configs import IMAGE_BOXES
from tests.retraining.support import ENV, TOKEN, Worker
from tests.support.api import TokenApi
from tests.support.server import LabelStudioServer, migrated_database

LOWEST = (0.9, 0.3, 0.6, 0.1)  # each task's lowest box score -> uncertainty 0.1, 0.7, 0.4, 0.9 under min_region


def tasks_payload(version):
    return [
        {
            'data': {'image': f'/data/upload/1/fish{i}.png'},
            'predictions': [
                {'model_version': version, 'result': [box(1, 1, 5, 5, score=0.95), box(9, 9, 5, 5, score=s)]}
            ],
        }
        for i, s in enumerate(LOWEST)
    ]


def wait_report(api, project, done, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = api('GET', f'/api/projects/{project}/uncertainty/')
        if done(report):
            return report
        time.sleep(0.5)
    raise AssertionError(f'scores did not settle: {report}')


def test_the_web_process_queues_and_a_worker_scores(tmp_path_factory):
    template = migrated_database(tmp_path_factory)
    with LabelStudioServer(tmp_path_factory.mktemp('scoring-worker'), template, env=ENV) as ls:
        api = TokenApi(ls.url, TOKEN, expect=(200, 201, 202))
        project = api('POST', '/api/projects', json={'title': 'scored', 'label_config': IMAGE_BOXES})['id']
        api('POST', f'/api/projects/{project}/import', json=tasks_payload('v1'))  # bulk: no signals
        api('GET', f'/api/dm/columns/?project={project}')  # first use: a recompute, published to the broker
        report = api('GET', f'/api/projects/{project}/uncertainty/')
        assert (report['job']['status'], report['up_to_date'], report['tasks']['ranked']) == ('queued', False, 0)

        with Worker(ls.data_dir, ENV) as worker:
            report = wait_report(api, project, lambda r: r['up_to_date'] and r['tasks']['ranked'] == len(LOWEST))
            assert (report['active_version'], report['job']['status']) == ('v1', 'done'), worker.log_tail()
            ids = sorted(t['id'] for t in api('GET', f'/api/tasks?project={project}&page_size=10')['tasks'])
            api('PATCH', f'/api/projects/{project}/uncertainty/', json={'stream': True, 'warmup_annotations': 0})
            assert api('GET', f'/api/projects/{project}/next/')['id'] == ids[3]  # uncertainty 0.9
            api('POST', f'/api/tasks/{ids[3]}/annotations', json={'result': [box(9, 9, 5, 5)]})

            # a new version posted through the API (signals) is recomputed by the worker, not the web process
            for task_id, score in zip(ids, (0.2, 0.8, 0.5, 0.6), strict=True):
                body = {'task': task_id, 'model_version': 'v2', 'result': [box(1, 1, 5, 5, score=score)]}
                api('POST', '/api/predictions/', json=body)
            report = wait_report(api, project, lambda r: r['active_version'] == 'v2' and r['up_to_date'])
            assert report['tasks']['ranked'] == 4 and report['job']['model_version'] == 'v2', report
            assert api('GET', f'/api/projects/{project}/next/')['id'] == ids[0]  # unlabeled, uncertainty 0.8
        assert 'ls_ext_scoring.run_job' in worker.log_path.read_text()
