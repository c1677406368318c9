"""Links to our pages inside Label Studio's own UI: THE TEMPLATE SEAM of this app.

Label Studio's React app has no hook for a settings-menu entry or a Data Manager button (its
settings sidebar is a fixed list in ``pages/Settings/index.jsx``, its Data Manager bar a fixed
``Settings`` link), and its Data Manager "Actions" menu is disabled until a task is selected. So the
overlay puts ``TEMPLATE_DIR`` first in ``TEMPLATES['DIRS']``: its ``base.html`` extends Label Studio's
own ``base.html`` (Django's recursive template loading) and adds one inline script to its
``bottomjs`` block. The script adds a "Retraining" entry after "Model" in the project's settings
sidebar and a "Retraining" button beside the Data Manager's "Settings" button, both linking to
``/projects/<id>/retraining/``. Nothing of Label Studio's template or bundle is copied or changed.

What the script relies on (the selectors below) is checked against the installed bundle by
``tests/retraining/test_ui_seam.py``, and the browser test clicks through both links; either fails
when Label Studio renames them.
"""

from pathlib import Path

TEMPLATE_DIR = str(Path(__file__).resolve().parent / 'templates')

# what the script finds in Label Studio's DOM (BEM class names of its components, prefixed lsf-; its routes)
SETTINGS_MENU = '.lsf-sidebar-menu__navigation'  # components/SidebarMenu: the settings sidebar
CONTEXT_BAR = '.lsf-menu-header__context-item_right'  # components/Menubar: where the Data Manager puts "Settings"
MODEL_SETTINGS_PATH = '/settings/ml'  # pages/Settings/MachineLearningSettings: path "/ml" under settings
