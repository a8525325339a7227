"""``python -m svitpipe.preview``: the ``svit-internvl preview`` command."""

import sys

from .command import main

sys.exit(main())
