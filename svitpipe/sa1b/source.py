"""Where SA-1B's tars are under an ``sa1b_images_source`` root: ``sa_000123.tar`` files or extracted ``sa_000123/``
folders (a folder wins when both exist: it needs no unpacking)."""

from __future__ import annotations

from typing import Iterable, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import xexists, xjoin

from ..locations import TarLocation
from ..url_paths import url_isdir, url_listdir


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
            if has_folder and not url_isdir(folder_url, download_config):
                has_folder = False
        else:
            has_folder = url_isdir(folder_url, download_config)
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
        return set(url_listdir(root, download_config))
    except (NotImplementedError, OSError, ValueError):
        return None
