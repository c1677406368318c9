"""The project's retraining page: policy form, "Retrain now", live state and run history."""

from datetime import timedelta

import pytest

pytestmark = pytest.mark.django_db


def page_url(project):
    return f'/projects/{project.id}/retraining/'


def valid_form(**overrides):
    form = {
        'action': 'save',
        'enabled': 'on',
        'threshold': '7',
        'min_interval_seconds': '60',
        'ml_backend': '',
        'repredict': 'on',
        'batch_size': '25',
        'training_timeout_seconds': '900',
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_url_name():
    from django.urls import reverse

    assert reverse('ls_ext_retraining:page', args=[3]) == '/projects/3/retraining/'


def test_get_renders_policy_state_and_runs_newest_first(client_owner, image_project):
    from django.utils import timezone
    from ml.models import MLBackend

    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    backend = MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9/', title='fishnet')
    RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=12, changes_since_run=4)
    now = timezone.now()
    TrainingRun.objects.create(
        project=image_project,
        trigger='threshold',
        status='succeeded',
        annotations_used=31,
        version_before='fish.v1',
        version_after='fish.v2',
        tasks_to_predict=10,
        tasks_predicted=10,
        metrics={'loss': 0.25},
        started_at=now - timedelta(seconds=95),
        finished_at=now,
    )
    TrainingRun.objects.create(
        project=image_project, trigger='manual (API)', status='failed', error='backend <b>exploded</b>'
    )

    response = client_owner.get(page_url(image_project))
    assert response.status_code == 200
    assert response['Content-Type'].startswith('text/html')
    html = response.content.decode()
    assert 'name="threshold" min="1" value="12"' in html
    assert 'id="id_enabled" name="enabled" checked' in html
    assert f'<option value="{backend.id}">fishnet (http://127.0.0.1:9/)</option>' in html
    assert '4 / 12' in html
    assert 'csrfmiddlewaretoken' in html
    assert html.index('manual (API)') < html.index('threshold</td>')  # newest first
    assert 'fish.v1' in html and 'fish.v2' in html and '10/10' in html and '1m 35s' in html
    assert '<dt>Loss</dt><dd>0.25</dd>' in html and '&quot;loss&quot;' not in html  # a value, not JSON
    assert 'backend &lt;b&gt;exploded&lt;/b&gt;' in html  # escaped
    assert 'location.reload()' not in html  # nothing going: no reload
    assert f'href="/projects/{image_project.id}/data" data-external' in html
    # inside Label Studio's page: its base template (app settings, React app) with ours as its main content
    main = html[html.index('<template id="main-content">') : html.index('</template>')]
    assert 'id="app-settings"' in html and '/react-app/main.js' in html
    assert 'Retraining — ' in main and 'id="state"' in main and 'id="runs"' in main
    assert 'title: "Retraining"' in html  # Label Studio's breadcrumbs


def test_runs_are_capped_at_100(client_owner, image_project):
    from ls_extensions.retraining.models import TrainingRun

    TrainingRun.objects.bulk_create(
        [TrainingRun(project=image_project, trigger=f't{i}', status='failed') for i in range(105)]
    )
    html = client_owner.get(page_url(image_project)).content.decode()
    assert html.count('<tr id="run-') == 100


def test_refreshes_itself_while_a_run_is_pending_or_going(client_owner, image_project):
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    policy = RetrainingPolicy.objects.create(project=image_project, pending=True)
    html = client_owner.get(page_url(image_project)).content.decode()
    reload = f'if (location.pathname === "/projects/{image_project.id}/retraining/") location.reload(); }}, 5000);'
    assert reload in html

    RetrainingPolicy.objects.filter(pk=policy.pk).update(pending=False, running=True)
    TrainingRun.objects.create(
        project=image_project, trigger='threshold', status='predicting', tasks_to_predict=8, tasks_predicted=3
    )
    html = client_owner.get(page_url(image_project)).content.decode()
    assert reload in html
    assert '<progress max="8" value="3">37%</progress> 3/8' in html


def test_post_valid_saves_the_policy(client_owner, image_project):
    from ml.models import MLBackend

    from ls_extensions.retraining.models import RetrainingPolicy

    backend = MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9/', title='m')
    response = client_owner.post(page_url(image_project), valid_form(ml_backend=str(backend.id), repredict=None))
    assert response.status_code == 302
    assert response['Location'] == f'/projects/{image_project.id}/retraining/?done=saved'
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.enabled and not policy.repredict
    assert (policy.threshold, policy.min_interval_seconds, policy.batch_size) == (7, 60, 25)
    assert policy.training_timeout_seconds == 900 and policy.ml_backend_id == backend.id

    html = client_owner.get(response['Location']).content.decode()
    assert 'Policy saved.' in html
    assert f'<option value="{backend.id}" selected>' in html

    # unchecking "enabled" and clearing the backend are saved too
    client_owner.post(page_url(image_project), valid_form(enabled=None, ml_backend=''))
    policy.refresh_from_db()
    assert not policy.enabled and policy.ml_backend_id is None


