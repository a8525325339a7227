"""Where the source indexes (SVIT's records, SA-1B's captions by tar) live on local disk, and how they are made once.

An index is a folder named after its source file and a key that changes when the file does (its URL, size, and
modification time or ETag). It is built in a staging folder and renamed into place, so a reader never sees half an
index and two processes building the same one at once both end up with a complete folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from typing import Callable, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import _prepare_path_and_storage_options, is_local_path

SUMMARY_FILE = "index.json"


def source_stamp(url: str, download_config: Optional[DownloadConfig] = None) -> list:
    """What identifies one version of a file: its URL and size, plus its modification time or ETag-like ids."""
    if is_local_path(url):
        stat = os.stat(url)
        return [os.path.abspath(url), stat.st_size, stat.st_mtime_ns]
    import fsspec

    path, storage_options = _prepare_path_and_storage_options(url, download_config=download_config)
    fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
    info = fs.info(fs_path)
    return [url, info.get("size")] + [
        str(info.get(k)) for k in ("ETag", "etag", "sha", "blob_id", "last_modified", "LastModified") if info.get(k)
    ]


def index_folder_name(url: str, options: list, download_config: Optional[DownloadConfig] = None) -> str:
    """``<file stem>-<16 hex digits>``: the digest covers the file's stamp and the index's own ``options``."""
    stamp = source_stamp(url, download_config) + list(options)
    digest = hashlib.sha256(json.dumps(stamp, default=str).encode()).hexdigest()[:16]
    name = os.path.basename(url.split("::")[0]).rsplit(".", 1)[0]
    return f"{name}-{digest}"


def build_once(directory: str, build: Callable[[str], None]) -> str:
    """``directory`` once it holds a complete index; ``build(staging folder)`` writes one (ending with its
    ``index.json``) when it does not yet exist."""
    summary_path = os.path.join(directory, SUMMARY_FILE)
    if os.path.exists(summary_path):
        return directory
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    remove_abandoned_staging(parent)
    staging = tempfile.mkdtemp(prefix=f"{_staging_prefix()}{os.getpid()}.{os.path.basename(directory)}-", dir=parent)
    try:
        build(staging)
        if not os.path.exists(os.path.join(staging, SUMMARY_FILE)):
            raise RuntimeError(f"index build wrote no {SUMMARY_FILE} in {staging}")
        try:
            os.rename(staging, directory)
        except OSError:  # another process finished the same index first
            if not os.path.exists(summary_path):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _staging_prefix() -> str:
    return f".staging.{socket.gethostname().replace('.', '_')}."


def remove_abandoned_staging(parent: str) -> list:
    """Remove the staging folders under ``parent`` whose building process (on this host) no longer runs; return
    their names."""
    prefix = _staging_prefix()
    removed = []
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_runs(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed.append(name)
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
