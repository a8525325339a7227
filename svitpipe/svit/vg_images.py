"""Visual Genome image bytes by ``image_id``, from ``raw/images.zip`` / ``raw/images2.zip`` or their folders.

An image lives in exactly one of ``VG_100K`` and ``VG_100K_2``, so a lookup tries both. A zip is opened once per
reader (its central directory, about 5 MB for 64K images, tells where every member is) and members are read by
random access, so a remote zip is never downloaded whole: each image costs one ranged read.

A damaged zip costs only the images it holds: a member that cannot be read raises ``DamagedZip`` for that image, and
a zip that cannot be opened (its central directory cut off or corrupt) raises it for every image not found in the
other, since that image may be in the damaged one.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from typing import NamedTuple, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import _prepare_path_and_storage_options, xjoin, xopen

from ..bad_records import describe_error
from ..image_files import MAX_IMAGE_BYTES, check_member_size, read_image_file
from ..locations import ImageLocation

logger = logging.get_logger(__name__)

VG_FOLDERS = ("VG_100K", "VG_100K_2")
_MEMBER = re.compile(r"(?:^|/)(VG_100K(?:_2)?)/(\d+)\.jpg$")
# What reading a damaged zip raises: a bad structure, data cut short, garbage in a header or in deflated data.
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error)


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


class _OpenZip(NamedTuple):
    """A zip opened for reading with its members by image id, or, when it cannot be opened, why (``problem``)."""

    archive: Optional[zipfile.ZipFile]
    members: dict
    problem: Optional[str]


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
        self._zips: dict[str, _OpenZip] = {}
        self._open_files = []

    def __enter__(self) -> "VGImageReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for opened in self._zips.values():
            if opened.archive is not None:
                opened.archive.close()
        for file in self._open_files:
            file.close()
        self._zips.clear()
        self._open_files.clear()

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
                if opened.problem is not None:
                    unopened = unopened or DamagedZip(location.url, path, f"the zip cannot be opened: {opened.problem}")
                    continue
                member = opened.members.get(image_id)
                if member is not None:
                    check_member_size(f"{location.url}::{member.name}", member.file_size, self.max_image_bytes)
                    return path, _read_member(opened.archive, member, location.url)
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

    def _zip(self, location: ImageLocation) -> _OpenZip:
        if location.url not in self._zips:
            self._zips[location.url] = self._open_zip(location)
        return self._zips[location.url]

    def _open_zip(self, location: ImageLocation) -> _OpenZip:
        try:
            file = xopen(location.url, "rb", download_config=self.download_config)
        except _ZIP_ERRORS as err:
            return _OpenZip(None, {}, describe_error(err))
        self._open_files.append(file)
        try:
            archive = zipfile.ZipFile(file)
        except _ZIP_ERRORS as err:
            return _OpenZip(None, {}, describe_error(err))
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
        return _OpenZip(archive, members, None)


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
                with xopen(location.url, "rb", download_config=download_config) as file:
                    with zipfile.ZipFile(file) as archive:
                        total += sum(info.file_size for info in archive.infolist() if _MEMBER.search(info.filename))
            except _ZIP_ERRORS as err:
                logger.warning(f"{location.url} cannot be opened ({describe_error(err)}): its images count as 0 bytes")
        else:
            import fsspec

            path, storage_options = _prepare_path_and_storage_options(location.url, download_config=download_config)
            fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
            total += sum(entry.get("size") or 0 for entry in fs.ls(fs_path, detail=True) if entry["type"] == "file")
    return total
