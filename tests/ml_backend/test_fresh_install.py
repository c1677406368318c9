"""A fresh install: Label Studio as ``make run`` starts it, the model server as the README starts it, no extra step.

Label Studio 1.23 turns legacy API tokens off for new organizations, yet the token its ML protocol hands
a backend in ``/setup`` is the project creator's legacy token: on stock settings every image read of
the model server is a 401 and "Retrieve predictions" stores nothing, silently. Our settings enable legacy
tokens for new organizations (``settings/overlay.py``), and ``manage.py serve_ml_backend`` reads from
the Label Studio on this machine without ``--ls-url``. Both are real processes here: Label Studio
without ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN`` in its environment, the model server started through
``manage.py`` with only ``PORT`` (as ``make run`` has it).

And the failure is visible: a model server whose token Label Studio refuses fails ``/setup``, so the
"Connect model" dialog answers with the reason and the cure instead of connecting a model that
predicts nothing.
"""

import pytest

from ls_extensions.ml_backend import ssrf, synthetic
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import TORCH_ADAPTER, ModelServerProcess
from tests.support.api import TokenApi, png_bytes
from tests.support.server import REPO, LabelStudioServer, migrated_database

TOKEN = 'fresh-install-token-0123456789'
LS_ENV = {
    'LABEL_STUDIO_USERNAME': 'owner@example.org',
    'LABEL_STUDIO_PASSWORD': 'secret-pass-123',
    'LABEL_STUDIO_USER_TOKEN': TOKEN,
    **ssrf.env(),
    'ML_TIMEOUT_SETUP': '30',  # a loaded 2-core machine: the model server checks its token inside /setup
}


@pytest.fixture(scope='module')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


def manage_py_model_server(workdir, ls_port, data_dir):
    """``manage.py serve_ml_backend`` (the README's command) with the plain-PyTorch adapter, no --ls-url."""
    model = ModelServerProcess(workdir, ['--adapter', TORCH_ADAPTER, '--model-dir', str(workdir / 'models')])
    at = model.args.index('-m')
    model.args[at : at + 2] = [str(REPO / 'manage.py'), 'serve_ml_backend']
    # what `make run` exports; nothing names Label Studio's URL
    model.env.update(PORT=str(ls_port), DJANGO_SETTINGS_MODULE='settings.offline', LABEL_STUDIO_BASE_DATA_DIR=data_dir)
    return model


def test_predictions_on_a_fresh_install_and_a_refused_token_shown_on_connect(tmp_path, template_db):
    pytest.importorskip('torch', reason='torch not installed (scripts/install-ml.sh)')
    images = synthetic.dataset(3, seed=5, size=96)
    ls = LabelStudioServer(tmp_path / 'ls', template_db, env=LS_ENV)
    ls.env.pop('LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN', None)  # a fresh install: nobody set it
    with ls:
        api = TokenApi(ls.url, TOKEN, timeout=300)
        pid = api('POST', '/api/projects', json={'title': 'fish', 'label_config': IMAGE_BOXES})['id']
        files = [(f'f{i}', (f'img{i}.png', png_bytes(img), 'image/png')) for i, (img, _) in enumerate(images)]
        api('POST', f'/api/projects/{pid}/import', files=files)

        # a model server holding a token Label Studio refuses: connecting it says so, nothing is saved
        refused_env = {'LABEL_STUDIO_API_KEY': 'not-a-token-of-this-label-studio'}
        with ModelServerProcess(
            tmp_path / 'refused', ['--adapter', TORCH_ADAPTER], ls_url=ls.url, env=refused_env
        ) as refused:
            answer = api('POST', '/api/ml', json={'url': refused.url, 'project': pid, 'title': 'm'}, expect=(400,))
        message = str(answer)
        assert "Label Studio refused the model server's legacy token (401)" in message, message
        assert 'API Tokens Settings' in message and 'LABEL_STUDIO_API_KEY' in message
        assert api('GET', f'/api/ml?project={pid}') == []

        # the README's model server, on the same machine: connect, retrieve, predictions stored
        with manage_py_model_server(tmp_path / 'ms', ls.port, str(tmp_path / 'ms-data')) as model:
            backend = api('POST', '/api/ml', json={'url': model.url, 'project': pid, 'title': 'tiny'})
            assert backend['readable_state'] == 'Connected', backend
            api(
                'POST',
                f'/api/dm/actions?id=retrieve_tasks_predictions&project={pid}',
                json={'selectedItems': {'all': True, 'excluded': []}},
            )
            tasks = api('GET', f'/api/tasks?project={pid}&page_size=100')['tasks']
            stored = [p for t in tasks for p in api('GET', f'/api/predictions?task={t["id"]}')]
            assert len(stored) == len(images), model.log_tail()
            assert {p['model_version'] for p in stored} == {backend['model_version']}

            # an image deleted from the uploads: the action's answer says which task got no prediction and why
            extra, _ = synthetic.dataset(1, seed=9, size=96)[0]
            api('POST', f'/api/projects/{pid}/import', files=[('f', ('gone.png', png_bytes(extra), 'image/png'))])
            gone = max(api('GET', f'/api/tasks?project={pid}&page_size=100')['tasks'], key=lambda t: t['id'])
            upload = gone['data']['image'].removeprefix('/data/')
            (tmp_path / 'ls' / 'media' / upload).unlink()
            answer = api(
                'POST',
                f'/api/dm/actions?id=retrieve_tasks_predictions&project={pid}',
                json={'selectedItems': {'all': True, 'excluded': []}},
                expect=(422,),
            )
            detail = answer['detail']
            served = f'3 of 4 tasks have a prediction of the served model ({backend["model_version"]})'
            assert detail.startswith(f'{served}; 1 got none: task {gone["id"]}.'), detail
            assert f'Task {gone["id"]}: cannot read {gone["data"]["image"]} from Label Studio' in detail, detail
            assert answer['tasks_without_prediction'] == [gone['id']]
            assert api('GET', f'/api/predictions?task={gone["id"]}') == []  # nothing made up for it
