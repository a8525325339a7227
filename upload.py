"""Build Hub-ready Parquet shards and a dataset card, and optionally push them: ``python upload.py --help``.

The same command as ``svit-internvl upload``; it lives in ``svitpipe.publish.upload``, and this file keeps the name
the project's design gives it.
"""

import os
import sys

from svitpipe.publish.upload import main as upload_main


def main(argv=None) -> int:
    return upload_main(argv, command=[sys.executable, os.path.abspath(__file__)])


if __name__ == "__main__":
    sys.exit(main())
