"""Label Studio's ML backend create/update routes with our URL check (see ssrf_hooks), ahead of its own."""

from django.urls import path

from ls_extensions.ml_backend import ssrf_hooks

urlpatterns = [
    path('api/ml/', ssrf_hooks.URLCheckedMLBackendListAPI.as_view(), name='ls_ext_ml_list'),
    path('api/ml/<int:pk>', ssrf_hooks.URLCheckedMLBackendDetailAPI.as_view(), name='ls_ext_ml_detail'),
]
