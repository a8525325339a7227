"""The dataset card (``README.md``) and ``dataset_infos.json`` of the sample build, and the project's own infos."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from datasets import DatasetInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard

from publish_fixtures import ALL_CONFIGS, REPO_ROOT, SA1B_CONFIGS, SVIT_CONFIGS, sample_build, shard_paths
from svit_internvl import SVITInternVL
from svitpipe.features import (
    CONFIGS,
    SA1B_CAPTION_HOMEPAGE,
    SA1B_CITATION,
    SA1B_HOMEPAGE,
    SVIT_CITATION,
    SVIT_HOMEPAGE,
)
from svitpipe.publish.card import MIN_DATASETS_VERSION, project_infos
from svitpipe.publish.upload import SA1B_SAMPLE_NOTE


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def card(folder) -> DatasetCard:
    return DatasetCard.load(folder / "README.md")


@pytest.fixture(scope="module")
def builder_features(tmp_path_factory) -> dict:
    cache_dir = str(tmp_path_factory.mktemp("builder-info"))
    return {name: SVITInternVL(config_name=name, cache_dir=cache_dir).info.features for name in ALL_CONFIGS}


def shard_rows(folder, config: str) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in shard_paths(folder, config))


# --------------------------------------------------------------------------
# YAML front matter
# --------------------------------------------------------------------------


def test_configs_declare_every_subset_with_its_data_files(folder, card):
    configs = card.data.configs
    assert [entry["config_name"] for entry in configs] == sorted(ALL_CONFIGS)
    for entry in configs:
        name = entry["config_name"]
        assert entry["data_files"] == [{"split": "train", "path": f"data/{name}/train-*.parquet"}]
        matched = sorted(Path(p) for p in glob.glob(str(folder / entry["data_files"][0]["path"])))
        assert matched == shard_paths(folder, name) and matched, name


def test_exactly_one_default_config_and_it_is_referring(card):
    defaults = [entry["config_name"] for entry in card.data.configs if entry.get("default")]
    assert defaults == ["referring"]


def test_dataset_info_matches_the_builder_and_the_shards(folder, card, builder_features):
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert sorted(infos) == sorted(ALL_CONFIGS)
    for name, info in infos.items():
        assert info.features == builder_features[name], name
        assert list(info.splits) == ["train"], name
        assert info.splits["train"].num_examples == shard_rows(folder, name), name
        assert info.splits["train"].num_examples > 0
        assert info.download_size == sum(path.stat().st_size for path in shard_paths(folder, name)), name
        assert info.dataset_size == info.splits["train"].num_bytes > 0, name


def test_dataset_infos_json_agrees_with_the_card(folder, card):
    card_infos = DatasetInfosDict.from_dataset_card_data(card.data)
    json_infos = json.loads((folder / "dataset_infos.json").read_text(encoding="utf-8"))
    assert sorted(json_infos) == sorted(ALL_CONFIGS)
    for name, entry in json_infos.items():
        from_json = DatasetInfo.from_dict(entry)
        from_card = card_infos[name]
        assert from_json.features == from_card.features, name
        assert from_json.splits["train"].num_examples == from_card.splits["train"].num_examples, name
        assert from_json.splits["train"].num_bytes == from_card.splits["train"].num_bytes, name
        assert from_json.download_size == from_card.download_size, name
        assert from_json.dataset_size == from_card.dataset_size, name
        assert from_json.description == CONFIGS[name].description, name
        assert from_json.license and from_json.citation and from_json.homepage, name


def test_card_metadata_fields(card):
    data = card.data
    assert data.pretty_name
    assert set(data.license) == {"cc-by-4.0", "mit", "other"}
    assert data.license_name and data.license_link.startswith("https://")
    assert data.language == ["en", "zh"]
    assert "image-text-to-text" in data.task_categories and "visual-question-answering" in data.task_categories
    assert data.size_categories == ["n<1K"]  # the sample holds 65 rows


def test_datasets_lists_exactly_the_eight_configs(folder):
    assert sorted(datasets.get_dataset_config_names(str(folder))) == sorted(ALL_CONFIGS)


# --------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------


def test_body_has_a_row_per_config_with_its_counts(folder, card):
    for name in ALL_CONFIGS:
        lines = [line for line in card.text.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(lines) == 1, name
        cells = [cell.strip() for cell in lines[0].strip("|").split("|")]
        assert cells[1] == CONFIGS[name].description
        assert cells[2] == f"{shard_rows(folder, name):,}", name
        assert cells[3] == str(len(shard_paths(folder, name))), name


def test_body_explains_boxes_and_the_llava_padded_square(card):
    text = card.text
    assert "[x1, y1, x2, y2]" in text
    assert "normalised by the original image's width (x) and height (y)" in text
    assert "padded to a square" in text and "s = max(w, h)" in text


def test_body_names_every_licence(card):
    text = card.text
    for licence in ("CC BY 4.0", "OpenAI's terms of use", "MIT", "SA-1B Dataset Research License"):
        assert licence in text, licence
    assert "does not allow redistributing the images" in text
    assert SA1B_SAMPLE_NOTE in text  # built with --sample: the card says these are not SA-1B images
    for homepage in (SVIT_HOMEPAGE, SA1B_CAPTION_HOMEPAGE, SA1B_HOMEPAGE):
        assert homepage in text, homepage


def test_body_gives_loading_code_and_min_datasets_version(card):
    text = card.text
    assert f"`datasets` >= {MIN_DATASETS_VERSION}" in text
    assert re.search(r'load_dataset\("[^"]+", "referring", split="train", streaming=True\)', text)
    assert "split_dataset_by_node" in text


def test_body_cites_both_datasets_and_their_sources(card):
    assert SVIT_CITATION in card.text
    assert SA1B_CITATION in card.text
    for key in ("zhao2023svit", "krishna2017visual", "chen2024internvl", "kirillov2023segment"):
        assert key in card.text


# --------------------------------------------------------------------------
# The project's top-level dataset_infos.json
# --------------------------------------------------------------------------


def test_project_dataset_infos_has_not_drifted_from_the_builder():
    on_disk = json.loads((REPO_ROOT / "dataset_infos.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(project_infos())), (
        "dataset_infos.json is out of date: run scripts/write_dataset_infos.py"
    )


def test_project_dataset_infos_describes_all_eight_configs(builder_features):
    on_disk = json.loads((REPO_ROOT / "dataset_infos.json").read_text(encoding="utf-8"))
    assert sorted(on_disk) == sorted(ALL_CONFIGS)
    for name, entry in on_disk.items():
        info = DatasetInfo.from_dict(entry)
        assert info.description == CONFIGS[name].description
        assert info.features == builder_features[name], name
        assert info.homepage == (SVIT_HOMEPAGE if name in SVIT_CONFIGS else SA1B_CAPTION_HOMEPAGE)
        assert info.citation == (SVIT_CITATION if name in SVIT_CONFIGS else SA1B_CITATION)
        assert ("CC BY 4.0" in info.license) == (name in SVIT_CONFIGS), name
        assert ("MIT" in info.license and "SA-1B" in info.license) == (name in SA1B_CONFIGS), name


# --------------------------------------------------------------------------
# Layout facts come from the build, not from literals
# --------------------------------------------------------------------------


def test_body_states_the_layout_the_shards_were_written_with(tmp_path_factory, card):
    assert "row groups of at most 100 rows" in card.text  # the default
    other = sample_build(tmp_path_factory, "--configs", "sa1b-en-single", "--rows-per-row-group", "2")
    text = DatasetCard.load(other / "README.md").text
    assert "row groups of at most 2 rows" in text and "at most 100 rows" not in text
    metadata = [pq.ParquetFile(path).metadata for path in shard_paths(other, "sa1b-en-single")]
    rows_per_group = [meta.row_group(i).num_rows for meta in metadata for i in range(meta.num_row_groups)]
    assert max(rows_per_group) == 2  # the card says what the shards hold


def test_body_names_the_helpers_where_the_package_has_them(card):
    import importlib

    named = set(re.findall(r"`(svitpipe(?:\.\w+)+)`", card.text)) | set(re.findall(r"\(`(svitpipe(?:\.\w+)+)", card.text))
    assert named, "the card names no helper"
    for dotted in named:
        module, _, attribute = dotted.rpartition(".")
        try:
            importlib.import_module(dotted)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attribute), f"the card names {dotted}, which does not exist"
