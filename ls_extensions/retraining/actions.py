"""The Data Manager action "Retrain now"."""

from django.urls import reverse

from ls_extensions.permissions import action_refusal
from ls_extensions.retraining import triggers


def retrain_now(project, queryset, **kwargs):
    refusal = action_refusal(project, kwargs)
    if refusal:
        return refusal
    policy = triggers.trigger_now(project.id, 'manual (Data Manager)')
    page = reverse('ls_ext_retraining:page', args=[project.id])
    if policy.running:
        return {
            'detail': f'A training run is going; one more run will follow it. Progress and history: {page}',
            'page': page,
        }
    return {
        'detail': "Retraining requested: the project's ML backend trains on all annotations in the background. "
        f'Progress and history: {page}',
        'page': page,
    }
