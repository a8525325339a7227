"""``os.path.isdir`` and ``os.listdir`` for a local path or any fsspec URL (``hf://``, ``https://``, ``s3://``).

``datasets``' ``xisdir`` and ``xlistdir`` strip the protocol from a URL before asking its filesystem, which suits
``hf://`` but not ``http(s)://``, whose filesystem needs the whole URL: they fail on every https source. These ask
the filesystem with the path fsspec itself derives from the URL.
"""

from __future__ import annotations

import os
from typing import Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import _prepare_path_and_storage_options, is_local_path


def _filesystem(url: str, download_config: Optional[DownloadConfig]):
    import fsspec

    path, storage_options = _prepare_path_and_storage_options(url, download_config=download_config)
    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def url_isdir(url: str, download_config: Optional[DownloadConfig] = None) -> bool:
    if is_local_path(url.split("::")[0]):
        return os.path.isdir(url)
    fs, fs_path = _filesystem(url, download_config)
    return fs.isdir(fs_path)


def url_listdir(url: str, download_config: Optional[DownloadConfig] = None) -> list[str]:
    """The names directly under ``url`` (a plain https server lists a folder only where it serves an index page)."""
    if is_local_path(url.split("::")[0]):
        return os.listdir(url)
    fs, fs_path = _filesystem(url, download_config)
    return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(fs_path, detail=False)]
