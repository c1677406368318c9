"""Routes of the video app; included before Label Studio's URLs, so the export routes below shadow its own.

`export_hooks` explains why four of Label Studio's export URLs are routed here first (each view hands
Label Studio's own formats back to Label Studio's view); `video-frames` is new.
"""

from django.urls import include, path

from . import api, export_hooks

app_name = 'ls_ext_video'

_project_urls = [
    path('<int:pk>/export/video-frames', api.VideoFramesExportAPI.as_view(), name='export-video-frames'),
    # Label Studio's data_export URLs, same paths (checked by tests/video/test_export_dialog.py)
    path('<int:pk>/export', export_hooks.VideoExportAPI.as_view(), name='project-export'),
    path('<int:pk>/export/formats', export_hooks.VideoExportFormatsListAPI.as_view(), name='project-export-formats'),
    path(
        '<int:pk>/exports/<int:export_pk>/convert',
        export_hooks.VideoExportConvertAPI.as_view(),
        name='project-exports-convert',
    ),
    path(
        '<int:pk>/exports/<int:export_pk>/download',
        export_hooks.VideoExportDownloadAPI.as_view(),
        name='project-exports-download',
    ),
]

urlpatterns = [
    path('api/projects/', include(_project_urls)),
]
