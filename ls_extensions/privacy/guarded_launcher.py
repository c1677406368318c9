"""Run stock ``label-studio`` with nothing of ours but the egress guard.

Used by the tests to show what a stock install tries to reach: the guard records each
attempt (``LS_EXT_EGRESS_LOG``) and refuses it, so nothing is actually sent.

    python -m ls_extensions.privacy.guarded_launcher start --no-browser -p 8080
"""

import sys

from ls_extensions.privacy import egress


def main():
    egress.install_from_env()
    from label_studio.server import main as label_studio_main

    sys.argv[0] = 'label-studio'
    return label_studio_main()


if __name__ == '__main__':
    sys.exit(main())
