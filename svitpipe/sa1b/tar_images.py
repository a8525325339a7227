"""SA-1B image bytes from ``sa_NNNNNN.tar`` files or their extracted ``sa_NNNNNN/`` folders.

Two ways in:

* ``iter_tar_members``: one sequential pass over a tar (no seeking, so it streams from any URL and never downloads
  the tar first). Single-image configs join a tar's captions in this pass.
* ``SA1BImageReader``: random access by ``(tar, member)``. A tar is indexed once per reader by walking its headers
  (for a local tar this seeks over the image data, a fraction of a second for 11K images). Multi-image lines, whose
  images may sit in other tars, and extracted folders use this.

A member's declared size is checked before its data is read: one over ``max_image_bytes`` is refused
(``ImageTooLarge``, a bad record for the lines that need it) and skipped over in bounded memory. A tar holding two
members with one file name gives the first to both ways in (a sequential pass cannot know of a later one).

A damaged tar (cut short, or a corrupt header) is readable up to the damage: both ways give the members before it
and raise ``DamagedTar`` for what lies past it, naming the tar, the last member read whole and what is wrong.
``tarfile`` itself ends an archive silently at a cut-off or corrupt header past the first one, so the headers are
read by ``_EndNotingTarInfo``, and only an end-of-archive block counts as the end of a tar.
"""

from __future__ import annotations

import tarfile
import zlib
from collections import OrderedDict
from typing import BinaryIO, Collection, Iterator, NamedTuple, Optional, Union

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import xjoin, xopen

from ..bad_records import describe_error
from ..image_checks import ImageTooLarge
from ..image_files import MAX_IMAGE_BYTES, check_member_size, read_image_file
from ..locations import TarLocation
from .paths import member_file_name

_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
_DRAIN_CHUNK = 1 << 20


class DamagedTar(Exception):
    """A tar that cannot be read past some point.

    Attributes:
        url: the tar.
        last_good: the file name of the last regular member before the damage, read whole (None: none is).
        problem: what is wrong, and where.
    """

    def __init__(self, url: str, last_good: Optional[str], problem: str):
        where = f"after member {last_good}" if last_good else "before its first member"
        super().__init__(f"{url} is damaged {where}: {problem}")
        self.url = url
        self.last_good = last_good
        self.problem = problem

    def lost(self, member: str) -> str:
        """What to report for a line whose image ``member`` cannot be read because of this damage."""
        return f"{member} cannot be read: {self}"


class _EndNotingTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that leaves on its ``TarFile`` (as ``header_error``) the error that stopped reading headers."""

    @classmethod
    def fromtarfile(cls, archive):
        try:
            return super().fromtarfile(archive)
        except tarfile.HeaderError as err:
            archive.header_error = err
            raise


def _end_problem(archive: tarfile.TarFile) -> Optional[str]:
    """None if the headers ended at an end-of-archive block; else why they ended, at which byte."""
    error = getattr(archive, "header_error", None)
    if error is None or isinstance(error, tarfile.EOFHeaderError):
        return None
    if isinstance(error, tarfile.EmptyHeaderError):
        return f"it ends at byte {archive.offset} without an end-of-archive block (cut short)"
    if isinstance(error, tarfile.TruncatedHeaderError):
        return f"truncated header at byte {archive.offset} (cut short)"
    return f"corrupt header at byte {archive.offset} ({error})"


def _drain(file: BinaryIO) -> None:
    while file.read(_DRAIN_CHUNK):
        pass


def iter_tar_members(
    location: TarLocation,
    wanted: Collection[str],
    download_config: Optional[DownloadConfig] = None,
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> Iterator[tuple[str, Union[bytes, ImageTooLarge]]]:
    """``(file name, bytes)`` of the first regular member of a tar with each file name in ``wanted``, in tar order;
    a member declaring more than ``max_image_bytes`` comes as ``(file name, ImageTooLarge)``, its data unread.

    Every member before the one yielded was read whole. Where the tar is cut short or a header is corrupt,
    ``DamagedTar`` is raised, after the members before the damage; a tar that cannot be opened raises it at once.
    """
    last_good = None
    try:
        with xopen(location.url, "rb", download_config=download_config, block_size=0) as f:
            archive = tarfile.open(fileobj=f, mode="r|*", tarinfo=_EndNotingTarInfo)
            given = set()
            for info in archive:
                if info.isreg():
                    name = member_file_name(info.name)
                    with archive.extractfile(info) as file:
                        if name in wanted and name not in given:
                            given.add(name)
                            try:
                                check_member_size(f"{location.url}::{info.name}", info.size, max_image_bytes)
                            except ImageTooLarge as refused:
                                yield name, refused
                            else:
                                yield name, file.read()
                        _drain(file)
                    last_good = name
                archive.members = []  # a stream needs no index, and keeping one grows with the tar
            problem = _end_problem(archive)
    except _TAR_ERRORS as err:
        raise DamagedTar(location.url, last_good, describe_error(err)) from err
    if problem is not None:
        raise DamagedTar(location.url, last_good, problem)


class _TarIndex(NamedTuple):
    """An open tar's regular members whose data is whole, by file name (in tar order), and its damage (None when it
    is intact; kept unraised, as each line it costs raises a copy)."""

    file: Optional[BinaryIO]
    archive: Optional[tarfile.TarFile]
    members: dict[str, tarfile.TarInfo]
    damage: Optional[DamagedTar]

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
        if self.file is not None:
            self.file.close()


def _index_tar(url: str, download_config: Optional[DownloadConfig]) -> _TarIndex:
    """Walk a tar's headers; a tar that cannot be opened is an index with no members and its damage."""
    file = None
    try:
        file = xopen(url, "rb", download_config=download_config)
        archive = tarfile.open(fileobj=file, mode="r:", tarinfo=_EndNotingTarInfo)
    except _TAR_ERRORS as err:
        if file is not None:
            file.close()
        return _TarIndex(None, None, {}, DamagedTar(url, None, describe_error(err)))
    try:
        archive.getmembers()
        problem = _end_problem(archive)
    except _TAR_ERRORS as err:
        problem = describe_error(err)
    infos = [info for info in archive.members if info.isreg()]
    if problem is not None and infos and not _data_is_whole(file, infos[-1]):
        infos.pop()
    members = {}
    for info in infos:
        members.setdefault(member_file_name(info.name), info)  # the first of two members with one name
    last_good = member_file_name(infos[-1].name) if infos else None
    return _TarIndex(file, archive, members, None if problem is None else DamagedTar(url, last_good, problem))


