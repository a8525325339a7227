"""Where every image is inside an SA-1B tar: each regular member's file name, data offset and size, from one pass
over the tar's headers.

The pass reads a header, then seeks past the member's data to the next header (``tarfile`` does the seeking; GNU and
pax long names are its extended headers), so it reads a few KB per member of a 10 GB tar. The index is cached on
local disk like the source indexes (``source_index_cache``: a folder named after the tar's URL, size and modification
stamp), so later runs and every DataLoader worker read it instead of the tar's headers.

A damaged tar (cut short, a corrupt header) is indexed up to the damage: the members before it whose data is whole,
and the damage itself, which the readers report for members not found before it. A file name that appears twice
keeps its first member, the one a sequential pass over the tar meets first.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import is_local_path, xopen

from ..bad_records import describe_error
from ..source_index_cache import SUMMARY_FILE, build_once, index_folder_name
from .paths import member_file_name
from .tar_images import _TAR_ERRORS, _data_is_whole, _end_problem, _EndNotingTarInfo

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


def scan_tar_headers(file: BinaryIO, url: str) -> TarMemberIndex:
    """Index an open, seekable tar by walking its headers."""
    members: dict = {}
    last = None
    try:
        archive = tarfile.open(fileobj=file, mode="r:", tarinfo=_EndNotingTarInfo)
    except _TAR_ERRORS as err:
        return TarMemberIndex(url, {}, describe_error(err), None)
    problem = None
    try:
        while True:
            info = archive.next()
            if info is None:
                break
            if info.isreg():
                last = info
                members.setdefault(member_file_name(info.name), (info.offset_data, info.size))
            archive.members = []  # the index is ``members``; tarfile's own list would grow with the tar
        problem = _end_problem(archive)
    except _TAR_ERRORS as err:
        problem = describe_error(err)
    if problem is not None and last is not None and not _data_is_whole(file, last):
        name = member_file_name(last.name)
        if members.get(name) == (last.offset_data, last.size):
            del members[name]
    last_good = next(reversed(members), None) if members else None
    return TarMemberIndex(url, members, problem, last_good if problem is not None else None)


def build_tar_member_index(url: str, download_config: Optional[DownloadConfig] = None) -> TarMemberIndex:
    """Index the tar at ``url`` (a local path or fsspec URL), reading only its headers."""
    try:
        if is_local_path(url):
            file = open(url, "rb", buffering=0)  # unbuffered: a buffer would read data the pass skips
        else:
            file = xopen(url, "rb", download_config=download_config, block_size=_REMOTE_INDEX_BLOCK)
    except OSError as err:
        return TarMemberIndex(url, {}, describe_error(err), None)
    with file:
        return scan_tar_headers(file, url)


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
