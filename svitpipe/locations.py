"""Where an upstream file or folder is: the small location types both families' readers are handed.

A location is a URL (local path or any fsspec URL: ``hf://``, ``s3://``, ``https://``) plus what is at it, an archive
or its extracted folder. ``svit.source`` and ``sa1b.source`` find them under a source root; the image readers open
them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageLocation:
    """Where one VG folder's images are: a zip archive (``kind="zip"``) or an extracted folder (``kind="folder"``).

    Attributes:
        folder: ``VG_100K`` or ``VG_100K_2``.
        kind: ``"zip"`` or ``"folder"``.
        url: local path or fsspec URL of the zip or of the folder.
    """

    folder: str
    kind: str
    url: str


@dataclass(frozen=True)
class SVITFiles:
    """The files one SVIT subset is built from.

    Attributes:
        annotation: URL of ``data/<stem>.json`` or of ``data/<stem>.zip``.
        annotation_in_zip: whether ``annotation`` is a zip holding the JSON array.
        images: where ``VG_100K`` and ``VG_100K_2`` are, in that order.
    """

    annotation: str
    annotation_in_zip: bool
    images: tuple[ImageLocation, ...]


@dataclass(frozen=True)
class TarLocation:
    """Where one SA-1B tar's images are.

    Attributes:
        stem: ``sa_000123``.
        kind: ``"tar"`` (``<root>/sa_000123.tar``) or ``"folder"`` (``<root>/sa_000123/``).
        url: local path or fsspec URL of the tar or the folder.
    """

    stem: str
    kind: str
    url: str

