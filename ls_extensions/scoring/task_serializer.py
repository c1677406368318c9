"""Label Studio's task serializer plus the scoring fields, installed with ``TASK_SERIALIZER``.

Label Studio builds its Data Manager serializer on ``load_func(settings.TASK_SERIALIZER)`` while
``tasks.serializers`` is being imported, so this module must import nothing but that base class:
never import it from our own code (it would re-enter ``tasks.serializers`` half-initialized).
The fields are read-only and skipped when a task has no such annotation (every other use of the
serializer), exactly like Label Studio's own ``predictions_score``.

It also cuts Label Studio's per-page floor: serialized as a list (a Data Manager page), the tasks'
``comment_authors`` are fetched in one query instead of one query per task.
"""

from django.db.models import Model, prefetch_related_objects
from rest_framework import serializers
from tasks.serializers import BaseTaskSerializer


class TaskListSerializer(serializers.ListSerializer):
    """A list of tasks whose many-to-many ``comment_authors`` come from one prefetch query."""

    prefetch = True  # benchmarks/dm_sort.py turns it off to measure Label Studio's own floor

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, 'all') else data)
        if not self.prefetch or 'comment_authors' not in self.child.fields:
            return super().to_representation(items)
        tasks = [item for item in items if isinstance(item, Model)]
        if tasks:
            prefetch_related_objects(tasks, 'comment_authors')
        return super().to_representation(items)


class ScoredTaskSerializer(BaseTaskSerializer):
    uncertainty = serializers.FloatField(read_only=True, help_text='Model uncertainty in [0, 1]')
    uncertainty_model_version = serializers.CharField(read_only=True, help_text='Version the uncertainty came from')
    mistake = serializers.FloatField(read_only=True, help_text='Possible annotation mistake in [0, 1]')
    mistake_kinds = serializers.CharField(read_only=True, help_text='Possible mistakes in words: "2 missing, 1 off"')
    diverse_order = serializers.FloatField(
        read_only=True, help_text='Place among near-duplicates shown, plus 1 - uncertainty (sort ascending)'
    )

    @classmethod
    def many_init(cls, *args, **kwargs):
        """DRF's list, as a :class:`TaskListSerializer` unless a subclass chose its own list class."""
        serializer = super().many_init(*args, **kwargs)
        if type(serializer) is serializers.ListSerializer:
            serializer.__class__ = TaskListSerializer
        return serializer

    class Meta(BaseTaskSerializer.Meta):
        pass
