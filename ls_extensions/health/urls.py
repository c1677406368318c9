from django.urls import path

from ls_extensions.health import views

urlpatterns = [
    path('api/ls-ext/health/', views.ready, name='ls_ext_health'),
    path('api/ls-ext/health/live/', views.live, name='ls_ext_health_live'),
]
