"""Checks a published folder must pass before anything is pushed: the shards, the card and the infos agree.

Every problem is collected (not just the first) and reported together by ``PublishCheckError``.
"""

from __future__ import annotations

import glob
import json
import os

import pyarrow.parquet as pq
from datasets import Features
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard

from ..features import features_for
from .card import CARD_FILE, DATASET_INFOS_FILE
from .parquet_layout import DEFAULT_ROW_GROUP_BYTES, VIEWER_ROW_GROUP_BYTES_LIMIT, image_bytes_columns


class PublishCheckError(RuntimeError):
    def __init__(self, folder: str, problems: list[str]):
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{folder} is not ready to publish ({len(problems)} problem(s)):\n{listing}")
        self.problems = problems


def verify_published_folder(
    folder: str,
    expected_configs: list[str],
    max_rows_per_row_group: int = 100,
    max_row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    sa1b_images: str = "embed",
) -> None:
    """Raise ``PublishCheckError`` unless every check passes (``sa1b_images``: how the sa1b-* configs were built).
    Row groups are held to ``max_rows_per_row_group`` rows (configs with images) and to ``max_row_group_bytes``
    uncompressed bytes, and never past the Dataset Viewer's limit whatever the budget."""
    problems: list[str] = []
    card_path = os.path.join(folder, CARD_FILE)
    try:
        card = DatasetCard.load(card_path)
    except Exception as err:  # any parse failure is a problem to report, whatever its type
        raise PublishCheckError(folder, [f"{CARD_FILE} does not parse as a dataset card: {err}"]) from err
    declared = [entry["config_name"] for entry in card.data.get("configs") or []]
    if sorted(declared) != sorted(expected_configs):
        problems.append(f"card configs {sorted(declared)} != built configs {sorted(expected_configs)}")
    defaults = [entry["config_name"] for entry in card.data.get("configs") or [] if entry.get("default")]
    if len(defaults) != 1:
        problems.append(f"expected exactly one default config, found {defaults}")
    card_infos = DatasetInfosDict.from_dataset_card_data(card.data)
    with open(os.path.join(folder, DATASET_INFOS_FILE), encoding="utf-8") as f:
        json_infos = json.load(f)
    for name in expected_configs:
        features = features_for(name, sa1b_images)
        problems += _check_config(
            folder, name, card_infos.get(name), json_infos.get(name), max_rows_per_row_group, max_row_group_bytes,
            features,
        )
    if problems:
        raise PublishCheckError(folder, problems)
    _check_datasets_sees_configs(folder, expected_configs)


def row_group_byte_problems(relative: str, metadata: pq.FileMetaData, budget: int) -> list[str]:
    """One problem per row group whose uncompressed size (``total_byte_size``, what the Dataset Viewer counts) is
    over ``budget`` or over the Viewer's limit."""
    problems = []
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).total_byte_size
        if size > min(budget, VIEWER_ROW_GROUP_BYTES_LIMIT):
            past = (
                f"over the Dataset Viewer's {VIEWER_ROW_GROUP_BYTES_LIMIT:,}-byte read limit"
                if size > VIEWER_ROW_GROUP_BYTES_LIMIT else f"over the row group budget of {budget:,} bytes"
            )
            problems.append(
                f"{relative}: row group {index} ({metadata.row_group(index).num_rows} rows) holds {size:,} bytes "
                f"uncompressed, {past}"
            )
    return problems


def _check_config(
    folder, name, card_info, json_info, max_rows_per_row_group, max_row_group_bytes, features
) -> list[str]:
    problems = []
    if card_info is None or json_info is None:
        return [f"{name}: missing from the card's dataset_info or from {DATASET_INFOS_FILE}"]
    expected_rows = card_info.splits["train"].num_examples
    if json_info["splits"]["train"]["num_examples"] != expected_rows:
        problems.append(f"{name}: {DATASET_INFOS_FILE} and the card disagree on the row count")
    if card_info.features != features:
        problems.append(f"{name}: the card's features differ from the builder's")
    shards = sorted(glob.glob(os.path.join(glob.escape(folder), "data", name, "train-*.parquet")))
    if not shards:
        return problems + [f"{name}: no shards under data/{name}/"]
    schema = features.arrow_schema.remove_metadata()
    rows, ids = 0, set()
    limit = max_rows_per_row_group if image_bytes_columns(features) else None
    for path in shards:
        relative = os.path.relpath(path, folder)
        try:
            parquet = pq.ParquetFile(path)
        except Exception as err:  # a shard that does not open is reported, whatever the reader raised
            problems.append(f"{relative}: does not open as Parquet: {err}")
            continue
        if not parquet.schema_arrow.remove_metadata().equals(schema):
            problems.append(f"{relative}: schema differs from the declared features")
        elif Features.from_arrow_schema(parquet.schema_arrow) != features:
            problems.append(f"{relative}: embedded features metadata differs from the declared features")
        metadata = parquet.metadata
        rows += metadata.num_rows
        if limit is not None:
            largest = max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
            if largest > limit:
                problems.append(f"{relative}: a row group holds {largest} rows (limit {limit})")
        problems += row_group_byte_problems(relative, metadata, max_row_group_bytes)
        duplicates = set()
        for row_id in parquet.read(columns=["id"]).column("id").to_pylist():
            if row_id in ids:
                duplicates.add(row_id)
            ids.add(row_id)
        if duplicates:
            problems.append(f"{relative}: ids already used in this config: {sorted(duplicates)[:5]}")
    if rows != expected_rows:
        problems.append(f"{name}: shards hold {rows} rows, the infos say {expected_rows}")
    return problems


def _check_datasets_sees_configs(folder: str, expected_configs: list[str]) -> None:
    from datasets import get_dataset_config_names

    if glob.has_magic(folder):
        # datasets reads a local folder's path as a glob pattern: ask it about a folder with a plain name whose
        # files are links to the published ones (fsspec does not walk into a linked folder).
        import tempfile

        with tempfile.TemporaryDirectory(prefix="svit-internvl-check-") as plain:
            for root, _, files in os.walk(folder):
                relative = os.path.relpath(root, folder)
                if relative.split(os.sep)[0] == ".cache":
                    continue
                os.makedirs(os.path.join(plain, relative), exist_ok=True)
                for name in files:
                    os.symlink(os.path.abspath(os.path.join(root, name)), os.path.join(plain, relative, name))
            seen = get_dataset_config_names(plain)
    else:
        seen = get_dataset_config_names(folder)
    if sorted(seen) != sorted(expected_configs):
        raise PublishCheckError(folder, [f"datasets lists configs {sorted(seen)}, expected {sorted(expected_configs)}"])

