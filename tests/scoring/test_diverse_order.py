"""The Data Manager's "Diverse order": one task per group of near-duplicate images first, on real Label Studio
models, its Data Manager API and the clusters job."""

import json

import pytest

from ls_extensions.scoring import jobs
from ls_extensions.scoring.models import RecomputeJob, TaskCluster
from tests.scoring.conftest import create_view, number_filter, page, predict, stored
from tests.scoring.test_diversity import COPIES, SCENES, make_scenes, set_policy
from tests.scoring.test_next_task import label

pytestmark = pytest.mark.django_db

ACTION = 'order_diverse_uncertain_first'
EVERYTHING = json.dumps({'selectedItems': {'all': True, 'excluded': []}})


@pytest.fixture
def scenes(image_project):
    return make_scenes(image_project)


def run_action(client, project):
    response = client.post(
        f'/api/dm/actions?id={ACTION}&project={project.id}', EVERYTHING, content_type='application/json'
    )
    assert response.status_code == 200, response.content
    return response.json()


def column_ids(client, project):
    return {c['id'] for c in client.get(f'/api/dm/columns/?project={project.id}').json()['columns']}


def round_robin(ids):
    """The copies of each scene in turn (each scene's copies are stored most uncertain first)."""
    return [ids[s][c] for c in range(COPIES) for s in range(SCENES)]


def test_the_action_groups_every_task_and_opens_a_tab_one_scene_at_a_time(client_owner, image_project, scenes):
    from data_manager.models import View

    assert 'diverse_order' not in column_ids(client_owner, image_project)  # diversity off: no column
    answer = run_action(client_owner, image_project)
    assert 'diverse_order' in column_ids(client_owner, image_project)

    # the clusters job (inline in tests) read every image: copies share a cluster, scenes do not
    groups = dict(TaskCluster.objects.filter(project=image_project).values_list('task_id', 'cluster'))
    assert [len({groups[t] for t in scenes[s]}) for s in range(SCENES)] == [1] * SCENES
    assert len({groups[scenes[s][0]] for s in range(SCENES)}) == SCENES
    job = RecomputeJob.objects.filter(project=image_project, kind=RecomputeJob.CLUSTERS).get()
    assert (job.status, job.total, job.done) == (RecomputeJob.DONE, SCENES * COPIES, SCENES * COPIES)

    body = page(client_owner, answer['tab'])
    assert [task['id'] for task in body['tasks']] == round_robin(scenes)
    first = body['tasks'][0]
    assert first['diverse_order'] == pytest.approx(2 - stored(image_project)[first['id']][0])  # place 1, 1 - value

    again = run_action(client_owner, image_project)
    assert again['tab'] == answer['tab'] and View.objects.filter(project=image_project).count() == 1


def test_a_labeled_copy_covers_its_scene_and_the_labeled_task_goes_last(client_owner, user, image_project, scenes):
    tab = run_action(client_owner, image_project)['tab']
    label(scenes[1][0], user)
    body = page(client_owner, tab)
    # scene 1 is covered: its next copy comes after the first copy of every scene nobody labeled
    expected = [scenes[0][0], scenes[2][0], scenes[0][1], scenes[1][1], scenes[2][1], scenes[0][2], scenes[1][2]]
    assert [task['id'] for task in body['tasks']] == [*expected, scenes[2][2], scenes[1][0]]
    assert body['tasks'][-1]['diverse_order'] is None


def test_the_groups_follow_the_tabs_filters(client_owner, image_project, scenes):
    from ls_extensions.scoring.dm import DIVERSE_ORDER

    run_action(client_owner, image_project)
    view = create_view(client_owner, image_project, [f'tasks:{DIVERSE_ORDER}'], number_filter('greater', 0.45))
    # uncertainty > 0.45: all of scene 0 and two copies of scene 1; scene 2 is not in the tab's rows
    expected = [scenes[0][0], scenes[1][0], scenes[0][1], scenes[1][1], scenes[0][2]]
    assert [task['id'] for task in page(client_owner, view)['tasks']] == expected


def test_tasks_added_later_are_grouped_and_an_unreadable_image_is_a_group_of_its_own(
    client_owner, image_project, scenes
):
    from tasks.models import Task

    tab = run_action(client_owner, image_project)['tab']
    cloud = Task.objects.create(project=image_project, data={'image': 's3://bucket/elsewhere.jpg'})
    predict(cloud, 'v1', scores=[0.35])  # uncertainty 0.65: below scene 0's first copy, above scene 1's
    added = Task.objects.create(project=image_project, data={'image': Task.objects.get(pk=scenes[0][0]).data['image']})
    predict(added, 'v1', scores=[0.05])  # the most uncertain task, a copy of scene 0

    queued = jobs.keep_fresh(image_project.id)  # what a Data Manager load or the sweep calls
    queued.refresh_from_db()
    assert queued is not None and queued.kind == RecomputeJob.CLUSTERS and queued.total == 2
    assert TaskCluster.objects.get(task=cloud).cluster is None
    assert jobs.queue_cluster_fill(image_project.id) is None  # nothing left to group
    order = [task['id'] for task in page(client_owner, tab)['tasks']]
    assert order[:4] == [added.id, cloud.id, scenes[1][0], scenes[2][0]]
    assert order.index(scenes[0][0]) > order.index(scenes[2][0])  # the new copy took scene 0's first place


def test_the_stream_and_the_tab_agree(client_owner, user, image_project, scenes):
    from tests.scoring.test_next_task import next_task, stream_on

    stream_on(image_project)
    set_policy(image_project, warmup_annotations=0)
    tab = run_action(client_owner, image_project)['tab']
    for _ in range(SCENES + 1):
        served = next_task(client_owner, image_project)
        assert served == page(client_owner, tab)['tasks'][0]['id']
        label(served, user)


def test_every_task_read_works_with_the_column_on(client_owner, user, image_project, scenes):
    """Label Studio's single-task read and ``fields=all`` annotate every column at once, counts (a GROUP BY)
    included: the window must stay out of the GROUP BY (SQLite and PostgreSQL both refuse it there)."""
    run_action(client_owner, image_project)
    label(scenes[2][0], user)
    listed = client_owner.get(f'/api/tasks?project={image_project.id}&fields=all&page_size=100')
    assert listed.status_code == 200, listed.content
    orders = {task['id']: task['diverse_order'] for task in listed.json()['tasks']}
    assert orders[scenes[2][0]] is None and orders[scenes[0][0]] == pytest.approx(
        2 - stored(image_project)[scenes[0][0]][0]
    )
    one = client_owner.get(f'/api/tasks/{scenes[0][1]}')
    assert one.status_code == 200, one.content
    assert one.json()['id'] == scenes[0][1]
