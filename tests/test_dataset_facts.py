"""What ``datasets`` hands back about each config of a built folder, pinned as it is today, and
``svitpipe.dataset_facts``, which holds what it does not.

``datasets`` 5.2 (``load.py``, ``LocalDatasetModuleFactory.get_module``) reads ``dataset_infos.json`` and then
``legacy_dataset_infos.update(dataset_infos)`` with the infos of the card's YAML ``dataset_info``: each config's
YAML entry replaces its JSON entry whole. The card writes those entries as ``datasets`` itself does
(``DatasetInfo._INCLUDED_INFO_IN_YAML``: config name, features, splits, sizes) and as the Hub's card spec defines
them, so description, citation, homepage and licence come back empty. When a release changes this, the first test
fails: read what it returns then, and drop the workaround it makes unneeded.
"""

from __future__ import annotations

import dataclasses
import json

import datasets
import pytest
from huggingface_hub import DatasetCard

import svitpipe
from publish_fixtures import ALL_CONFIGS, copy_published, sample_build
from svitpipe.features import (
    CONFIGS,
    SA1B_CAPTION_HOMEPAGE,
    SA1B_CITATION,
    SA1B_LICENSE,
    SVIT_CITATION,
    SVIT_HOMEPAGE,
    SVIT_LICENSE,
    config_info,
    features_for,
)

TEXTS = ("description", "citation", "homepage", "license")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sample_build(tmp_path_factory)


@pytest.fixture(autouse=True, scope="module")
def fresh_datasets_cache(tmp_path_factory):
    """What a user who never loaded the folder gets: once another test has prepared it with ``load_dataset``,
    ``datasets`` answers from that cache (sizes it measured itself), not from the card."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("facts-cache"))
        yield


def card_entries(folder):
    return {entry["config_name"]: entry for entry in DatasetCard.load(folder / "README.md").data["dataset_info"]}


def info_dict(info: datasets.DatasetInfo) -> dict:
    """Every field of a ``DatasetInfo``, features, splits and version as plain values."""
    values = {field.name: getattr(info, field.name) for field in dataclasses.fields(info)}
    values["features"] = info.features.to_dict()
    values["splits"] = {name: dataclasses.asdict(split) for name, split in info.splits.items()}
    values["version"] = str(info.version)
    return values


def expected_info_dict(folder, config):
    """Everything ``datasets`` 5.2 returns for ``config`` of a built folder: the card's YAML entry (features, splits,
    sizes), the Parquet builder's name, the folder's name, and nothing else."""
    entry = card_entries(folder)[config]
    return {
        "description": "",
        "citation": "",
        "homepage": "",
        "license": "",
        "features": features_for(config).to_dict(),
        "post_processed": None,
        "supervised_keys": None,
        "builder_name": "parquet",
        "dataset_name": folder.name,
        "config_name": config,
        "version": "0.0.0",
        "splits": {
            "train": {
                "name": "train",
                "num_bytes": entry["splits"][0]["num_bytes"],
                "num_examples": entry["splits"][0]["num_examples"],
                "shard_lengths": None,
                "original_shard_lengths": None,
                "dataset_name": None,
            }
        },
        "download_checksums": None,
        "download_size": entry["download_size"],
        "post_processing_size": None,
        "dataset_size": entry["dataset_size"],
        "size_in_bytes": None,
    }


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_what_load_dataset_builder_returns_today(built, config):
    info = datasets.load_dataset_builder(str(built), config).info
    assert info_dict(info) == expected_info_dict(built, config)
    # the texts are in the folder's dataset_infos.json, and lost on the way
    on_disk = json.loads((built / "dataset_infos.json").read_text(encoding="utf-8"))[config]
    assert {key: on_disk[key] for key in TEXTS} == {key: svitpipe.dataset_facts(config)[key] for key in TEXTS}
    assert all(on_disk[key] for key in TEXTS)


def test_what_get_dataset_infos_returns_today(built):
    infos = datasets.get_dataset_infos(str(built))
    assert sorted(infos) == sorted(ALL_CONFIGS)
    for config, info in infos.items():
        assert info_dict(info) == expected_info_dict(built, config), config


def test_a_stream_has_the_same_empty_texts(built):
    stream = datasets.load_dataset(str(built), "referring", split="train", streaming=True)
    assert {key: getattr(stream.info, key) for key in TEXTS} == dict.fromkeys(TEXTS, "")
    assert stream.info.features == features_for("referring")


def test_the_card_yaml_carries_what_the_hub_reads(built):
    data = DatasetCard.load(built / "README.md").data
    assert data["license"] == ["cc-by-4.0", "mit", "other"]
    assert data["license_name"] == "sa-1b-dataset-research-license"
    assert data["pretty_name"] == "SVIT and InternVL-SA-1B-Caption"
    for entry in data["dataset_info"]:  # as datasets writes them: no texts
        assert sorted(entry) == ["config_name", "dataset_size", "download_size", "features", "splits"]


def test_datasets_would_read_texts_in_the_yaml_entries(built, tmp_path):
    # Why the card leaves them out is a choice, not a limit of datasets: DatasetInfo._from_yaml_dict keeps every
    # DatasetInfo field it finds. The Hub's card spec does not define them in dataset_info, and datasets' own card
    # writer (to_dataset_card_data, push_to_hub) rewrites an entry with features, splits and sizes only.
    folder = copy_published(built, tmp_path / "copy")
    card = DatasetCard.load(folder / "README.md")
    for entry in card.data["dataset_info"]:
        entry.update({key: svitpipe.dataset_facts(entry["config_name"])[key] for key in TEXTS})
    card.save(folder / "README.md")
    info = datasets.load_dataset_builder(str(folder), "sa1b-en-multi").info
    assert {key: getattr(info, key) for key in TEXTS} == {
        "description": CONFIGS["sa1b-en-multi"].description,
        "citation": SA1B_CITATION,
        "homepage": SA1B_CAPTION_HOMEPAGE,
        "license": SA1B_LICENSE,
    }


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_dataset_facts(config):
    facts = svitpipe.dataset_facts(config)
    svit = CONFIGS[config].family == "svit"
    assert facts == {
        "config_name": config,
        "description": CONFIGS[config].description,
        "license": SVIT_LICENSE if svit else SA1B_LICENSE,
        "citation": SVIT_CITATION if svit else SA1B_CITATION,
        "homepage": SVIT_HOMEPAGE if svit else SA1B_CAPTION_HOMEPAGE,
        "features": features_for(config),
    }
    info = config_info(config)
    assert {key: getattr(info, key) for key in (*TEXTS, "features")} == {
        key: facts[key] for key in (*TEXTS, "features")
    }


def test_dataset_facts_of_an_unknown_config():
    with pytest.raises(ValueError, match="unknown config 'nope'"):
        svitpipe.dataset_facts("nope")
