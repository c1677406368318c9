"""The fixtures build real Label Studio objects and the API sees them as a browser would."""


def test_fixtures_are_label_studio_models(image_project, image_tasks, predictions, annotations):
    from tasks.models import Annotation, Prediction, Task

    assert Task.objects.filter(project=image_project).count() == 5
    assert Prediction.objects.filter(project=image_project, model_version='v1').count() == 5
    assert Annotation.objects.filter(project=image_project).count() == 2
    assert image_project.get_parsed_config()['label']['type'] == 'RectangleLabels'


def test_api_answers_the_owner_with_its_tasks(client_owner, image_project, image_tasks):
    response = client_owner.get(f'/api/projects/{image_project.id}/')
    assert response.status_code == 200, response.content
    assert response.json()['task_number'] == 5


def test_api_refuses_another_organization(client_stranger, image_project):
    response = client_stranger.get(f'/api/projects/{image_project.id}/')
    assert response.status_code in (403, 404)


def test_anonymous_is_refused(client, image_project):
    response = client.get(f'/api/projects/{image_project.id}/')
    assert response.status_code == 401
