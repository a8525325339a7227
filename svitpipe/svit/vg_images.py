"""Visual Genome image bytes by ``image_id``, from ``raw/images.zip`` / ``raw/images2.zip`` or their folders.

An image lives in exactly one of ``VG_100K`` and ``VG_100K_2``, so a lookup tries both. A zip's central directory
(about 5 MB for 64K images) tells where every member is; the members' table made from it is kept per process (see
``_MemberTable``), so the readers of one build's units parse a local zip once. Members are read by random access:
from a local zip with two ``os.pread`` calls (local header, then data), from a remote one through ``zipfile`` with
one ranged read, so a remote zip is never downloaded whole.

A damaged zip costs only the images it holds: a member that cannot be read raises ``DamagedZip`` for that image, and
a zip that cannot be opened (its central directory cut off or corrupt) raises it for every image not found in the
other, since that image may be in the damaged one.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zipfile
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import NamedTuple, Optional, Union

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import _prepare_path_and_storage_options, is_local_path, xjoin, xopen

from ..bad_records import describe_error
from ..image_files import MAX_IMAGE_BYTES, check_member_size, read_image_file
from ..locations import ImageLocation

logger = logging.get_logger(__name__)

VG_FOLDERS = ("VG_100K", "VG_100K_2")
_MEMBER = re.compile(r"(?:^|/)(VG_100K(?:_2)?)/(\d+)\.jpg$")
# What reading a damaged zip raises: a bad structure, data cut short, garbage in a header or in deflated data.
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error)

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader: 30 bytes
_LOCAL_HEADER_SIGNATURE = b"PK\003\004"
_UTF8_NAME_FLAG = 0x800
# Encryption (bits 0 and 6) and patched data (bit 5): members flagged so are left to zipfile, which refuses them.
_FLAGS_FOR_ZIPFILE = 0x1 | 0x20 | 0x40
# The most compressed bytes read (and inflated) at once: a member declaring more is read in pieces of this size.
_INFLATE_PIECE = 8 << 20
# Tables of this many zips are kept per process (all of VG's take about 6 MB): a build reads two.
_CACHED_TABLES = 8


class DamagedZip(Exception):
    """An image that cannot be read from a damaged zip.

    Attributes:
        url: the zip.
        member: the image's member path (where it is, or would be, in the zip).
        problem: what is wrong.
    """

    def __init__(self, url: str, member: str, problem: str):
        super().__init__(f"{member} cannot be read from {url}: {problem}")
        self.url = url
        self.member = member
        self.problem = problem


class _ZipMember(NamedTuple):
    """Where a member is in its zip, as its central directory says: what reading it needs."""

    name: str
    header_offset: int
    compress_size: int
    file_size: int
    compress_type: int
    flag_bits: int
    crc: int


class _MemberTable:
    """A zip's VG members by (folder, image id), in flat arrays sorted by ``image id * 2 + folder index``.

    Visual Genome's zips hold ~108K members: a ZipInfo each, listed twice by ``ZipFile``, is ~70 MB, and a dict of
    tuples about half of that; these arrays and the names take about 6 MB. Where two members have the same folder and
    id, the last in the central directory counts (as ``ZipFile.getinfo`` would have it).

    Attributes:
        total_bytes: the declared sizes of all the zip's VG members, summed.
    """

    def __init__(self, infos: list):
        last_by_key = {}
        self.total_bytes = 0
        for position, info in enumerate(infos):
            match = _MEMBER.search(info.filename)
            if match is None:
                continue
            self.total_bytes += info.file_size
            key = _key(match.group(1), int(match.group(2)))
            if key < _KEY_LIMIT:  # a larger id in a file name is no int64 image_id: no record can ask for it
                last_by_key[key] = position
        keys = sorted(last_by_key)
        self._keys = array("Q", keys)
        chosen = [infos[last_by_key[key]] for key in keys]
        self._names = [info.orig_filename for info in chosen]
        self._header_offsets = array("Q", (info.header_offset for info in chosen))
        self._compress_sizes = array("Q", (info.compress_size for info in chosen))
        self._file_sizes = array("Q", (info.file_size for info in chosen))
        self._compress_types = array("H", (info.compress_type for info in chosen))
        self._flag_bits = array("H", (info.flag_bits for info in chosen))
        self._crcs = array("L", (info.CRC for info in chosen))

    def get(self, folder: str, image_id: int) -> Optional[_ZipMember]:
        key = _key(folder, image_id)
        if not 0 <= key < _KEY_LIMIT:
            return None
        at = bisect_left(self._keys, key)
        if at == len(self._keys) or self._keys[at] != key:
            return None
        return _ZipMember(
            self._names[at], self._header_offsets[at], self._compress_sizes[at], self._file_sizes[at],
            self._compress_types[at], self._flag_bits[at], self._crcs[at],
        )


# Keys of the member table: every non-negative int64 image_id in either folder fits an unsigned 64-bit key.
_KEY_LIMIT = 1 << 64


def _key(folder: str, image_id: int) -> int:
    return image_id * 2 + VG_FOLDERS.index(folder)


# Local zips' member tables by (absolute path, inode, size, mtime_ns): a zip changed in place or replaced gets a new
# key, so its table is made again; the old one is dropped then.
_local_tables: "OrderedDict[tuple, _MemberTable]" = OrderedDict()
_local_tables_lock = threading.Lock()


def _local_table(path: str, file) -> _MemberTable:
    """The member table of the local zip at ``path``, open as ``file`` (unbuffered); ``_ZIP_ERRORS`` if its central
    directory cannot be read."""
    stat = os.fstat(file.fileno())
    key = (os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _local_tables_lock:
        table = _local_tables.get(key)
        if table is not None:
            _local_tables.move_to_end(key)
            return table
    with zipfile.ZipFile(file) as archive:
        table = _MemberTable(archive.infolist())
    with _local_tables_lock:
        for stale in [cached for cached in _local_tables if cached[0] == key[0]]:
            del _local_tables[stale]
        _local_tables[key] = table
        while len(_local_tables) > _CACHED_TABLES:
            _local_tables.popitem(last=False)
    return table


class _LocalZip:
    """A local zip read with ``os.pread`` on a file kept open; members ``zipfile`` must read (compressed otherwise
    than stored or deflated, encrypted) go through a ``ZipFile`` opened when the first one is asked for."""

    def __init__(self, url: str, file, table: _MemberTable):
        self.url = url
        self.file = file
        self.table = table
        self._archive: Optional[zipfile.ZipFile] = None

    def read(self, member: _ZipMember) -> bytes:
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (
            member.flag_bits & _FLAGS_FOR_ZIPFILE
        ):
            return _read_member(self._zipfile(member), member, self.url)
        try:
            return read_local_member(self.file.fileno(), member)
        except _ZIP_ERRORS as err:
            raise DamagedZip(self.url, member.name, describe_error(err)) from err

    def _zipfile(self, member: _ZipMember) -> zipfile.ZipFile:
        if self._archive is None:
            try:
                archive = zipfile.ZipFile(self.file)
            except _ZIP_ERRORS as err:
                raise DamagedZip(self.url, member.name, f"the zip cannot be opened: {describe_error(err)}") from err
            archive.filelist, archive.NameToInfo = [], {}  # the member table says where members are
            self._archive = archive
        return self._archive

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
        self.file.close()


class _RemoteZip:
    """A zip at an fsspec URL, read through ``zipfile`` (each member one ranged read)."""

    def __init__(self, url: str, file, archive: zipfile.ZipFile, table: _MemberTable):
        self.url = url
        self.file = file
        self.archive = archive
        self.table = table

    def read(self, member: _ZipMember) -> bytes:
        return _read_member(self.archive, member, self.url)

    def close(self) -> None:
        self.archive.close()
        self.file.close()


class _UnopenedZip(NamedTuple):
    """A zip that cannot be opened, and why."""

    problem: str


class VGImageReader:
    """Reads image bytes by id; open it with ``with`` so that zip handles are closed."""

    def __init__(
        self,
        locations: tuple[ImageLocation, ...],
        download_config: Optional[DownloadConfig] = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ):
        self.locations = locations
        self.download_config = download_config
        self.max_image_bytes = max_image_bytes
        self._zips: dict[str, Union[_LocalZip, _RemoteZip, _UnopenedZip]] = {}

    def __enter__(self) -> "VGImageReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for opened in self._zips.values():
            if not isinstance(opened, _UnopenedZip):
                opened.close()
        self._zips.clear()

    def read(self, image_id: int) -> Optional[tuple[str, bytes]]:
        """``(relative path, bytes)`` of the image, e.g. ``("VG_100K/2354786.jpg", b"...")``; None if absent.

        Raises ``DamagedZip`` when the image's member cannot be read, or when the image is in none of the places
        that can be read and a zip cannot be opened (the image may be in it); ``ImageTooLarge`` for an image over
        ``max_image_bytes`` (a member by its declared size) and ``NotARegularFile`` for a folder entry that is not a
        file, neither read.
        """
        unopened = None
        for location in self.locations:
            path = f"{location.folder}/{image_id}.jpg"
            if location.kind == "zip":
                opened = self._zip(location)
                if isinstance(opened, _UnopenedZip):
                    unopened = unopened or DamagedZip(location.url, path, f"the zip cannot be opened: {opened.problem}")
                    continue
                member = opened.table.get(location.folder, image_id)
                if member is not None:
                    check_member_size(f"{location.url}::{member.name}", member.file_size, self.max_image_bytes)
                    return path, opened.read(member)
            else:
                data = read_image_file(xjoin(location.url, f"{image_id}.jpg"), self.max_image_bytes,
                                       self.download_config)
                if data is not None:
                    return path, data
        if unopened is not None:
            raise unopened
        return None

    def where(self) -> str:
        return " or ".join(
            f"{location.url}" + (f" ({location.folder}/)" if location.kind == "zip" else "")
            for location in self.locations
        )

    def _zip(self, location: ImageLocation) -> Union[_LocalZip, _RemoteZip, _UnopenedZip]:
        if location.url not in self._zips:
            opener = _open_local_zip if _is_local(location.url) else self._open_remote_zip
            self._zips[location.url] = opener(location.url)
        return self._zips[location.url]

    def _open_remote_zip(self, url: str) -> Union[_RemoteZip, _UnopenedZip]:
        try:
            file = xopen(url, "rb", download_config=self.download_config)
        except _ZIP_ERRORS as err:
            return _UnopenedZip(describe_error(err))
        try:
            archive = zipfile.ZipFile(file)
            table = _MemberTable(archive.infolist())
        except _ZIP_ERRORS as err:
            file.close()
            return _UnopenedZip(describe_error(err))
        archive.filelist, archive.NameToInfo = [], {}  # the member table says where members are
        return _RemoteZip(url, file, archive, table)


def _local_path(url: str) -> str:
    """The file of a local zip URL: the part before any ``::``, as ``xopen`` reads it."""
    return url.split("::")[0]


def _is_local(url: str) -> bool:
    return is_local_path(_local_path(url))


def _open_local_zip(url: str) -> Union[_LocalZip, _UnopenedZip]:
    try:
        file = open(_local_path(url), "rb", buffering=0)
    except OSError as err:
        return _UnopenedZip(describe_error(err))
    try:
        return _LocalZip(url, file, _local_table(url, file))
    except _ZIP_ERRORS as err:
        file.close()
        return _UnopenedZip(describe_error(err))


def read_local_member(descriptor: int, member: _ZipMember) -> bytes:
    """A stored or deflated member's bytes, read from the local zip open as ``descriptor``, checked as ``zipfile``
    checks them (local header signature and name, CRC-32) and raising what it raises; a deflated member that
    inflates past its declared size is refused (``BadZipFile``) without inflating more than that."""
    name_bytes = len(member.name.encode("utf-8"))
    header = os.pread(descriptor, _LOCAL_HEADER.size + name_bytes, member.header_offset)
    if len(header) < _LOCAL_HEADER.size:
        raise zipfile.BadZipFile("Truncated file header")
    fields = _LOCAL_HEADER.unpack_from(header)
    if fields[0] != _LOCAL_HEADER_SIGNATURE:
        raise zipfile.BadZipFile("Bad magic number for file header")
    flag_bits, name_length, extra_length = fields[3], fields[10], fields[11]
    name = header[_LOCAL_HEADER.size: _LOCAL_HEADER.size + name_length]
    if len(name) < name_length:
        name = os.pread(descriptor, name_length, member.header_offset + _LOCAL_HEADER.size)
    if name.decode("utf-8" if flag_bits & _UTF8_NAME_FLAG else "cp437") != member.name:
        raise zipfile.BadZipFile(f"File name in directory {member.name!r} and header {name!r} differ.")
    data_offset = member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if member.compress_type == zipfile.ZIP_STORED:
        # zipfile stops at the smaller of the two sizes, too
        length = min(member.compress_size, member.file_size)
        data = os.pread(descriptor, length, data_offset)
        if len(data) < length:
            raise EOFError
    else:
        data = _inflate(descriptor, data_offset, member.compress_size, member.file_size)
    if zlib.crc32(data) != member.crc:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {member.name!r}")
    return data


def _inflate(descriptor: int, offset: int, compress_size: int, file_size: int) -> bytes:
    """Raw deflate data at ``offset`` inflated, reading no more than ``compress_size`` bytes and producing no more
    than ``file_size``; ``EOFError`` if the file ends first."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pieces = []
    produced = 0
    left = compress_size
    while left > 0 and not inflater.eof:
        compressed = os.pread(descriptor, min(left, _INFLATE_PIECE), offset)
        if not compressed:
            raise EOFError
        offset += len(compressed)
        left -= len(compressed)
        # One byte past the declared size is enough to tell the member lies; the input it leaves is not inflated.
        piece = inflater.decompress(compressed, file_size - produced + 1)
        produced += len(piece)
        if produced > file_size:
            raise zipfile.BadZipFile(f"its data inflates to more than the {file_size} bytes it declares")
        pieces.append(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _zip_info(member: _ZipMember) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member.name)
    info.header_offset = member.header_offset
    info.compress_size = member.compress_size
    info.file_size = member.file_size
    info.compress_type = member.compress_type
    info.flag_bits = member.flag_bits
    info.CRC = member.crc
    return info


