"""Policy and runs API: members of the project's organization only; the "Retrain now" action."""

import pytest

pytestmark = pytest.mark.django_db


def test_policy_get_patch_and_runs_for_members(client_owner, image_project):
    from ml.models import MLBackend

    from ls_extensions.retraining.models import TrainingRun

    url = f'/api/projects/{image_project.id}/retraining/'
    response = client_owner.get(url)
    assert response.status_code == 200, response.content
    assert response.json()['enabled'] is False and response.json()['threshold'] == 20
    backend = MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9/', title='m')
    response = client_owner.patch(
        url,
        {'enabled': True, 'threshold': 5, 'ml_backend': backend.id, 'changes_since_run': 99},
        content_type='application/json',
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body['enabled'] and body['threshold'] == 5 and body['ml_backend'] == backend.id
    assert body['changes_since_run'] == 0  # read-only
    assert client_owner.patch(url, {'threshold': 0}, content_type='application/json').status_code == 400

    TrainingRun.objects.create(project=image_project, trigger='manual', status='failed', error='x')
    runs = client_owner.get(f'/api/projects/{image_project.id}/retraining/runs/').json()
    assert [r['status'] for r in runs] == ['failed']


def test_backend_of_another_project_is_refused(client_owner, image_project, user):
    from ml.models import MLBackend

    from tests.conftest import make_project
    from tests.label_configs import IMAGE_BOXES

    other = make_project(user, IMAGE_BOXES, 'other')
    backend = MLBackend.objects.create(project=other, url='http://127.0.0.1:9/', title='m')
    response = client_owner.patch(
        f'/api/projects/{image_project.id}/retraining/', {'ml_backend': backend.id}, content_type='application/json'
    )
    assert response.status_code == 400


def test_other_organizations_get_404(client_stranger, image_project):
    from ls_extensions.retraining.models import RetrainingPolicy

    base = f'/api/projects/{image_project.id}/retraining/'
    assert client_stranger.get(base).status_code == 404
    assert client_stranger.patch(base, {'enabled': True}, content_type='application/json').status_code == 404
    assert client_stranger.get(base + 'runs/').status_code == 404
    assert client_stranger.post(base + 'train/').status_code == 404
    assert not RetrainingPolicy.objects.filter(project=image_project, enabled=True).exists()


def test_anonymous_is_refused(client, image_project):
    assert client.get(f'/api/projects/{image_project.id}/retraining/').status_code in (401, 403)


def test_retrain_now_data_manager_action(client_owner, image_project, enqueued, django_capture_on_commit_callbacks):
    from django.conf import settings

    from ls_extensions.retraining.models import RetrainingPolicy

    assert 'retrain_now' in settings.DATA_MANAGER_ACTIONS
    listed = client_owner.get(f'/api/dm/actions?project={image_project.id}').json()
    assert 'retrain_now' in [a['id'] for a in listed]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_owner.post(
            f'/api/dm/actions?id=retrain_now&project={image_project.id}',
            {'selectedItems': {'all': True, 'excluded': []}},
            content_type='application/json',
        )
    assert response.status_code == 200, response.content
    assert RetrainingPolicy.objects.get(project=image_project).pending
    assert enqueued == [('start_run', (image_project.id, 'manual (Data Manager)'), None)]


def test_saving_the_policy_never_writes_back_a_stale_counter_or_trigger(image_project):
    """The form and the API save only the fields edited: the counter and the trigger move under them."""
    from django.db.models import F

    from ls_extensions.retraining.models import RetrainingPolicy
    from ls_extensions.retraining.serializers import PolicySerializer

    policy = RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=10)
    loaded = RetrainingPolicy.objects.get(pk=policy.pk)  # what a request holds while annotators submit
    RetrainingPolicy.objects.filter(pk=policy.pk).update(
        changes_since_run=F('changes_since_run') + 12, pending=True, running=True
    )
    serializer = PolicySerializer(loaded, data={'threshold': 20}, partial=True)
    assert serializer.is_valid(), serializer.errors
    serializer.save()
    policy.refresh_from_db()
    assert (policy.threshold, policy.changes_since_run, policy.pending, policy.running) == (20, 12, True, True)
