"""A version the model server's gate rejected: the run records both mAPs and why, the project keeps its version
and predictions, and the retraining page draws it on the learning curve as rejected.

The backend is the stub (`conftest.StubBackend`), its jobs reporting what our model server reports for a
rejected job; the gate itself is tested on the real model server in `tests/ml_backend/test_gate.py`.
"""

import re

import pytest

from tests.retraining.conftest import StubBackend, drain

pytestmark = pytest.mark.django_db

REFUSAL = "not served: held-out mAP@0.5 0.4100 is below the served version's 0.6200 by more than the gate tolerance 0"


class GatedBackend(StubBackend):
    """Trains v1 with a held-out mAP of 0.62; the next job's version is worse and rejected, as our server does."""

    def finish(self):
        for job in self.jobs:
            if job['status'] != 'running':
                continue
            if len(self.versions) == 1:
                self.version = 'stub.v1'
                self.versions.append(self.version)
                metrics = {'loss': 0.5, 'map_before': 0.05, 'map_after': 0.62}
                job.update(status='succeeded', version=self.version, metrics=metrics, eval_images=3, train_images=9)
            else:
                metrics = {'loss': 0.7, 'map_before': 0.62, 'map_after': 0.41}
                job.update(status='rejected', metrics=metrics, message=REFUSAL, eval_images=4, train_images=12)


def retrain(project, enqueued, capture):
    from ls_extensions.retraining import triggers

    with capture(execute=True):
        triggers.trigger_now(project.id, 'manual (API)')
    drain(enqueued, capture)


def test_a_rejected_version_keeps_the_project_on_the_served_one(
    client_owner, image_project, image_tasks, enqueued, django_capture_on_commit_callbacks
):
    from ml.models import MLBackend
    from tasks.models import Prediction

    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    with GatedBackend() as backend_server:
        MLBackend.objects.create(project=image_project, url=backend_server.url, title='stub')
        RetrainingPolicy.objects.create(project=image_project, enabled=True)
        retrain(image_project, enqueued, django_capture_on_commit_callbacks)
        first = TrainingRun.objects.get()
        assert first.status == 'succeeded' and first.version_after == 'stub.v1', first.error
        predictions = set(Prediction.objects.values_list('id', 'model_version'))
        assert {v for _, v in predictions} == {'stub.v1'} and len(predictions) == len(image_tasks)
        predicted = len(backend_server.predicted)

        retrain(image_project, enqueued, django_capture_on_commit_callbacks)
        second = TrainingRun.objects.exclude(pk=first.pk).get()
        assert second.status == 'rejected' and second.error == REFUSAL
        assert (second.metrics['map_before'], second.metrics['map_after']) == (0.62, 0.41)
        assert second.version_after == '' and second.finished_at is not None
    image_project.refresh_from_db()
    assert image_project.model_version == 'stub.v1'  # the served version stays the project's
    assert set(Prediction.objects.values_list('id', 'model_version')) == predictions  # untouched, none added
    assert len(backend_server.predicted) == predicted  # no re-prediction
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert not policy.running and not policy.pending and policy.failed_attempts == 0 and not policy.stopped_reason

    html = client_owner.get(f'/projects/{image_project.id}/retraining/').content.decode()
    curve = html[html.index('<svg') : html.index('</svg>')]
    assert len(re.findall(r'<g class="served" data-run="\d+">', curve)) == 1
    assert f'<g class="rejected" data-run="{second.id}">' in curve and '(rejected: not served)' in curve
    row = html[html.index(f'id="curve-run-{second.id}"') :].split('</tr>')[0]
    assert '0.620 → 0.410' in row and 'rejected' in row and '>4<' in row
    run_row = html[html.index(f'id="run-{second.id}"') :].split('</tr>')[0]
    assert 'badge rejected' in run_row and 'rejected-text' in run_row
