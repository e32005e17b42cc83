"""``python -m torch2keras``: the command line (see ``torch2keras/cli.py``)."""

import sys

from .cli import main

sys.exit(main())
