"""Where every image is inside an SA-1B tar: each regular member's file name, data offset and size, from one pass
over the tar's headers.

The pass reads a header, then jumps over the member's data to the next header, so it reads a few KB per member of a
10 GB tar. Headers are parsed here rather than by ``tarfile``, whose per-member cost is about that of reading a
0.5 MB member from the page cache: ustar, GNU (long names, base-256 sizes) and pax (``path``, ``size``) headers, with
their checksums. The index is cached on
local disk like the source indexes (``source_index_cache``: a folder named after the tar's URL, size and modification
stamp), so later runs and every DataLoader worker read it instead of the tar's headers.

The walk itself (``walk_tar_headers``) yields each regular member as it meets it and raises ``TarWalkDamage`` where
the tar is damaged; ``tar_images.iter_tar_members`` reads local tars with it.

A damaged tar (cut short, a corrupt header) is indexed up to the damage: the members before it whose data is whole,
and the damage itself, which the readers report for members not found before it. A file name that appears twice
keeps its first member, the one a sequential pass over the tar meets first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import is_local_path, xopen

from ..bad_records import describe_error
from ..source_index_cache import SUMMARY_FILE, build_once, index_folder_name
from .paths import member_file_name

logger = logging.get_logger(__name__)

_INDEX_VERSION = 1
# Remote tars are read in small blocks while indexing: a large read-ahead block would fetch the image data the
# pass means to skip.
_REMOTE_INDEX_BLOCK = 16 << 10


@dataclass(frozen=True)
class TarMemberIndex:
    """One tar's regular members.

    Attributes:
        url: the tar.
        members: file name -> ``(data offset, size)``, in tar order.
        damage: None for an intact tar; else what is wrong, and where.
        last_good: with ``damage``: the last member indexed before it (None: none is).
    """

    url: str
    members: dict
    damage: Optional[str] = None
    last_good: Optional[str] = None

    def positions(self) -> dict:
        """file name -> its position among the tar's members."""
        return {name: position for position, name in enumerate(self.members)}


_BLOCK = 512
# One read per header; a small member after it (an SA-1B .json) and the next header usually fall in the same read.
_HEADER_WINDOW = 4096
_REGULAR = (b"0", b"\0", b"7")
_GNU_LONG_NAME, _GNU_LONG_LINK, _PAX_HEADER, _PAX_GLOBAL = b"L", b"K", b"x", b"g"
_ZERO_BLOCK = bytes(_BLOCK)


# What a header walk can meet instead of an end-of-archive block (``TarWalkDamage.kind``).
NO_END = "no-end"
TRUNCATED_HEADER = "truncated-header"
BAD_CHECKSUM = "bad-checksum"
INVALID_HEADER = "invalid-header"
DATA_CUT_SHORT = "data-cut-short"
UNREADABLE = "unreadable"


class _CorruptHeader(ValueError):
    def __init__(self, message: str, kind: str = INVALID_HEADER):
        super().__init__(message)
        self.kind = kind


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU's base-256 (high bit set) for large values."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise _CorruptHeader(f"numeric field {field!r} is not a number") from None


def _checked(header: bytes) -> None:
    try:
        stored = int(header[148:154], 8)  # six octal digits then NUL and space, as every writer puts them
    except ValueError:
        stored = _number(header[148:156])
    if stored != sum(header) - sum(header[148:156]) + 8 * 32:
        # tarfile takes base-256 only after 0x80 or 0xff, and calls any other high first byte an invalid header
        tarfile_number = header[148] < 0x80 or header[148] in (0x80, 0xFF)
        raise _CorruptHeader("bad checksum", BAD_CHECKSUM if tarfile_number else INVALID_HEADER)


def _size(header: bytes) -> int:
    try:
        return int(header[124:135], 8)  # eleven octal digits then NUL or space
    except ValueError:
        return _number(header[124:136])


