"""What a run keeps of the model server's job for the page: its message and how many images it used."""

import pytest

from tests.retraining.conftest import StubBackend, drain

pytestmark = pytest.mark.django_db


class NotingBackend(StubBackend):
    """The stub backend, its finished jobs carrying what our model server adds (images used, its note)."""

    def finish(self):
        super().finish()
        for job in self.jobs:
            if job['status'] == 'succeeded':
                job.update(
                    train_images=4, eval_images=0, message='trained on 4 images; mAP needs at least 10 annotated images'
                )


def test_a_run_keeps_the_backends_message_and_image_counts(
    image_project, image_tasks, enqueued, django_capture_on_commit_callbacks
):
    from ml.models import MLBackend

    from ls_extensions.retraining import presentation, triggers
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    with NotingBackend() as backend_server:
        MLBackend.objects.create(project=image_project, url=backend_server.url, title='stub')
        RetrainingPolicy.objects.create(project=image_project, enabled=True, repredict=False)
        with django_capture_on_commit_callbacks(execute=True):
            triggers.trigger_now(image_project.id, 'manual (API)')
        drain(enqueued, django_capture_on_commit_callbacks)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'succeeded', run.error
    assert run.metrics['backend_message'] == 'trained on 4 images; mAP needs at least 10 annotated images'
    assert presentation.backend_message(run.metrics) == run.metrics['backend_message']
    assert ('Images', '4 trained on') in presentation.readable_metrics(run.metrics, finished=True)