def _data_is_whole(file: BinaryIO, info: tarfile.TarInfo) -> bool:
    """Whether the file holds a member's last data byte (headers past a cut can name data that is gone)."""
    if info.size == 0:
        return True
    try:
        file.seek(info.offset_data + info.size - 1)
        return len(file.read(1)) == 1
    except _TAR_ERRORS:
        return False


class SA1BImageReader:
    """Random access to SA-1B images across tars; keeps the indexes of the ``max_open`` most recent tars."""

    def __init__(
        self,
        locations: dict[str, TarLocation],
        download_config: Optional[DownloadConfig] = None,
        max_open: int = 8,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ):
        self.locations = locations
        self.download_config = download_config
        self.max_open = max_open
        self.max_image_bytes = max_image_bytes
        self._open: OrderedDict[str, _TarIndex] = OrderedDict()

    def __enter__(self) -> "SA1BImageReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def read(self, tar_stem: str, member: str) -> Optional[bytes]:
        """The member's bytes, or None when the tar (or folder) is unknown or, intact, does not hold it.

        Raises ``DamagedTar`` when the member lies in (or past) a damaged part of its tar, or the tar cannot be
        opened: in a damaged tar, a member not found before the damage may lie past it. Raises ``ImageTooLarge``
        (by the declared or file size, unread) past ``max_image_bytes`` and ``NotARegularFile`` for a folder entry
        that is not a file.
        """
        location = self.locations.get(tar_stem)
        if location is None:
            return None
        if location.kind == "folder":
            return read_image_file(xjoin(location.url, member), self.max_image_bytes, self.download_config)
        index = self._tar(location)
        info = index.members.get(member)
        if info is None:
            if index.damage is not None:
                raise DamagedTar(index.damage.url, index.damage.last_good, index.damage.problem)
            return None
        check_member_size(f"{location.url}::{info.name}", info.size, self.max_image_bytes)
        try:
            with index.archive.extractfile(info) as f:
                return f.read()
        except _TAR_ERRORS as err:
            names = list(index.members)
            position = names.index(member)
            before = names[position - 1] if position else None
            raise DamagedTar(location.url, before, f"reading member {member}: {describe_error(err)}") from err

    def _tar(self, location: TarLocation) -> _TarIndex:
        if location.stem in self._open:
            self._open.move_to_end(location.stem)
            return self._open[location.stem]
        self._open[location.stem] = _index_tar(location.url, self.download_config)
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return self._open[location.stem]
