"""Every model change of ours ships with its migration: a field's new default or help text without one
would leave a user's database behind the code (``migrate`` says nothing, Django warns at every start)."""

import io

import pytest
from django.apps import apps
from django.core.management import call_command


@pytest.mark.django_db
def test_our_models_and_migrations_agree():
    ours = sorted(config.label for config in apps.get_app_configs() if config.name.startswith('ls_extensions.'))
    assert 'ls_ext_scoring' in ours and 'ls_ext_retraining' in ours
    out = io.StringIO()
    try:
        call_command('makemigrations', *ours, check=True, dry_run=True, stdout=out, verbosity=1)
    except SystemExit:
        pytest.fail(f'models changed without a migration:\n{out.getvalue()}')
