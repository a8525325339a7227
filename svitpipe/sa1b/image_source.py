"""Random access to SA-1B images by ``(tar, member)`` under a user's ``sa1b_images_source`` root: a folder (or any
fsspec URL) of ``sa_NNNNNN.tar`` files or extracted ``sa_NNNNNN/`` folders.

A tar's member is read at its offset from the tar's member index (``tar_member_index``, cached on disk), so a read
costs one seek and one read of the image. Tars are found and opened only when a row needs them, and at most
``max_open`` files stay open (least recently used closed first). The object pickles without its open files, so a
copy in each DataLoader worker opens its own.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Optional

import datasets
from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import is_local_path, xjoin, xopen

from ..bad_records import DAMAGED_TAR, MISSING_IMAGE, MISSING_TAR, describe_error
from ..locations import TarLocation
from .source import locate_sa1b_tars
from .tar_member_index import TarMemberIndex, load_or_build_tar_member_index

TAR_MEMBER_INDEX_FOLDER = "sa1b-tar-members"
_INDEXES_KEPT = 64  # an index of an 11K-image tar is about 1 MB in memory


class ImageNotAvailable(Exception):
    """An image that cannot be read from the source.

    Attributes:
        reason: ``missing-tar``, ``missing-image`` or ``damaged-tar``.
        detail: which tar and member, and what is wrong.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def default_index_dir() -> str:
    return os.path.join(str(datasets.config.HF_DATASETS_CACHE), "svit_internvl_index", TAR_MEMBER_INDEX_FOLDER)


class SA1BImageSource:
    """The images under one ``sa1b_images_source`` root.

    Args:
        root: local folder or fsspec URL holding ``sa_NNNNNN.tar`` files or ``sa_NNNNNN/`` folders.
        index_dir: where tar member indexes are cached (default: under the ``datasets`` cache).
        max_open: how many tar files stay open at once.
        download_config: credentials and options for remote roots (``storage_options``).
    """

    def __init__(
        self,
        root: str,
        index_dir: Optional[str] = None,
        max_open: int = 16,
        download_config: Optional[DownloadConfig] = None,
    ):
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open!r}")
        self.root = os.path.abspath(root) if is_local_path(root) else root
        self.index_dir = index_dir or default_index_dir()
        self.max_open = max_open
        self.download_config = download_config
        self._reset()

    def _reset(self) -> None:
        self._locations: dict[str, Optional[TarLocation]] = {}
        self._indexes: OrderedDict[str, TarMemberIndex] = OrderedDict()
        self._files: OrderedDict = OrderedDict()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_locations", "_indexes", "_files"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __enter__(self) -> "SA1BImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()

    @property
    def open_files(self) -> int:
        return len(self._files)

    def location(self, tar: str) -> Optional[TarLocation]:
        """Where tar ``tar`` (a stem) is under the root, or None."""
        if tar not in self._locations:
            found, _ = locate_sa1b_tars(self.root, [tar], self.download_config)
            self._locations[tar] = found.get(tar)
        return self._locations[tar]

    def member_index(self, tar: str) -> Optional[TarMemberIndex]:
        """The member index of tar ``tar``; None when it is an extracted folder or not under the root."""
        location = self.location(tar)
        if location is None or location.kind != "tar":
            return None
        if tar in self._indexes:
            self._indexes.move_to_end(tar)
        else:
            self._indexes[tar] = load_or_build_tar_member_index(location.url, self.index_dir, self.download_config)
            if len(self._indexes) > _INDEXES_KEPT:
                self._indexes.popitem(last=False)
        return self._indexes[tar]

    def read(self, tar: str, member: str, limit: Optional[int] = None) -> bytes:
        """The bytes of ``member`` of ``tar`` (its first ``limit`` bytes, if given); ``ImageNotAvailable`` names the
        tar and member when it cannot be read."""
        location = self.location(tar)
        if location is None:
            raise ImageNotAvailable(MISSING_TAR, f"tar {tar} (for member {member}) is not under {self.root}")
        if location.kind == "folder":
            return self._read_file(location, member, limit)
        index = self.member_index(tar)
        entry = index.members.get(member)
        if entry is None:
            if index.damage is not None:
                where = f"after member {index.last_good}" if index.last_good else "before its first member"
                raise ImageNotAvailable(
                    DAMAGED_TAR, f"member {member} cannot be read: {location.url} is damaged {where}: {index.damage}"
                )
            raise ImageNotAvailable(MISSING_IMAGE, f"member {member} is not in tar {tar} ({location.url})")
        offset, size = entry
        size = size if limit is None else min(size, limit)
        try:
            file = self._open(location)
            file.seek(offset)
            data = file.read(size)
        except OSError as err:
            raise ImageNotAvailable(DAMAGED_TAR, f"member {member} of {location.url}: {describe_error(err)}") from err
        if len(data) != size:
            raise ImageNotAvailable(
                DAMAGED_TAR, f"member {member} of {location.url}: {len(data)} of its {size} bytes are there"
            )
        return data

    def _read_file(self, location: TarLocation, member: str, limit: Optional[int]) -> bytes:
        url = xjoin(location.url, member)
        try:
            with xopen(url, "rb", download_config=self.download_config) as f:
                return f.read() if limit is None else f.read(limit)
        except FileNotFoundError:
            raise ImageNotAvailable(
                MISSING_IMAGE, f"member {member} is not in the extracted folder of tar {location.stem} ({location.url})"
            ) from None

    def _open(self, location: TarLocation):
        if location.stem in self._files:
            self._files.move_to_end(location.stem)
            return self._files[location.stem]
        if is_local_path(location.url):
            file = open(location.url, "rb")
        else:
            file = xopen(location.url, "rb", download_config=self.download_config)
        self._files[location.stem] = file
        if len(self._files) > self.max_open:
            self._files.popitem(last=False)[1].close()
        return file
