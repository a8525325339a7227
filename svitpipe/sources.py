"""Where the upstream files are, under a source root that is a local path or any fsspec URL (``hf://``, ``s3://``...).

A root may hold the upstream archives (``data/<subset>.zip``, ``raw/images.zip``, ``sa_000123.tar``) or their
extracted contents (``data/<subset>.json``, ``raw/VG_100K/``, ``sa_000123/``); extracted files win when both exist
because they need no decompression. A missing file is reported with every path that was tried.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import is_local_path, xexists, xisdir, xjoin, xlistdir

from .vg_images import ImageLocation

SVIT_IMAGE_ARCHIVES = {"VG_100K": "raw/images.zip", "VG_100K_2": "raw/images2.zip"}
SA1B_TAR_STEM = re.compile(r"^sa_\d{6}$")


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


def locate_svit_files(root: str, stem: str, download_config: Optional[DownloadConfig] = None) -> SVITFiles:
    json_url = xjoin(root, "data", f"{stem}.json")
    zip_url = xjoin(root, "data", f"{stem}.zip")
    if xexists(json_url, download_config=download_config):
        annotation, in_zip = json_url, False
    elif xexists(zip_url, download_config=download_config):
        annotation, in_zip = zip_url, True
    else:
        raise FileNotFoundError(
            f"SVIT annotations for '{stem}' not found under svit_source={root!r}: tried {zip_url} and {json_url}. "
            "svit_source must be laid out like the BAAI/SVIT repo (data/<subset>.zip, raw/images.zip, "
            "raw/images2.zip) or hold the extracted files."
        )
    images = []
    for folder, archive in SVIT_IMAGE_ARCHIVES.items():
        folder_url = xjoin(root, "raw", folder)
        archive_url = xjoin(root, archive)
        if xisdir(folder_url, download_config=download_config):
            images.append(ImageLocation(folder, "folder", folder_url))
        elif xexists(archive_url, download_config=download_config):
            images.append(ImageLocation(folder, "zip", archive_url))
        else:
            raise FileNotFoundError(
                f"Visual Genome images '{folder}' not found under svit_source={root!r}: tried {archive_url} and "
                f"{folder_url}/. An image can be in either folder, so both are needed."
            )
    return SVITFiles(annotation, in_zip, tuple(images))


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


def locate_sa1b_tars(
    root: str, stems: Iterable[str], download_config: Optional[DownloadConfig] = None
) -> tuple[dict[str, TarLocation], list[str]]:
    """Find each wanted tar (or its extracted folder) under ``root``; return ``(found, missing stems)``."""
    stems = sorted(set(stems))
    listing = _list_names(root, download_config)
    found, missing = {}, []
    for stem in stems:
        folder_url, tar_url = xjoin(root, stem), xjoin(root, f"{stem}.tar")
        if listing is not None:
            has_folder, has_tar = stem in listing, f"{stem}.tar" in listing
            if has_folder and not xisdir(folder_url, download_config=download_config):
                has_folder = False
        else:
            has_folder = xisdir(folder_url, download_config=download_config)
            has_tar = not has_folder and xexists(tar_url, download_config=download_config)
        if has_folder:
            found[stem] = TarLocation(stem, "folder", folder_url)
        elif has_tar:
            found[stem] = TarLocation(stem, "tar", tar_url)
        else:
            missing.append(stem)
    return found, missing


def _list_names(root: str, download_config: Optional[DownloadConfig]) -> Optional[set]:
    """Names directly under ``root``, or None where the storage cannot list (plain https)."""
    try:
        if is_local_path(root):
            return set(os.listdir(root))
        return {name.rstrip("/").rsplit("/", 1)[-1] for name in xlistdir(root, download_config=download_config)}
    except (NotImplementedError, OSError, ValueError):
        return None
