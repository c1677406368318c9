"""Routes of the scoring API, included ahead of Label Studio's own."""

from django.urls import path

from ls_extensions.scoring import api

app_name = 'ls_ext_scoring'

urlpatterns = [
    path('api/projects/<int:pk>/uncertainty/', api.UncertaintyPolicyAPI.as_view(), name='policy'),
    path('api/projects/<int:pk>/uncertainty/recompute/', api.UncertaintyRecomputeAPI.as_view(), name='recompute'),
    path('api/projects/<int:pk>/mistakes/', api.MistakesAPI.as_view(), name='mistakes'),
]
