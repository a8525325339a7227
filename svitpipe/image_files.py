"""Reading one image's bytes, bounded: from an extracted folder (regular files only) or an archive member whose
declared size is checked first.

An extracted folder can hold anything a file system can: a FIFO (reading it waits forever), a link to ``/dev/zero``
(never ends), a directory where a file should be. Only regular files are read, links to regular files followed (users
link big folders in); anything else is refused as ``NotARegularFile``. An image larger than ``max_image_bytes``
(a config field, 256 MiB by default, far beyond any real one) is refused by its size, without reading it; a file
that grows while it is read is cut at the bound and refused too. Archive members are refused by their declared size
before any of their data is read (``check_member_size``); zip and tar readers stop at the declared size, so a member
that lies about it cannot make a read longer.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import is_local_path, xopen

from .bad_records import NOT_A_FILE
from .image_checks import CorruptImage, ImageTooLarge

MAX_IMAGE_BYTES = 256 << 20


class NotARegularFile(CorruptImage):
    """An image path that names a directory, FIFO, device or socket."""

    reason = NOT_A_FILE


def check_member_size(where: str, size: int, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    """``ImageTooLarge`` for an archive member (``where``) that declares more than ``max_bytes``."""
    if size > max_bytes:
        raise ImageTooLarge(_too_large(where, size, max_bytes))


def read_image_file(
    url: str, max_bytes: int = MAX_IMAGE_BYTES, download_config: Optional[DownloadConfig] = None
) -> Optional[bytes]:
    """The bytes of the image file at ``url``, or None when there is none (a broken link counts as none).

    Raises ``NotARegularFile`` for anything but a regular file, ``ImageTooLarge`` past ``max_bytes``.
    """
    if not is_local_path(url):
        try:
            with xopen(url, "rb", download_config=download_config) as file:
                size = getattr(file, "size", None)
                if isinstance(size, int):
                    check_member_size(url, size, max_bytes)
                return _read_capped(file, url, max_bytes)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise NotARegularFile(f"{url} is a directory, not an image file") from None
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. fstat then says what was opened
        # (no gap between a check and the open for the path to change in).
        descriptor = os.open(url, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise NotARegularFile(f"{url} is a directory, not an image file") from None
    except OSError as err:  # a socket, or a device with nothing behind it
        raise NotARegularFile(f"{url} cannot be opened as a file ({type(err).__name__}: {err})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFile(f"{url} is {_kind(status.st_mode)}, not a regular file: it is not read")
        check_member_size(url, status.st_size, max_bytes)
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb", buffering=0) as file:
        return _read_capped(file, url, max_bytes)


def _read_capped(file, url: str, max_bytes: int) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = file.read(min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ImageTooLarge(_too_large(url, f"more than {total - 1}", max_bytes))


def _too_large(where: str, size, max_bytes: int) -> str:
    return f"{where} is {size} bytes, more than max_image_bytes={max_bytes}: refused without reading it"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
