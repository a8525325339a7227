"""Shared helpers for the publishing tests: sample builds made once per session, and readers of what they hold.

``sample_build(tmp_path_factory)`` runs ``upload.py --sample`` in-process the first time it is asked for a given set of
options and returns the folder on later calls, so every test module reads the same build without paying for it again.
The helpers read folders with ``pyarrow`` and hash files; nothing here mocks the code under test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List

import upload
from svitpipe.features import CONFIGS, features_for
from svitpipe.sample import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = SAMPLE_DIR
ALL_CONFIGS = list(CONFIGS)
SVIT_CONFIGS = [name for name, facts in CONFIGS.items() if facts.family == "svit"]
SA1B_CONFIGS = [name for name, facts in CONFIGS.items() if facts.family == "sa1b"]
SHARD_PATTERN = r"train-(\d{5})-of-(\d{5})\.parquet"
PUBLISHED_TOP_LEVEL = {"README.md", "dataset_infos.json", "data"}

_BUILDS: dict = {}


def run_upload(local_dir, *options: str) -> Path:
    """``upload.py --sample --local-dir local_dir *options``, in this process; fails the test unless it returns 0."""
    code = upload.main(["--sample", "--local-dir", str(local_dir), *options])
    assert code == 0, f"upload.py exited with {code}"
    return Path(local_dir)


def sample_build(tmp_path_factory, *options: str) -> Path:
    """The folder ``upload.py --sample *options`` builds, made once per test session for each set of options.

    Treat it as read-only: copy it (``copy_published``) before changing anything.
    """
    key = (str(tmp_path_factory.getbasetemp()), options)
    if key not in _BUILDS:
        _BUILDS[key] = run_upload(tmp_path_factory.mktemp("sample-build") / "svit-internvl", *options)
    return _BUILDS[key]


def copy_published(folder, dest, with_build_state: bool = False) -> Path:
    """A real copy (no hard links shared with ``folder``) of a built folder, build state included on request."""
    ignore = None if with_build_state else shutil.ignore_patterns(".cache")
    shutil.copytree(folder, dest, ignore=ignore)
    return Path(dest)


def published_files(folder) -> dict[str, str]:
    """``relative path -> sha256`` of every file in ``folder`` but its build state (``.cache/``)."""
    folder = Path(folder)
    digests = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not relative.startswith(".cache/"):
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def shard_paths(folder, config: str) -> list[Path]:
    return sorted((Path(folder) / "data" / config).glob("*.parquet"))


def built_configs(folder) -> list[str]:
    return sorted(path.name for path in (Path(folder) / "data").iterdir())


def undecoded(features: Features) -> Features:
    """``features`` with every ``Image`` (also inside a list) set to ``decode=False``."""
    out = {}
    for name, feature in features.items():
        if isinstance(feature, Image):
            out[name] = Image(decode=False)
        elif isinstance(feature, List) and isinstance(feature.feature, Image):
            out[name] = List(Image(decode=False))
        else:
            out[name] = feature
    return Features(out)


def stored_rows(rows: list[dict], config: str) -> list[dict]:
    """Rows as the config's Arrow schema stores them (float32 rounding, typed nulls), sorted by id."""
    features = features_for(config)
    table = pa.Table.from_pylist([features.encode_example(row) for row in rows], schema=features.arrow_schema)
    return sorted(table.to_pylist(), key=lambda row: row["id"])


def parquet_rows(paths) -> list[dict]:
    """Every row of these Parquet files, as stored, sorted by id."""
    rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda row: row["id"])


def folder_rows(folder, config: str) -> list[dict]:
    return parquet_rows(shard_paths(folder, config))


def sample_images() -> dict[str, bytes]:
    """The original bytes of every sample image: ``VG_100K/<id>.jpg`` (both zips) and ``sa_000000/sa_2.jpg`` (tars)."""
    images = {}
    for archive_name in ("images.zip", "images2.zip"):
        with zipfile.ZipFile(SAMPLE / "svit" / "raw" / archive_name) as archive:
            for name in archive.namelist():
                if name.endswith(".jpg"):
                    images[name] = archive.read(name)
    for tar_path in sorted((SAMPLE / "sa1b").glob("sa_*.tar")):
        with tarfile.open(tar_path) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".jpg"):
                    images[f"{tar_path.stem}/{member.name}"] = archive.extractfile(member).read()
    return images


def file_inode(path) -> int:
    return os.stat(path).st_ino
