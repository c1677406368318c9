"""The stream as an explicit choice, a policy's unfinished recompute, a running job's heartbeat.

Existing policies keep their rows as complete (``scored_generation = generation``). ``stream`` starts
off everywhere: a project set to "Uncertainty sampling" gets Label Studio's own sampling until it
chooses ours again (the action or ``PATCH .../uncertainty/ {"stream": true}``).
"""

from django.db import migrations, models
from django.db.models import F


def rows_are_complete(apps, schema_editor):
    apps.get_model('ls_ext_scoring', 'ScoringPolicy').objects.update(scored_generation=F('generation'))


class Migration(migrations.Migration):
    dependencies = [('ls_ext_scoring', '0001_initial')]

    operations = [
        migrations.AddField(
            model_name='scoringpolicy',
            name='scored_generation',
            field=models.PositiveIntegerField(
                default=0,
                help_text='The generation whose recompute finished; behind ``generation``: rows are incomplete',
            ),
        ),
        migrations.AddField(
            model_name='scoringpolicy',
            name='stream',
            field=models.BooleanField(
                default=False,
                help_text='The project chose our stream: with "Uncertainty sampling", Label All Tasks serves by '
                "stored uncertainty; otherwise Label Studio's own uncertainty sampling",
            ),
        ),
        migrations.AddField(
            model_name='recomputejob',
            name='heartbeat_at',
            field=models.DateTimeField(help_text='Last sign of life of a running job (each batch)', null=True),
        ),
        migrations.RunPython(rows_are_complete, migrations.RunPython.noop),
    ]