def _read_member(archive: zipfile.ZipFile, member: _ZipMember, url: str) -> bytes:
    """A member's bytes, checked against its CRC; ``DamagedZip`` if its local header or data is damaged."""
    try:
        return archive.read(_zip_info(member))
    except _ZIP_ERRORS as err:
        raise DamagedZip(url, member.name, describe_error(err)) from err


def total_image_bytes(locations: tuple[ImageLocation, ...], download_config: Optional[DownloadConfig] = None) -> int:
    """Bytes of all VG images at ``locations`` (zip central directories or folder listings; nothing is read).

    A zip that cannot be opened counts as empty: its images are reported where records need them. So does a file a
    listing gives no size for (a web server's index page): set ``svit_num_shards`` for such sources.
    """
    total = 0
    for location in locations:
        if location.kind == "zip":
            try:
                total += _zip_image_bytes(location.url, download_config)
            except _ZIP_ERRORS as err:
                logger.warning(f"{location.url} cannot be opened ({describe_error(err)}): its images count as 0 bytes")
        else:
            import fsspec

            path, storage_options = _prepare_path_and_storage_options(location.url, download_config=download_config)
            fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
            total += sum(entry.get("size") or 0 for entry in fs.ls(fs_path, detail=True) if entry["type"] == "file")
    return total


def _zip_image_bytes(url: str, download_config: Optional[DownloadConfig]) -> int:
    if _is_local(url):
        with open(_local_path(url), "rb", buffering=0) as file:
            return _local_table(url, file).total_bytes
    with xopen(url, "rb", download_config=download_config) as file, zipfile.ZipFile(file) as archive:
        return _MemberTable(archive.infolist()).total_bytes
