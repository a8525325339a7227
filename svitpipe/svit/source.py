"""Where one SVIT subset's files are under an ``svit_source`` root laid out like the ``BAAI/SVIT`` Hub repo.

The root may hold the upstream archives (``data/<subset>.zip``, ``raw/images.zip``, ``raw/images2.zip``) or their
extracted contents (``data/<subset>.json``, ``raw/VG_100K/``, ``raw/VG_100K_2/``); extracted files win when both
exist because they need no decompression. A missing file is reported with every path that was tried.
"""

from __future__ import annotations

from typing import Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import xexists, xjoin

from ..locations import ImageLocation, SVITFiles
from ..url_paths import url_isdir

SVIT_IMAGE_ARCHIVES = {"VG_100K": "raw/images.zip", "VG_100K_2": "raw/images2.zip"}


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
        if url_isdir(folder_url, download_config):
            images.append(ImageLocation(folder, "folder", folder_url))
        elif xexists(archive_url, download_config=download_config):
            images.append(ImageLocation(folder, "zip", archive_url))
        else:
            raise FileNotFoundError(
                f"Visual Genome images '{folder}' not found under svit_source={root!r}: tried {archive_url} and "
                f"{folder_url}/. An image can be in either folder, so both are needed."
            )
    return SVITFiles(annotation, in_zip, tuple(images))