@pytest.mark.parametrize(
    'field, value, message',
    [
        ('threshold', '0', 'greater than or equal to 1'),
        ('threshold', 'lots', 'valid integer'),
        ('batch_size', '5000', 'less than or equal to 1000'),
        ('min_interval_seconds', '-1', 'greater than or equal to 0'),
    ],
)
def test_post_invalid_is_400_with_the_message_and_saves_nothing(client_owner, image_project, field, value, message):
    from ls_extensions.retraining.models import RetrainingPolicy

    RetrainingPolicy.objects.create(project=image_project, threshold=20)
    response = client_owner.post(page_url(image_project), valid_form(**{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'The policy was not saved' in html and message in html
    assert f'name="{field}"' in html and f'value="{value}"' in html  # what was typed stays in the form
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert (policy.enabled, policy.threshold, policy.batch_size, policy.min_interval_seconds) == (False, 20, 50, 0)


def test_backend_of_another_project_is_400(client_owner, image_project, user):
    from ml.models import MLBackend

    from ls_extensions.retraining.models import RetrainingPolicy
    from tests.conftest import make_project
    from tests.label_configs import IMAGE_BOXES

    other = make_project(user, IMAGE_BOXES, 'other')
    backend = MLBackend.objects.create(project=other, url='http://127.0.0.1:9/', title='m')
    response = client_owner.post(page_url(image_project), valid_form(ml_backend=str(backend.id)))
    assert response.status_code == 400
    assert 'belongs to another project' in response.content.decode()
    response = client_owner.post(page_url(image_project), valid_form(ml_backend='999999'))
    assert response.status_code == 400
    assert not RetrainingPolicy.objects.filter(project=image_project, enabled=True).exists()


def test_retrain_now_button(client_owner, image_project, enqueued, django_capture_on_commit_callbacks):
    from ls_extensions.retraining.models import RetrainingPolicy

    with django_capture_on_commit_callbacks(execute=True):
        response = client_owner.post(page_url(image_project), {'action': 'retrain'})
    assert response.status_code == 302
    assert response['Location'].endswith('?done=requested')
    assert RetrainingPolicy.objects.get(project=image_project).pending
    assert enqueued == [('start_run', (image_project.id, 'manual (page)'), None)]
    html = client_owner.get(response['Location']).content.decode()
    assert 'Retraining requested' in html
    assert '<dd id="pending"><span class="badge yes">yes</span></dd>' in html


def test_retrain_now_while_running_says_a_run_follows(client_owner, image_project, enqueued):
    from ls_extensions.retraining.models import RetrainingPolicy

    RetrainingPolicy.objects.create(project=image_project, running=True)
    response = client_owner.post(page_url(image_project), {'action': 'retrain'})
    assert response['Location'].endswith('?done=queued')
    assert 'one more run will follow it' in client_owner.get(response['Location']).content.decode()


def test_anonymous_is_sent_to_login(client, image_project, enqueued):
    from django.conf import settings

    from ls_extensions.retraining.models import RetrainingPolicy

    response = client.get(page_url(image_project))
    assert response.status_code == 302
    assert response['Location'].startswith(settings.LOGIN_URL + '?next=')
    assert client.post(page_url(image_project), {'action': 'retrain'}).status_code == 302
    assert client.post(page_url(image_project), valid_form()).status_code == 302
    assert not RetrainingPolicy.objects.filter(project=image_project).exists()
    assert enqueued == []


def test_other_organizations_get_404(client_stranger, image_project, enqueued):
    from ls_extensions.retraining.models import RetrainingPolicy

    assert client_stranger.get(page_url(image_project)).status_code == 404
    assert client_stranger.post(page_url(image_project), {'action': 'retrain'}).status_code == 404
    assert client_stranger.post(page_url(image_project), valid_form()).status_code == 404
    assert client_stranger.get('/projects/999999/retraining/').status_code == 404
    assert not RetrainingPolicy.objects.filter(project=image_project).exists()
    assert enqueued == []


def test_data_manager_action_points_to_the_page(client_owner, image_project, enqueued):
    response = client_owner.post(
        f'/api/dm/actions?id=retrain_now&project={image_project.id}',
        {'selectedItems': {'all': True, 'excluded': []}},
        content_type='application/json',
    )
    assert response.status_code == 200, response.content
    assert f'/projects/{image_project.id}/retraining/' in response.json()['detail']


def test_run_results_read_as_values_with_the_model_servers_message(client_owner, image_project):
    """A finished run: loss, mAP before -> after, images, seconds as labelled values, the backend's own note,
    and none of the progress it had mid-run; a run going shows its latest epoch and loss."""
    from django.utils import timezone

    from ls_extensions.retraining.models import TrainingRun

    now = timezone.now()
    metrics = {
        'loss': 0.123456,
        'map_before': 0.1,
        'map_after': 0.6543,
        'train_images': 6,
        'eval_images': 2,
        'epochs': 25,
        'seconds_per_epoch': 0.05,
        'training_seconds': 4.2,
        'run_seconds': 71,
        'progress': {'epoch': 3, 'epochs': 25, 'loss': 9.9},
        'unreachable_polls': 0,
        'backend_message': 'trained on 6 images; mAP needs at least 10 annotated images',
    }
    done = TrainingRun.objects.create(
        project=image_project, trigger='threshold', status='succeeded', metrics=metrics, started_at=now, finished_at=now
    )
    going = TrainingRun.objects.create(
        project=image_project, trigger='manual (page)', status='training', metrics={'progress': metrics['progress']}
    )
    html = client_owner.get(page_url(image_project)).content.decode()
    row = html[html.index(f'<tr id="run-{done.id}">') :]
    row = row[: row.index('</tr>')]
    for label, value in [
        ('Loss', '0.1235'),
        ('mAP@0.5 before → after', '0.1 → 0.654'),
        ('Images', '6 trained on, 2 held out for mAP'),
        ('Epochs', '25'),
        ('Seconds per epoch', '0.05 s'),
        ('Training took', '4.2 s'),
        ('Run took', '1 min 11 s'),
    ]:
        assert f'<dt>{label}</dt><dd>{value}</dd>' in row, label
    assert 'Model server: trained on 6 images; mAP needs at least 10 annotated images' in row
    assert 'Epoch' not in row.replace('Epochs', '') and '9.9' not in row  # no stale mid-run progress
    assert 'polls' not in row.lower()
    row = html[html.index(f'<tr id="run-{going.id}">') :]
    row = row[: row.index('</tr>')]
    assert '<dt>Epoch</dt><dd>3 of 25</dd>' in row and '<dt>Loss so far</dt><dd>9.9</dd>' in row


def test_the_pre_annotation_run_is_named_and_explained(client_owner, image_project):
    from ls_extensions.retraining import presentation
    from ls_extensions.retraining.models import TrainingRun

    TrainingRun.objects.create(
        project=image_project, trigger='predictions of the served version', status='queued', metrics={'predict_only': 1}
    )
    html = client_owner.get(page_url(image_project)).content.decode()
    assert 'predictions of the served version' not in html
    assert presentation.PREDICT_ONLY_TITLE in html and 'No training.' in html


def test_a_model_in_error_says_why_on_the_page(client_owner, image_project):
    from ml.models import MLBackend, MLBackendState

    MLBackend.objects.create(
        project=image_project,
        url='http://127.0.0.1:9/',
        title='fishnet',
        state=MLBackendState.ERROR,
        error_message="Label Studio refused the model server's legacy token (401)",
    )
    html = client_owner.get(page_url(image_project)).content.decode()
    assert 'Model: fishnet — Error: Label Studio refused the model server&#x27;s legacy token (401)' in html


def test_retrain_now_needs_no_selected_task_and_the_dialog_names_no_placeholder():
    from django.conf import settings

    action = settings.DATA_MANAGER_ACTIONS['retrain_now']
    assert '<id>' not in action['dialog']['text'] and '"Retraining"' in action['dialog']['text']


def test_the_stream_form_sets_warm_up_and_diversity(client_owner, image_project):
    from ls_extensions.scoring.models import ScoringPolicy

    form = {'action': 'stream', 'diverse': 'on', 'warmup_annotations': '35'}
    response = client_owner.post(page_url(image_project), form)
    assert response.status_code == 302 and response['Location'].endswith('?done=stream')
    policy = ScoringPolicy.objects.get(project=image_project)
    assert (policy.diverse, policy.warmup_annotations) == (True, 35)
    html = client_owner.get(response['Location']).content.decode()
    assert 'Stream settings saved.' in html and 'name="diverse" checked' in html and 'value="35"' in html

    refused = client_owner.post(page_url(image_project), {'action': 'stream', 'warmup_annotations': '-3'})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert (
        'The stream settings were not saved' in html and 'greater than or equal to 0' in html and 'value="-3"' in html
    )
    policy.refresh_from_db()
    assert (policy.diverse, policy.warmup_annotations) == (True, 35)


def test_predict_labeled_is_saved_from_the_form(client_owner, image_project):
    from ls_extensions.retraining.models import RetrainingPolicy

    assert client_owner.post(page_url(image_project), valid_form(predict_labeled='on')).status_code == 302
    assert RetrainingPolicy.objects.get(project=image_project).predict_labeled
    html = client_owner.get(page_url(image_project)).content.decode()
    assert 'name="predict_labeled" checked' in html
