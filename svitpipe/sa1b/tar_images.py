"""SA-1B image bytes from ``sa_NNNNNN.tar`` files or their extracted ``sa_NNNNNN/`` folders.

Two ways in:

* ``iter_tar_members``: one sequential pass over a tar (no seeking, so it streams from any URL and never downloads
  the tar first). Single-image configs join a tar's captions in this pass.
* ``SA1BImageReader``: random access by ``(tar, member)``. A tar is indexed once per reader by walking its headers
  (for a local tar this seeks over the image data, a fraction of a second for 11K images). Multi-image lines, whose
  images may sit in other tars, and extracted folders use this.
"""

from __future__ import annotations

import contextlib
import tarfile
from collections import OrderedDict
from typing import BinaryIO, Iterator, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import ArchiveIterable, xjoin, xopen

from ..locations import TarLocation
from .paths import member_file_name


def iter_tar_members(location: TarLocation, download_config: Optional[DownloadConfig] = None) -> Iterator[tuple[str, BinaryIO]]:
    """``(file name, file object)`` for every regular file of a tar, in tar order (read each before the next)."""
    for name, file in ArchiveIterable.from_urlpath(location.url, download_config=download_config):
        yield member_file_name(name), file


@contextlib.contextmanager
def tar_errors_named(location: TarLocation):
    """Make an unreadable tar's error name the tar: a unit that fails must say which file to fix."""
    try:
        yield
    except tarfile.TarError as err:
        raise tarfile.ReadError(f"{location.url}: {err}") from err


class SA1BImageReader:
    """Random access to SA-1B images across tars; keeps the indexes of the ``max_open`` most recent tars."""

    def __init__(
        self,
        locations: dict[str, TarLocation],
        download_config: Optional[DownloadConfig] = None,
        max_open: int = 8,
    ):
        self.locations = locations
        self.download_config = download_config
        self.max_open = max_open
        self._open: OrderedDict[str, tuple[BinaryIO, tarfile.TarFile, dict]] = OrderedDict()

    def __enter__(self) -> "SA1BImageReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        while self._open:
            _, (file, archive, _) = self._open.popitem()
            archive.close()
            file.close()

    def read(self, tar_stem: str, member: str) -> Optional[bytes]:
        """The member's bytes, or None when the tar (or folder) is unknown or does not hold it."""
        location = self.locations.get(tar_stem)
        if location is None:
            return None
        if location.kind == "folder":
            try:
                with xopen(xjoin(location.url, member), "rb", download_config=self.download_config) as f:
                    return f.read()
            except FileNotFoundError:
                return None
        with tar_errors_named(location):
            _, archive, members = self._tar(location)
            info = members.get(member)
            if info is None:
                return None
            with archive.extractfile(info) as f:
                return f.read()

    def _tar(self, location: TarLocation):
        if location.stem in self._open:
            self._open.move_to_end(location.stem)
            return self._open[location.stem]
        file = xopen(location.url, "rb", download_config=self.download_config)
        archive = tarfile.open(fileobj=file, mode="r:")
        members = {member_file_name(info.name): info for info in archive.getmembers() if info.isreg()}
        self._open[location.stem] = (file, archive, members)
        if len(self._open) > self.max_open:
            _, (old_file, old_archive, _) = self._open.popitem(last=False)
            old_archive.close()
            old_file.close()
        return self._open[location.stem]
