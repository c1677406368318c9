"""A failure budget that stops the policy with a visible reason; the training step's claim (``requesting``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ('ls_ext_retraining', '0002_run_recovery'),
    ]

    operations = [
        migrations.AlterField(
            model_name='retrainingpolicy',
            name='failed_attempts',
            field=models.PositiveIntegerField(
                default=0, help_text='runs failed in a row (any cause); transient ones are retried with back-off'
            ),
        ),
        migrations.AddField(
            model_name='retrainingpolicy',
            name='stopped_reason',
            field=models.TextField(
                blank=True,
                default='',
                help_text='set when the failure budget is spent: no run starts by itself until cleared',
            ),
        ),
        migrations.AddField(
            model_name='retrainingpolicy',
            name='stopped_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='status',
            field=models.CharField(
                choices=[
                    ('queued', 'queued'),
                    ('requesting', 'requesting'),
                    ('training', 'training'),
                    ('predicting', 'predicting'),
                    ('succeeded', 'succeeded'),
                    ('failed', 'failed'),
                ],
                default='queued',
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='requested_at',
            field=models.DateTimeField(
                blank=True,
                help_text='when the training step was claimed (requesting): a lost request finds its job',
                null=True,
            ),
        ),
    ]
