"""Shared fixtures and helpers for the builder tests: builders over the bundled sample or over fake trees.

Everything is offline and real: builders read real files (the bundled ``sample/`` or trees written with
``svitpipe.testing.fake_upstream`` under ``tmp_path``), nothing is mocked. Helpers are plain functions so that test modules
can ``from conftest import ...`` them (``tests`` is on ``sys.path`` via pytest.ini).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

# A datasets cache of this test run's own (datasets reads it on import): a cache left by another run, for a folder
# at a recurring tmp path, would be read back instead of the files a test just wrote.
_DATASETS_CACHE = tempfile.mkdtemp(prefix="svit-internvl-tests-datasets-cache-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
atexit.register(shutil.rmtree, _DATASETS_CACHE, ignore_errors=True)

import datasets  # noqa: E402
import numpy as np
import pytest

from svit_internvl import SVITInternVL
from svitpipe.features import CONFIGS
from svitpipe.sample import SAMPLE_DIR

datasets.disable_progress_bars()

SAMPLE = SAMPLE_DIR
SVIT_SAMPLE = SAMPLE / "svit"
CAPTIONS_SAMPLE = SAMPLE / "internvl-sa1b-caption"
SA1B_SAMPLE = SAMPLE / "sa1b"

ALL_CONFIGS = list(CONFIGS)
SVIT_CONFIGS = [name for name, facts in CONFIGS.items() if facts.family == "svit"]
SA1B_CONFIGS = [name for name, facts in CONFIGS.items() if facts.family == "sa1b"]
VG_ARCHIVES = {"VG_100K": "images.zip", "VG_100K_2": "images2.zip"}


# --------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------


def new_builder(cache_dir, config_name: str, **kwargs) -> SVITInternVL:
    """A builder over the bundled sample unless sources are given; its cache (and caption index) in ``cache_dir``."""
    kwargs.setdefault("svit_source", str(SVIT_SAMPLE))
    kwargs.setdefault("sa1b_captions_source", str(CAPTIONS_SAMPLE))
    kwargs.setdefault("sa1b_images_source", str(SA1B_SAMPLE))
    return SVITInternVL(config_name=config_name, cache_dir=str(cache_dir), **kwargs)


@pytest.fixture(scope="module")
def builders(tmp_path_factory):
    """Factory: ``builders(config_name)``, one sample builder per config for the module (its own cache dir)."""
    cache = {}

    def get(config_name: str) -> SVITInternVL:
        if config_name not in cache:
            cache[config_name] = new_builder(tmp_path_factory.mktemp("builder-cache"), config_name)
        return cache[config_name]

    return get


def undecoded_stream(builder: SVITInternVL):
    """The builder's train split streamed with images left as ``{"bytes", "path"}``."""
    return builder.as_streaming_dataset(split="train").decode(False)


@pytest.fixture
def sample_builder(tmp_path_factory):
    """Factory: ``sample_builder(config_name, **config_kwargs)``, each call with its own fresh cache dir."""

    def make(config_name: str, **kwargs) -> SVITInternVL:
        return new_builder(tmp_path_factory.mktemp("cache"), config_name, **kwargs)

    return make


def stream_rows(builder: SVITInternVL) -> list[dict]:
    """Every row of the streaming train split, images left undecoded (``{"bytes", "path"}``)."""
    return list(builder.as_streaming_dataset(split="train").decode(False))


def prepare(builder: SVITInternVL, **prepare_kwargs) -> datasets.Dataset:
    builder.download_and_prepare(**prepare_kwargs)
    return builder.as_dataset(split="train")


def arrow_rows(dataset: datasets.Dataset) -> list[dict]:
    """The rows exactly as stored in Arrow (images as ``{"bytes", "path"}``, float32 values as Python floats)."""
    return dataset.with_format("arrow")[:].to_pylist()


def as_float32(value):
    """``value`` with every float rounded to float32, as the Arrow cache stores it."""
    if isinstance(value, float):
        return float(np.float32(value))
    if isinstance(value, dict):
        return {key: as_float32(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_float32(item) for item in value]
    return value


def by_id(rows: list[dict]) -> dict[str, dict]:
    table = {row["id"]: row for row in rows}
    assert len(table) == len(rows), "duplicate ids"
    return table


def find_in_chain(error: BaseException, kind: type):
    """``error`` or the first exception of type ``kind`` it was raised from (``datasets`` wraps generation errors)."""
    seen = error
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    raise AssertionError(f"no {kind.__name__} in the chain of {error!r}")


# --------------------------------------------------------------------------
# The sample's upstream files, read directly (the expected values)
# --------------------------------------------------------------------------


def sample_svit_records(config_name: str, root: Path = SVIT_SAMPLE) -> list[dict]:
    stem = CONFIGS[config_name].upstream_file
    with zipfile.ZipFile(root / "data" / f"{stem}.zip") as archive:
        return json.loads(archive.read(f"{stem}.json"))


def sample_svit_rows(config_name: str, root: Path = SVIT_SAMPLE) -> list[dict]:
    """The rows the sample's upstream file promises, one per image in order of first appearance: ``image_id`` as
    the integer upstream wrote (digits included), conversations of every record of that image in file order."""
    rows: dict[int, dict] = {}
    for record in sample_svit_records(config_name, root):
        image_id = int(record["image_id"])
        row = rows.setdefault(image_id, {"image_id": image_id, "conversations": []})
        row["conversations"] += record["conversations"]
    return list(rows.values())


def sample_vg_images(root: Path = SVIT_SAMPLE) -> dict[int, tuple[str, bytes]]:
    """``image_id -> ("VG_100K/<id>.jpg", bytes)`` over both image zips."""
    images = {}
    for folder, archive_name in VG_ARCHIVES.items():
        with zipfile.ZipFile(root / "raw" / archive_name) as archive:
            for name in archive.namelist():
                prefix, _, file_name = name.partition("/")
                assert prefix == folder
                images[int(file_name.removesuffix(".jpg"))] = (name, archive.read(name))
    return images


def sample_caption_lines(config_name: str, root: Path = CAPTIONS_SAMPLE) -> list[tuple[int, dict]]:
    """``(1-based line number, parsed line)`` for every non-blank line of the config's jsonl file."""
    raw = (root / CONFIGS[config_name].upstream_file).read_bytes()
    return [
        (number, json.loads(line))
        for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1)
        if line.strip()
    ]


def sample_tar_members(root: Path = SA1B_SAMPLE) -> dict[str, bytes]:
    """``"sa_000000/sa_2.jpg" -> bytes`` (and the ``.json`` members) of every sample tar."""
    members = {}
    for tar_path in sorted(root.glob("*.tar")):
        with tarfile.open(tar_path) as archive:
            for info in archive.getmembers():
                members[f"{tar_path.stem}/{info.name}"] = archive.extractfile(info).read()
    return members


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Size of a JPEG, fully decoded (so a broken file fails here)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        image.load()
        return image.size
