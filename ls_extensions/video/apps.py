"""Per-frame video export and video preparation."""

from django.apps import AppConfig


class VideoConfig(AppConfig):
    name = 'ls_extensions.video'
    label = 'ls_ext_video'
    verbose_name = 'Video export and preparation'
    default_auto_field = 'django.db.models.BigAutoField'

    def ready(self):
        from ls_extensions.video.importer import connect_upload_check

        connect_upload_check()  # warns (server log) about an uploaded video whose frames would mis-align
