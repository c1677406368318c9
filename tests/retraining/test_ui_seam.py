"""Guard of the template seam (ls_extensions/ui/__init__.py): fails when Label Studio changes what it uses.

Our ``base.html`` must still extend Label Studio's own (its app settings and React app render, our link
script comes after them), and the installed frontend bundle must still have the settings sidebar, the
Model settings path and the Data Manager's "Settings" button that the script finds. The browser test
(tests/browser/test_retraining_page.py) clicks through both links.
"""

from pathlib import Path

import pytest

from ls_extensions import ui

BUNDLE = Path(__import__('label_studio').__file__).resolve().parent.parent / 'web' / 'dist' / 'apps' / 'labelstudio'


def test_our_base_template_extends_label_studios_and_adds_the_link_script(rf):
    from django.contrib.auth.models import AnonymousUser
    from django.template.loader import get_template

    template = get_template('base.html')
    assert template.origin.name == str(Path(ui.TEMPLATE_DIR) / 'base.html')
    request = rf.get('/projects/1/data')
    request.user = AnonymousUser()
    html = template.render({}, request)
    assert 'id="app-settings"' in html and '/react-app/main.js' in html  # Label Studio's base.html
    assert html.index('/react-app/main.js') < html.index('id="ls-ext-project-links"')
    script = html[html.index('id="ls-ext-project-links"') :]
    assert ui.SETTINGS_MENU in script and ui.CONTEXT_BAR in script and ui.MODEL_SETTINGS_PATH in script


@pytest.mark.parametrize(
    'file, text, what',
    [
        ('main.css', ui.SETTINGS_MENU, "the settings sidebar's menu"),
        ('main.css', ui.CONTEXT_BAR, "the header's right context area (the Data Manager's buttons)"),
        ('main.js', 'title="Model",', 'the Model settings page'),
        ('main.js', f'.path="{ui.MODEL_SETTINGS_PATH.removeprefix("/settings")}"', 'the Model settings path'),
        ('main.js', '"/settings":"Settings"', "the Data Manager's Settings button"),
    ],
)
def test_the_bundle_still_has_what_the_script_finds(file, text, what):
    assert text in (BUNDLE / file).read_text(errors='replace'), f'Label Studio changed {what}: review ls_extensions/ui'


def test_label_studio_pages_of_a_project_render_through_our_base(client_owner, image_project):
    for path in (f'/projects/{image_project.id}/data', f'/projects/{image_project.id}/settings/ml'):
        html = client_owner.get(path).content.decode()
        assert 'id="ls-ext-project-links"' in html, path
