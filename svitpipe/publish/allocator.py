"""The C allocator of a build process told to keep the memory a row group frees, for the next row group.

A build reads about a row group of image bytes at a time (up to ``--row-group-bytes``, 128 MB by default) into
Python ``bytes`` (tar and zip members, one block each), hands them to Arrow and frees them. glibc's ``malloc``
serves blocks over its mmap threshold with fresh mappings and gives the free top of its heap back to the system past
its trim threshold (both a few MB by default), so every row group's bytes are faulted in again, page by page. On the
2-core VM the benchmarks run on, that was 159,000 minor faults and 1-2 s of system time per 549 MB SA-1B build;
with a 32 MiB mmap threshold and a trim threshold of twice the row-group budget it is 33,000, for the same peak RSS
(the memory is reused, not added). Arrow's own pool (mimalloc) is left as it is.

Only a build tunes its process (``upload.main``, and so the workers it forks); importing the package changes
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from datasets.utils import logging

logger = logging.get_logger(__name__)

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX); larger values are refused.
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory(row_group_bytes: int) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the processes it forks afterwards); False where
    the C library is not glibc or refuses, leaving the allocator as it was."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = min(2 * row_group_bytes, 2**31 - 1)
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, trim) == 1
    if not done:
        logger.debug("mallopt refused the thresholds; the allocator is left as it was")
    return done
