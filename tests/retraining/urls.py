"""Our URLconf with the retraining routes first (what ls_extensions/urls.py gets once it includes them)."""

from django.urls import include, path

urlpatterns = [
    path('', include('ls_extensions.retraining.urls')),
    path('', include('ls_extensions.urls')),
]
