"""Our side of a snapshot conversion into a video format, beside Label Studio's own `ConvertedFormat` row.

`ConvertedFormat` (Label Studio's; the snapshot list shows it) holds the status, file and error. What a
worker needs to run the conversion again after a crash is not in it: the request's options, and when the
conversion last made progress (`heartbeat_at`). `attempts` counts claims: the claim of the worker that
owns the conversion now, so a worker presumed dead cannot overwrite the result of its successor.
"""

from django.db import models


class VideoConversion(models.Model):
    converted_format = models.OneToOneField(
        'data_export.ConvertedFormat', on_delete=models.CASCADE, related_name='ls_ext_video_conversion'
    )
    options = models.JSONField(default=dict, help_text='export options of the convert request (ids, labels, ...)')
    heartbeat_at = models.DateTimeField(db_index=True, help_text='last progress: published, claimed, or writing')
    attempts = models.PositiveIntegerField(default=0, help_text='claims by a worker; the latest one owns it')
    restarts = models.PositiveIntegerField(default=0, help_text='times it was found stale and published again')

    def __str__(self):
        return f'video conversion {self.converted_format_id} (attempt {self.attempts})'
