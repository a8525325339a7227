"""The builder under the name the project's design gives it: ``from svit_internvl import SVITInternVL``.

It lives in ``svitpipe.builder``; this module only re-exports it (``datasets`` >= 4 runs no loading scripts, so
nothing loads this file by path).
"""

from svitpipe.builder import SVITInternVL, SVITInternVLConfig, iter_examples, make_config

__all__ = ["SVITInternVL", "SVITInternVLConfig", "iter_examples", "make_config"]
