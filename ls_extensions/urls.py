"""Our URLconf (settings.ROOT_URLCONF): our routes first, then all of Label Studio's."""

from django.urls import include, path

from ls_extensions.privacy import views as privacy_views

urlpatterns = [
    path('heidi-tips/', privacy_views.heidi_tips, name='ls_ext_heidi_tips'),
    path('', include('ls_extensions.video.urls')),
    path('', include('ls_extensions.scoring.urls')),
    path('', include('ls_extensions.retraining.urls')),
    path('', include('ls_extensions.health.urls')),
    path('', include('ls_extensions.ml_backend.urls')),  # /api/ml create/update: SSRF check of listed backends
    path('', include('core.urls')),
]
