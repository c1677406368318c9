"""The Data Manager action "Retrain now"."""

from ls_extensions.retraining import services


def retrain_now(project, queryset, **kwargs):
    policy = services.trigger_now(project.id, 'manual (Data Manager)')
    if policy.running:
        return {'detail': 'A training run is going; one more run will follow it.'}
    return {'detail': "Retraining requested: the project's ML backend trains in the background."}
