from django.db import transaction
from rest_framework import serializers

from ls_extensions.retraining import triggers
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

# kept by the counter and the runs, shown but never written through the API or the page
POLICY_STATE_FIELDS = [
    'changes_since_run',
    'pending',
    'pending_since',
    'pending_reason',
    'running',
    'last_run_at',
    'failed_attempts',
    'stopped_reason',
    'stopped_at',
    'updated_at',
]


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = RetrainingPolicy
        fields = [
            'project',
            'enabled',
            'threshold',
            'min_interval_seconds',
            'ml_backend',
            'repredict',
            'predict_labeled',
            'batch_size',
            'training_timeout_seconds',
            *POLICY_STATE_FIELDS,
        ]
        read_only_fields = ['project', *POLICY_STATE_FIELDS]
        extra_kwargs = {'threshold': {'min_value': 1}, 'batch_size': {'min_value': 1, 'max_value': 1000}}

    def update(self, instance, validated_data):
        """Write the edited fields only: the counter and trigger state change under our feet (F() updates).

        Saving is the user acting: a policy stopped by failures starts again (``triggers.resume``), in the
        same transaction, so what the save publishes finds it resumed.
        """
        for name, value in validated_data.items():
            setattr(instance, name, value)
        with transaction.atomic():
            instance.save(update_fields=[*validated_data, 'updated_at'])
            triggers.resume(instance.project_id)
        instance.refresh_from_db(fields=POLICY_STATE_FIELDS)
        return instance

    def validate_ml_backend(self, backend):
        if backend is not None and backend.project_id != self.instance.project_id:
            raise serializers.ValidationError('this ML backend belongs to another project')
        return backend


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = [
            'id',
            'project',
            'ml_backend',
            'trigger',
            'status',
            'annotations_used',
            'changes',
            'job_id',
            'version_before',
            'version_after',
            'tasks_to_predict',
            'tasks_predicted',
            'error',
            'retries',
            'recovered',
            'metrics',
            'created_at',
            'started_at',
            'finished_at',
            'heartbeat_at',
        ]
        read_only_fields = fields
