"""A built folder (or a Hub dataset repo) as the preview reads it: its configs, their shards and their numbers.

Local folders are read from disk; anything else through fsspec (``hf://datasets/<org>/<name>`` for a repo id), so
the same code reads what ``upload.py`` wrote and what it pushed. Only ``dataset_infos.json`` and the shards'
Parquet footers are read here; rows are read by :mod:`svitpipe.preview.scan`.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field

import fsspec
import pyarrow.parquet as pq

from ..features import CONFIGS
from ..publish.card import DATASET_INFOS_FILE, REPORT_KEY

__all__ = ["BuiltConfig", "BuiltFolder", "Shard", "open_built_folder"]


@dataclass(frozen=True)
class Shard:
    """One published Parquet file: its path in the folder's filesystem, rows (from its footer) and bytes."""

    path: str
    rows: int
    num_bytes: int
    row_groups: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


@dataclass(frozen=True)
class BuiltConfig:
    """A config's numbers as published: ``info`` is its entry in ``dataset_infos.json`` (the card's YAML holds the
    same infos), ``report`` that entry's build report, ``shards`` what ``data/<config>/`` holds."""

    name: str
    info: dict
    shards: tuple[Shard, ...]

    @property
    def report(self) -> dict:
        return self.info.get(REPORT_KEY) or {}

    @property
    def info_rows(self) -> int | None:
        split = (self.info.get("splits") or {}).get("train") or {}
        return split.get("num_examples")

    @property
    def shard_rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    @property
    def shard_bytes(self) -> int:
        return sum(shard.num_bytes for shard in self.shards)


@dataclass
class BuiltFolder:
    data: str
    fs: fsspec.AbstractFileSystem
    root: str
    configs: dict[str, BuiltConfig] = field(default_factory=dict)

    def open(self, path: str):
        return self.fs.open(path, "rb")


def _filesystem(data: str) -> tuple[fsspec.AbstractFileSystem, str]:
    if os.path.isdir(data):
        return fsspec.filesystem("file"), os.path.abspath(data)
    if "://" not in data:
        if data.count("/") != 1:
            raise FileNotFoundError(f"{data!r} is neither a folder nor a Hub dataset repo id (<org>/<name>)")
        data = f"hf://datasets/{data}"
    fs, root = fsspec.core.url_to_fs(data)
    return fs, root.rstrip("/")


def _shards(fs: fsspec.AbstractFileSystem, root: str, config: str) -> tuple[Shard, ...]:
    shards = []
    for path in sorted(fs.glob(posixpath.join(root, "data", config, "*.parquet"))):
        with fs.open(path, "rb") as file:
            metadata = pq.ParquetFile(file).metadata
            shards.append(Shard(path, metadata.num_rows, fs.size(path), metadata.num_row_groups))
    return tuple(shards)


def open_built_folder(data: str, configs: list[str] | None = None) -> BuiltFolder:
    """The folder ``upload.py`` built (or the repo it pushed): ``configs`` (default: every config it holds, in the
    project's order) with their infos and shards. Errors name what is missing."""
    fs, root = _filesystem(data)
    infos_path = posixpath.join(root, DATASET_INFOS_FILE)
    if not fs.exists(infos_path):
        raise FileNotFoundError(f"{data}: no {DATASET_INFOS_FILE}; is this a folder built by upload.py?")
    with fs.open(infos_path, "rb") as file:
        infos = json.load(file)  # one small object per config
    built = [name for name in CONFIGS if name in infos]
    if configs:
        missing = [name for name in configs if name not in built]
        if missing:
            raise ValueError(f"{data}: no config {missing} in {DATASET_INFOS_FILE}; it holds {built}")
        built = [name for name in built if name in configs]
    folder = BuiltFolder(data, fs, root)
    for name in built:
        shards = _shards(fs, root, name)
        if not shards:
            raise FileNotFoundError(f"{data}: {DATASET_INFOS_FILE} lists {name!r} but data/{name}/ has no shards")
        folder.configs[name] = BuiltConfig(name, infos[name], shards)
    return folder
