"""The SA-1B path mapper: an upstream caption's image path -> the tar that holds the image, and its member name.

InternVL-SA-1B-Caption names images ``sa_000123/sa_4567.jpg``: the folder is the SA-1B tar ``sa_000123.tar`` and
the file is its member ``sa_4567.jpg``. Tar members may carry a ``./`` or folder prefix, so members are matched by
file name.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

# Folders before the tar's may be anything but "..": upstream paths never climb (\Z: no trailing newline).
_IMAGE_PATH = re.compile(r"^(?:(?!\.\./)[^/]+/)*(sa_\d{6})/(sa_\d+\.jpg)\Z", re.ASCII)


@dataclass(frozen=True)
class SA1BImageRef:
    """One image of a caption line.

    Attributes:
        path: the path as written upstream (stored in the ``image_path`` column).
        tar: the SA-1B tar stem, ``sa_000123``.
        member: the file name inside the tar, ``sa_4567.jpg``.
    """

    path: str
    tar: str
    member: str


def parse_sa1b_image_path(path: str) -> SA1BImageRef:
    """Map ``sa_000123/sa_4567.jpg`` (optionally under more folders) to its tar and member; ValueError otherwise."""
    if not isinstance(path, str):
        raise ValueError(f"image path must be a string, got {path!r}")
    match = _IMAGE_PATH.match(path)
    if match is None:
        raise ValueError(f"image path {path!r} is not of the form 'sa_NNNNNN/sa_K.jpg'")
    return SA1BImageRef(path=path, tar=match.group(1), member=match.group(2))


def member_file_name(name: str) -> str:
    """The file name of a tar member (``./sa_4567.jpg`` and ``sa_000123/sa_4567.jpg`` -> ``sa_4567.jpg``)."""
    return posixpath.basename(name)
