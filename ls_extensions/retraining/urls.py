"""Routes of the retraining API, included ahead of Label Studio's own."""

from django.urls import path

from ls_extensions.retraining import api, views

app_name = 'ls_ext_retraining'

urlpatterns = [
    path('api/projects/<int:pk>/retraining/', api.RetrainingPolicyAPI.as_view(), name='policy'),
    path('api/projects/<int:pk>/retraining/runs/', api.TrainingRunsAPI.as_view(), name='runs'),
    path('api/projects/<int:pk>/retraining/train/', api.RetrainNowAPI.as_view(), name='train'),
    path('projects/<int:pk>/retraining/', views.retraining_page, name='page'),
]
