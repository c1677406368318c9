"""The uncertainty stream through Label Studio's real "next task" API, and the guard on the one patch."""

import inspect
import threading

import pytest

from tests.conftest import box, logged_in_client, make_user
from tests.scoring.conftest import make_tasks, predict


def next_task(client, project):
    response = client.get(f'/api/projects/{project.id}/next/')
    assert response.status_code == 200, response.content
    return response.json()['id']


def label(task_id, user):
    from tasks.models import Annotation, Task

    task = Task.objects.get(pk=task_id)
    Annotation.objects.create(task=task, project=task.project, completed_by=user, result=[box(1, 1, 5, 5)])


def annotators(organization, count):
    users = [make_user(f'annotator{i}@example.org', organization) for i in range(count)]
    return users, [logged_in_client(u) for u in users]


def next_tasks_at_once(clients, project):
    """Each client asks for the next task at the same instant (a barrier, one thread each): ({index: task
    id}, [exceptions])."""
    barrier, served, errors = threading.Barrier(len(clients)), {}, []

    def pull(index, client):
        from django.db import connection

        try:
            barrier.wait()
            served[index] = next_task(client, project)
        except Exception as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pull, args=(i, c)) for i, c in enumerate(clients)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    return served, errors


def stream_on(project):
    """The project chooses our stream (what the action and ``PATCH .../uncertainty/ {"stream": true}`` do)."""
    from ls_extensions.scoring import services
    from ls_extensions.scoring.models import ScoringPolicy

    services.choose_stream(project, True)
    ScoringPolicy.objects.filter(project=project).update(warmup_annotations=0)  # these tests rank from the start


def test_the_patch_sits_where_label_studio_calls_it():
    """Fails when Label Studio moves or reshapes what ls_extensions.scoring.next_task replaces."""
    import projects.functions.next_task as ls

    from ls_extensions.scoring import next_task as ours

    assert ls._try_uncertainty_sampling is ours.most_uncertain_first
    assert tuple(inspect.signature(ours.original).parameters) == ours.EXPECTED_PARAMETERS
    assert tuple(inspect.signature(ours.most_uncertain_first).parameters) == ours.EXPECTED_PARAMETERS
    call = 'next_task = _try_uncertainty_sampling(not_solved_tasks, project, user_solved_tasks_array, user, prepared_tasks)'
    source = inspect.getsource(ls.get_task_from_qs_with_sampling)
    assert 'elif project.sampling == project.UNCERTAINTY:' in source and call in source
    assert tuple(inspect.signature(ls._get_first_unlocked).parameters) == ('tasks_query', 'user')
    assert 'select_for_update(skip_locked=True)' in inspect.getsource(ls._get_first_unlocked)
    ours.install()  # idempotent
    assert ls._try_uncertainty_sampling is ours.most_uncertain_first


@pytest.mark.django_db
def test_serves_the_most_uncertain_unlabeled_task_then_the_rest_in_order(client_owner, user, scored_project):
    stream_on(scored_project)
    tasks = list(scored_project.tasks.order_by('id').values_list('id', flat=True))
    served = []
    for _ in range(5):
        served.append(next_task(client_owner, scored_project))
        assert next_task(client_owner, scored_project) == served[-1]  # the user's lock holds it
        label(served[-1], user)
    assert served == [tasks[4], tasks[1], tasks[2], tasks[0], tasks[3]]
    assert client_owner.get(f'/api/projects/{scored_project.id}/next/').status_code == 404


@pytest.mark.django_db
def test_each_annotator_gets_a_different_task_in_uncertainty_order(organization, scored_project):
    stream_on(scored_project)
    tasks = list(scored_project.tasks.order_by('id').values_list('id', flat=True))
    _, clients = annotators(organization, 5)
    assert [next_task(c, scored_project) for c in clients] == [tasks[4], tasks[1], tasks[2], tasks[0], tasks[3]]


@pytest.mark.django_db
def test_without_predictions_it_is_sequential_and_off_is_label_studio(client_owner, image_project):
    tasks = make_tasks(image_project, 3)
    stream_on(image_project)
    assert next_task(client_owner, image_project) == tasks[0].id
    predict(tasks[2], 'v1', scores=[0.1])
    image_project.sampling = image_project.SEQUENCE
    image_project.save(update_fields=['sampling'])
    other = logged_in_client(make_user('seq@example.org', image_project.organization))
    assert next_task(other, image_project) == tasks[1].id  # Label Studio's own order, tasks[0] is locked