def _member_path(header: bytes) -> str:
    """A ustar header's member path: the name field, after the prefix field's folders when there are any."""
    name = header[:100].split(b"\0", 1)[0]
    if header[345] != 0:
        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict:
    """``key -> value`` of a pax extended header's ``"<length> <key>=<value>\\n"`` records."""
    records, position = {}, 0
    while position < len(data) and data[position:position + 1] != b"\0":
        space = data.index(b" ", position)
        length = int(data[position:space])
        key, _, value = data[space + 1:position + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarWalkDamage(Exception):
    """Where ``walk_tar_headers`` stopped before an end-of-archive block.

    Attributes:
        kind: ``NO_END``, ``TRUNCATED_HEADER``, ``BAD_CHECKSUM``, ``INVALID_HEADER``, ``DATA_CUT_SHORT`` or
            ``UNREADABLE`` (the read failed, or an extended header did not parse).
        offset: the byte of the header at fault.
        problem: what is wrong, and where, as the index reports it.
        after_extended_header: the header at fault follows a GNU long name or pax header that was meant for it.
        member_path, member_size: with ``DATA_CUT_SHORT`` of a regular member: its path and declared size.
    """

    def __init__(self, kind: str, offset: int, problem: str, after_extended_header: bool = False,
                 member_path: Optional[str] = None, member_size: Optional[int] = None):
        super().__init__(problem)
        self.kind = kind
        self.offset = offset
        self.problem = problem
        self.after_extended_header = after_extended_header
        self.member_path = member_path
        self.member_size = member_size


def walk_tar_headers(read_at, file_size: int) -> Iterator[tuple[str, int, int]]:
    """``(member path, data offset, size)`` of each regular member of a tar whose data is whole, in tar order, from
    its headers: ``read_at(offset, count)`` reads bytes at an offset, ``file_size`` is the tar's size. Reads one
    window per header and skips member data by offset; GNU long names and pax ``path``/``size`` records apply to the
    member that follows them. Ends at an end-of-archive block; raises ``TarWalkDamage`` where the tar is damaged."""
    offset, buffer, buffer_start = 0, b"", 0
    long_name, pax = None, {}

    def read(at: int, count: int) -> bytes:
        nonlocal buffer, buffer_start
        if not (buffer_start <= at and at + count <= buffer_start + len(buffer)):
            buffer, buffer_start = read_at(at, max(count, _HEADER_WINDOW)), at
        return buffer[at - buffer_start:at - buffer_start + count]

    try:
        while True:
            if buffer_start <= offset and offset + _BLOCK <= buffer_start + len(buffer):
                header = buffer[offset - buffer_start:offset - buffer_start + _BLOCK]
            else:
                header = read(offset, _BLOCK)
            if len(header) < _BLOCK:
                extended = pax or long_name is not None
                if header:
                    raise TarWalkDamage(TRUNCATED_HEADER, offset, f"truncated header at byte {offset} (cut short)",
                                        extended)
                raise TarWalkDamage(
                    NO_END, offset, f"it ends at byte {offset} without an end-of-archive block (cut short)", extended
                )
            if header == _ZERO_BLOCK:
                return
            _checked(header)
            kind, size = header[156:157], _size(header)
            if pax:
                size = int(pax.get("size", size))
            data_offset = offset + _BLOCK
            path = (pax.get("path") or long_name or _member_path(header)) if kind in _REGULAR else None
            if data_offset + size > file_size:
                raise TarWalkDamage(DATA_CUT_SHORT, offset, f"the data of the member at byte {offset} is cut short",
                                    member_path=path, member_size=size)
            if kind in _REGULAR:
                long_name, pax = None, {}
                yield path, data_offset, size
            elif kind == _GNU_LONG_NAME:
                long_name = read(data_offset, size).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == _PAX_HEADER:
                pax = _pax_records(read(data_offset, size))
            elif kind not in (_PAX_GLOBAL, _GNU_LONG_LINK):
                long_name, pax = None, {}
            offset = data_offset + -(-size // _BLOCK) * _BLOCK
    except _CorruptHeader as err:
        raise TarWalkDamage(err.kind, offset, f"corrupt header at byte {offset} ({err})",
                            bool(pax) or long_name is not None) from None
    except (OSError, ValueError) as err:
        raise TarWalkDamage(UNREADABLE, offset, f"at byte {offset}: {describe_error(err)}") from err


def scan_tar_headers(read_at, file_size: int, url: str) -> TarMemberIndex:
    """Index a tar by walking its headers (``walk_tar_headers``): ``read_at(offset, count)`` reads bytes at an
    offset, ``file_size`` is the tar's size."""
    members: dict = {}
    problem = None
    try:
        for path, data_offset, size in walk_tar_headers(read_at, file_size):
            members.setdefault(member_file_name(path), (data_offset, size))
    except TarWalkDamage as damage:
        problem = damage.problem
    last_good = next(reversed(members), None) if problem is not None else None
    return TarMemberIndex(url, members, problem, last_good)


def build_tar_member_index(url: str, download_config: Optional[DownloadConfig] = None) -> TarMemberIndex:
    """Index the tar at ``url`` (a local path or fsspec URL), reading only its headers."""
    try:
        if is_local_path(url):
            file = open(url, "rb", buffering=0)
        else:
            file = xopen(url, "rb", download_config=download_config, block_size=_REMOTE_INDEX_BLOCK)
    except OSError as err:
        return TarMemberIndex(url, {}, describe_error(err), None)
    with file:
        if is_local_path(url):
            descriptor = file.fileno()
            size = os.fstat(descriptor).st_size
            return scan_tar_headers(lambda at, count: os.pread(descriptor, count, at), size, url)
        size = file.size

        def read_at(at: int, count: int) -> bytes:
            file.seek(at)
            return file.read(count)

        return scan_tar_headers(read_at, size, url)


def load_or_build_tar_member_index(
    url: str, index_root: str, download_config: Optional[DownloadConfig] = None
) -> TarMemberIndex:
    """The cached index of the tar at ``url`` under ``index_root``, built first if absent."""
    directory = os.path.join(index_root, index_folder_name(url, ["tar-members", _INDEX_VERSION], download_config))
    build_once(directory, lambda staging: _write(build_tar_member_index(url, download_config), staging))
    with open(os.path.join(directory, SUMMARY_FILE), encoding="utf-8") as f:
        stored = json.load(f)
    return TarMemberIndex(
        url,
        {name: (offset, size) for name, offset, size in stored["members"]},
        stored["damage"],
        stored["last_good"],
    )


def _write(index: TarMemberIndex, directory: str) -> None:
    stored = {
        "version": _INDEX_VERSION,
        "source": index.url,
        "members": [[name, offset, size] for name, (offset, size) in index.members.items()],
        "damage": index.damage,
        "last_good": index.last_good,
    }
    with open(os.path.join(directory, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(stored, f, separators=(",", ":"))
    logger.info(f"Indexed {index.url}: {len(index.members)} members" + (f" ({index.damage})" if index.damage else ""))
