"""The video settings (``LS_EXT_VIDEO_*``): the frame bound of one export, snapshot conversions' staleness."""

from ls_extensions.conf import Setting

MAX_FRAMES = Setting('LS_EXT_VIDEO_MAX_FRAMES', int, 1_000_000, minimum=1, help='most frames one video may export')
CONVERSION_STALE_SECONDS = Setting(
    'LS_EXT_VIDEO_CONVERSION_STALE_SECONDS', float, 600.0, minimum=0, help='a conversion without progress restarts'
)
CONVERSION_SWEEP_SECONDS = Setting('LS_EXT_VIDEO_CONVERSION_SWEEP_SECONDS', float, 60.0, minimum=0.1, help='on beat')
