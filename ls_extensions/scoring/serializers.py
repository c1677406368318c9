"""API payloads: the scoring policy a user may change, a job's progress, the stored possible mistakes."""

from rest_framework import serializers

from ls_extensions.scoring import disagreement, measures
from ls_extensions.scoring.models import RecomputeJob, TaskMistake


class PolicyUpdateSerializer(serializers.Serializer):
    measure = serializers.CharField(required=False, help_text='One of the measures listed by GET')
    pinned_version = serializers.CharField(
        required=False, allow_null=True, help_text='A model version or ML backend title; null follows the newest'
    )
    stream = serializers.BooleanField(required=False, help_text='Label All Tasks serves the most uncertain first')
    diverse = serializers.BooleanField(
        required=False, help_text='The stream serves one task per cluster of near-duplicate images first'
    )
    warmup_annotations = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=1_000_000,
        help_text='Labeled tasks before the stream trusts the model: until then it serves a random task (0: none)',
    )

    def validate_measure(self, value):
        try:
            return measures.check_measure(value)
        except measures.UnknownMeasure as exc:
            raise serializers.ValidationError(str(exc)) from None


class MistakeQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=disagreement.KINDS, required=False, help_text='Only tasks with at least one finding of this kind'
    )
    min_value = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text='Only tasks whose possible mistake is at least this'
    )
    page = serializers.IntegerField(required=False, min_value=1, default=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class MistakeSerializer(serializers.ModelSerializer):
    task = serializers.IntegerField(source='task_id', read_only=True)
    worst_frames = serializers.SerializerMethodField(help_text='Videos: the frames that disagree most, worst first')

    class Meta:
        model = TaskMistake
        exclude = ['id', 'project']

    def get_worst_frames(self, row) -> list[int]:
        return [int(frame) for frame in row.worst_frames.split(',') if frame.strip()]


class MistakePageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text='Tasks that match the query')
    model_version = serializers.CharField(allow_null=True, help_text='The version the annotations are compared with')
    results = MistakeSerializer(many=True)


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = RecomputeJob
        exclude = ['project']


# ---------------------------------------------------------------- the policy report (API docs only)


class KnownVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    first_seen_at = serializers.DateTimeField()
    source = serializers.CharField(help_text='Where the version was first seen (a prediction or the ML backend)')


class TaskCountsSerializer(serializers.Serializer):
    ranked = serializers.IntegerField(help_text='Tasks with an uncertainty value')
    unranked = serializers.IntegerField(help_text='Tasks without a value (no prediction of the active version)')
    clamped = serializers.IntegerField(help_text='Scores outside [0, 1], clamped')
    ignored = serializers.IntegerField(help_text='Predictions ignored (no usable score)')


class PolicyReportSerializer(serializers.Serializer):
    """What ``GET /api/projects/<id>/uncertainty/`` answers (``scoring.api.policy_report``)."""

    project = serializers.IntegerField()
    measure = serializers.CharField(help_text='The chosen uncertainty measure')
    measures = serializers.DictField(child=serializers.CharField(), help_text='Every measure, with its description')
    pinned_version = serializers.CharField(allow_null=True, help_text='The pinned model version; null: the newest')
    active_version = serializers.CharField(allow_null=True, help_text='The version the stored values come from')
    active_measure = serializers.CharField(allow_null=True, help_text='The measure the stored values come from')
    desired_version = serializers.CharField(allow_null=True, help_text='The version the policy asks for')
    up_to_date = serializers.BooleanField(help_text='Every value is of the desired version and measure')
    versions = KnownVersionSerializer(many=True, help_text='Model versions seen in the project, newest first')
    project_model_version = serializers.CharField(allow_null=True, allow_blank=True)
    project_model_version_is_backend_title = serializers.BooleanField()
    stream = serializers.BooleanField(help_text='Label All Tasks serves the most uncertain task first')
    diverse = serializers.BooleanField(help_text='The stream serves one task per cluster of near-duplicates first')
    warmup_annotations = serializers.IntegerField(help_text='Labeled tasks the warm-up lasts (0: no warm-up)')
    labeled_tasks = serializers.IntegerField(help_text='Labeled tasks of the project now')
    stream_mode = serializers.CharField(
        help_text='What the stream serves now: "off", "warm-up (random)", "uncertainty" or "uncertainty, diverse"'
    )
    tasks = TaskCountsSerializer()
    job = JobSerializer(allow_null=True, help_text='The latest recompute job, or null')
