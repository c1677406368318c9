"""API payloads: the scoring policy a user may change, and a job's progress."""

from rest_framework import serializers

from ls_extensions.scoring import measures
from ls_extensions.scoring.models import RecomputeJob


class PolicyUpdateSerializer(serializers.Serializer):
    measure = serializers.CharField(required=False, help_text='One of the measures listed by GET')
    pinned_version = serializers.CharField(
        required=False, allow_null=True, help_text='A model version or ML backend title; null follows the newest'
    )
    stream = serializers.BooleanField(required=False, help_text='Label All Tasks serves the most uncertain first')

    def validate_measure(self, value):
        try:
            return measures.check_measure(value)
        except measures.UnknownMeasure as exc:
            raise serializers.ValidationError(str(exc)) from None


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = RecomputeJob
        exclude = ['project']