def sampling(client, project, value):
    """Settings > Annotation > Sampling, through Label Studio's own project API."""
    response = client.patch(f'/api/projects/{project.id}/', {'sampling': value}, content_type='application/json')
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_uncertainty_sampling_stays_label_studio_s_unless_the_project_chose_ours(client_owner, user, image_project):
    """Label Studio ranks by the task score (lowest first), ours by the weakest box: the two orders differ."""
    from ls_extensions.scoring.models import ScoringPolicy

    policy_url = f'/api/projects/{image_project.id}/uncertainty/'
    tasks = make_tasks(image_project, 4)
    for task, (score, weakest_box) in zip(tasks, [(0.1, 0.9), (0.9, 0.2), (0.3, 0.8), (0.5, 0.4)], strict=True):
        predict(task, '', scores=[weakest_box], score=score)  # '': the version Label Studio's sampling reads
    sampling(client_owner, image_project, 'Uncertainty sampling')
    assert client_owner.get(policy_url).json()['stream'] is False
    assert next_task(client_owner, image_project) == tasks[0].id  # Label Studio's: lowest task score
    label(tasks[0].id, user)

    body = {'stream': True, 'warmup_annotations': 0}
    response = client_owner.patch(policy_url, body, content_type='application/json')
    assert response.status_code == 200 and response.json()['stream'] is True
    assert ScoringPolicy.objects.get(project=image_project).stream is True  # stored, not inferred
    assert next_task(client_owner, image_project) == tasks[1].id  # ours: 1 - 0.2 (Label Studio's: tasks[2])
    label(tasks[1].id, user)

    # another sampling chosen in the settings ends our choice; "Uncertainty sampling" again is Label Studio's
    sampling(client_owner, image_project, 'Sequential sampling')
    assert ScoringPolicy.objects.get(project=image_project).stream is False
    sampling(client_owner, image_project, 'Uncertainty sampling')
    assert client_owner.get(policy_url).json()['stream'] is False
    assert next_task(client_owner, image_project) == tasks[2].id  # Label Studio's (ours: tasks[3], 1 - 0.4)


@pytest.mark.django_db
def test_turning_the_stream_off_gives_label_studio_s_sequence_back(client_owner, scored_project):
    stream_on(scored_project)
    url = f'/api/projects/{scored_project.id}/uncertainty/'
    response = client_owner.patch(url, {'stream': False}, content_type='application/json')
    assert response.status_code == 200 and response.json()['stream'] is False
    scored_project.refresh_from_db()
    assert scored_project.sampling == scored_project.SEQUENCE
    first = scored_project.tasks.order_by('id').first().id
    assert next_task(client_owner, scored_project) == first


@pytest.mark.django_db
def test_the_stream_keeps_the_tabs_filters(client_owner, scored_project):
    from tests.scoring.conftest import create_view, number_filter

    stream_on(scored_project)
    tasks = list(scored_project.tasks.order_by('id').values_list('id', flat=True))
    view = create_view(client_owner, scored_project, ['tasks:id'], number_filter('less', 0.5))
    response = client_owner.get(f'/api/projects/{scored_project.id}/next/?view={view}')
    assert response.json()['id'] == tasks[2]  # the most uncertain among those under 0.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_get_distinct_tasks_in_uncertainty_order(organization, image_project):
    """N annotators ask for the next task at the same instant: N different tasks, the N most uncertain."""
    tasks = make_tasks(image_project, 30)
    for i, task in enumerate(tasks):
        predict(task, 'v1', scores=[(i * 7 % 30) / 30])  # uncertainty 1 - score, all distinct
    stream_on(image_project)
    _, clients = annotators(organization, 8)
    served, errors = next_tasks_at_once(clients, image_project)
    assert errors == []
    by_uncertainty = sorted(tasks, key=lambda t: (t.predictions.get().result[0]['score'], t.id))
    assert sorted(served.values()) == sorted(t.id for t in by_uncertainty[:8])
    assert len(set(served.values())) == 8
