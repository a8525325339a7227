"""Visual Genome image bytes by ``image_id``, from ``raw/images.zip`` / ``raw/images2.zip`` or their folders.

An image lives in exactly one of ``VG_100K`` and ``VG_100K_2``, so a lookup tries both. A zip is opened once per
reader (its central directory, about 5 MB for 64K images, tells where every member is) and members are read by
random access, so a remote zip is never downloaded whole: each image costs one ranged read.
"""

from __future__ import annotations

import re
import zipfile
from typing import NamedTuple, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import _prepare_path_and_storage_options, xjoin, xopen

from ..locations import ImageLocation

VG_FOLDERS = ("VG_100K", "VG_100K_2")
_MEMBER = re.compile(r"(?:^|/)(VG_100K(?:_2)?)/(\d+)\.jpg$")


class VGImageReader:
    """Reads image bytes by id; open it with ``with`` so that zip handles are closed."""

    def __init__(self, locations: tuple[ImageLocation, ...], download_config: Optional[DownloadConfig] = None):
        self.locations = locations
        self.download_config = download_config
        self._zips: dict[str, tuple[zipfile.ZipFile, dict[int, _ZipMember]]] = {}
        self._open_files = []

    def __enter__(self) -> "VGImageReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for archive, _ in self._zips.values():
            archive.close()
        for file in self._open_files:
            file.close()
        self._zips.clear()
        self._open_files.clear()

    def read(self, image_id: int) -> Optional[tuple[str, bytes]]:
        """``(relative path, bytes)`` of the image, e.g. ``("VG_100K/2354786.jpg", b"...")``; None if absent."""
        for location in self.locations:
            if location.kind == "zip":
                archive, members = self._zip(location)
                member = members.get(image_id)
                if member is not None:
                    return f"{location.folder}/{image_id}.jpg", archive.read(_zip_info(member))
            else:
                try:
                    with xopen(xjoin(location.url, f"{image_id}.jpg"), "rb", download_config=self.download_config) as f:
                        return f"{location.folder}/{image_id}.jpg", f.read()
                except FileNotFoundError:
                    continue
        return None

    def where(self) -> str:
        return " or ".join(
            f"{location.url}" + (f" ({location.folder}/)" if location.kind == "zip" else "")
            for location in self.locations
        )

    def _zip(self, location: ImageLocation):
        if location.url not in self._zips:
            file = xopen(location.url, "rb", download_config=self.download_config)
            self._open_files.append(file)
            archive = zipfile.ZipFile(file)
            members = {}
            for info in archive.infolist():
                match = _MEMBER.search(info.filename)
                if match and match.group(1) == location.folder:
                    members[int(match.group(2))] = _ZipMember(
                        info.orig_filename, info.header_offset, info.compress_size, info.file_size,
                        info.compress_type, info.flag_bits, info.CRC,
                    )
            # Visual Genome's zips hold ~108K members: a ZipInfo each, listed twice by the archive, is ~70 MB per
            # reader; the members table above keeps what reading needs in about half of that.
            archive.filelist, archive.NameToInfo = [], {}
            self._zips[location.url] = (archive, members)
        return self._zips[location.url]


class _ZipMember(NamedTuple):
    """Where a member is in its zip, as its central directory says: what ``ZipFile.open`` needs to read it."""

    name: str
    header_offset: int
    compress_size: int
    file_size: int
    compress_type: int
    flag_bits: int
    crc: int


def _zip_info(member: _ZipMember) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member.name)
    info.header_offset = member.header_offset
    info.compress_size = member.compress_size
    info.file_size = member.file_size
    info.compress_type = member.compress_type
    info.flag_bits = member.flag_bits
    info.CRC = member.crc
    return info


def total_image_bytes(locations: tuple[ImageLocation, ...], download_config: Optional[DownloadConfig] = None) -> int:
    """Bytes of all VG images at ``locations`` (zip central directories or folder listings; nothing is read)."""
    total = 0
    for location in locations:
        if location.kind == "zip":
            with xopen(location.url, "rb", download_config=download_config) as file, zipfile.ZipFile(file) as archive:
                total += sum(info.file_size for info in archive.infolist() if _MEMBER.search(info.filename))
        else:
            import fsspec

            path, storage_options = _prepare_path_and_storage_options(location.url, download_config=download_config)
            fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
            total += sum(entry["size"] for entry in fs.ls(fs_path, detail=True) if entry["type"] == "file")
    return total
