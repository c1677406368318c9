"""The scoring settings (``LS_EXT_SCORING_*``): where scoring jobs run, when one counts as stalled."""

from ls_extensions.conf import Setting

RUNNER = Setting(
    'LS_EXT_SCORING_RUNNER',
    str,
    'celery',
    choices=('celery', 'inline'),
    help="jobs on Celery, or 'inline' in the caller",
)
STALE_SECONDS = Setting(
    'LS_EXT_SCORING_STALE_SECONDS', float, 120.0, minimum=0, help='a job that stopped beating this long failed'
)
SWEEP_SECONDS = Setting('LS_EXT_SCORING_SWEEP_SECONDS', float, 60.0, minimum=0.1, help='the sweep on Celery beat')
BASE_GET_ALL_COLUMNS = Setting(
    'LS_EXT_SCORING_BASE_GET_ALL_COLUMNS',
    str,
    'data_manager.functions.get_all_columns',
    help="Label Studio's column list that ours extends (the DATA_MANAGER_GET_ALL_COLUMNS before the overlay's)",
)
BASE_FILTER_EXPRESSIONS = Setting(
    'LS_EXT_SCORING_BASE_FILTER_EXPRESSIONS',
    str,
    'data_manager.functions.custom_filter_expressions',
    help="Label Studio's filter expressions that ours extend (DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS before ours)",
)
