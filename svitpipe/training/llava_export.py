"""The LLaVA export under its former name: ``svitpipe.training.export`` with ``--format llava-onevision``.

``python -m svitpipe.training.llava_export --data ... --config ... --out ...`` runs
``python -m svitpipe.training.export --format llava-onevision ...``; :func:`export_llava` and the helpers are
``export``'s own.
"""

from __future__ import annotations

import sys
from typing import Optional

from .export import export_llava, iter_undecoded_rows, safe_image_path
from .export import main as _export_main

__all__ = ["export_llava", "iter_undecoded_rows", "main", "safe_image_path"]


def main(argv: Optional[list[str]] = None, prog: str = "python -m svitpipe.training.llava_export") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return _export_main(["--format", "llava-onevision", *argv], prog=prog)


if __name__ == "__main__":
    sys.exit(main())
