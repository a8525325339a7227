"""``python -m svitpipe``: the ``svit-internvl`` command."""

import sys

from .cli import main

sys.exit(main())
