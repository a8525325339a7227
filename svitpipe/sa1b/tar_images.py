"""SA-1B image bytes from ``sa_NNNNNN.tar`` files or their extracted ``sa_NNNNNN/`` folders.

Two ways in:

* ``iter_tar_members``: one sequential pass over a tar. A local tar's headers are walked by offset
  (``tar_member_index.walk_tar_headers``) and only the members wanted are read, one read each; any other tar is
  streamed by ``tarfile`` (no seeking, so it streams from any URL and never downloads the tar first). Both report
  damage in the same words. Single-image configs join a tar's captions in this pass.
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

import os
import tarfile
import zlib
from collections import OrderedDict
from typing import BinaryIO, Collection, Iterator, NamedTuple, Optional, Union

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import is_local_path, xjoin, xopen

from ..bad_records import describe_error
from ..image_checks import ImageTooLarge
from ..image_files import MAX_IMAGE_BYTES, check_member_size, read_image_file
from ..locations import TarLocation
from .paths import member_file_name
from .tar_member_index import (
    BAD_CHECKSUM,
    DATA_CUT_SHORT,
    INVALID_HEADER,
    NO_END,
    TRUNCATED_HEADER,
    UNREADABLE,
    TarWalkDamage,
    walk_tar_headers,
)

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

    A local, uncompressed tar is read by its headers' offsets: one read per wanted member, the others skipped.
    Any other is read as a stream (``tarfile``), which needs no seeking.
    """
    if is_local_path(location.url):
        try:
            file = open(location.url, "rb", buffering=0)
        except OSError as err:
            raise DamagedTar(location.url, None, describe_error(err)) from err
        with file:
            try:
                magic = os.pread(file.fileno(), _LONGEST_MAGIC, 0)
            except OSError as err:
                raise DamagedTar(location.url, None, describe_error(err)) from err
            if not magic.startswith(_COMPRESSION_MAGICS):
                yield from _local_tar_members(location.url, file.fileno(), wanted, max_image_bytes)
                return
    yield from _streamed_tar_members(location, wanted, download_config, max_image_bytes)


# What tarfile's stream mode recognises as compressed (gzip, bzip2, xz, lzma, zstandard).
_COMPRESSION_MAGICS = (b"\x1f\x8b\x08", b"BZh91", b"\x5d\x00\x00\x80", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
_LONGEST_MAGIC = 6


def _local_tar_members(url: str, descriptor: int, wanted: Collection[str], max_image_bytes: int):
    """``iter_tar_members`` for a local uncompressed tar open at ``descriptor``: its headers walked by offset
    (``walk_tar_headers``), each wanted member read in one ``pread``, the others never read."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    last_good = None
    given = set()
    try:
        for path, data_offset, size in walk_tar_headers(
            lambda at, count: os.pread(descriptor, count, at), os.fstat(descriptor).st_size
        ):
            name = member_file_name(path)
            if name in wanted and name not in given:
                given.add(name)
                try:
                    check_member_size(f"{url}::{path}", size, max_image_bytes)
                except ImageTooLarge as refused:
                    yield name, refused
                else:
                    data = os.pread(descriptor, size, data_offset)
                    if len(data) != size:  # the tar was cut after the walk read its size
                        raise DamagedTar(url, last_good, _UNEXPECTED_END)
                    yield name, data
            last_good = name
    except TarWalkDamage as damage:
        refused = _refused_before_the_cut(url, damage, wanted, given, max_image_bytes)
        if refused is not None:
            yield refused
        raise DamagedTar(url, last_good, _stream_problem(damage)) from damage
    except OSError as err:
        raise DamagedTar(url, last_good, describe_error(err)) from err


_UNEXPECTED_END = "ReadError: unexpected end of data"


def _refused_before_the_cut(url, damage: TarWalkDamage, wanted, given, max_image_bytes):
    """A wanted member whose data is cut short but which declares too much to be read: refused by its size, as a
    stream refuses it before it meets the cut."""
    if damage.kind != DATA_CUT_SHORT or damage.member_path is None:
        return None
    name = member_file_name(damage.member_path)
    if name not in wanted or name in given:
        return None
    try:
        check_member_size(f"{url}::{damage.member_path}", damage.member_size, max_image_bytes)
    except ImageTooLarge as refused:
        return name, refused
    return None


# How ``tarfile`` words the damage a header walk meets (``TarWalkDamage.kind``), so that both ways of reading a tar
# report it alike.
_TARFILE_REASONS = {NO_END: "empty header", TRUNCATED_HEADER: "truncated header", BAD_CHECKSUM: "bad checksum",
                    INVALID_HEADER: "invalid header"}


def _stream_problem(damage: TarWalkDamage) -> str:
    """The problem text the stream path (``_streamed_tar_members``) gives for the same damage."""
    if damage.kind == DATA_CUT_SHORT:
        return _UNEXPECTED_END
    if damage.kind == UNREADABLE:
        return damage.problem
    reason = _TARFILE_REASONS[damage.kind]
    if damage.offset == 0 or damage.after_extended_header:
        # tarfile cannot open a tar whose first header is bad, and a bad header after a long-name or pax header
        # fails that header: both come as a ReadError, without the byte.
        return f"ReadError: {'empty file' if damage.offset == 0 and damage.kind == NO_END else reason}"
    if damage.kind in (NO_END, TRUNCATED_HEADER):
        return damage.problem
    return f"corrupt header at byte {damage.offset} ({reason})"


def _streamed_tar_members(location, wanted, download_config, max_image_bytes):
    """``iter_tar_members`` in one sequential pass of ``tarfile`` (any URL, compressed or not)."""
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
