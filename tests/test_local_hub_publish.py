"""The sample build, served by a local Hub-compatible server, loads through ``datasets``' real Hub code path.

One server and one client process for the module: the client loads every config with ``streaming=True`` (and two
of them without) from ``acme/svit-internvl`` and reports what it read; the tests compare that with the local folder.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from local_hub import run_with_hub, serve_dataset_repos
from publish_fixtures import ALL_CONFIGS, folder_rows, sample_build, shard_paths

REPO_ID = "acme/svit-internvl"
DOWNLOADED = ["referring", "sa1b-en-multi"]

CLIENT = r"""
import hashlib, json
import datasets
from datasets import Image, List

datasets.disable_progress_bars()
repo, configs, downloaded = json.loads(PARAMETERS)

def image_list(row):
    return row["images"] if "images" in row else [row["image"]]

def digest(rows):
    # (id, sha256 of every image's bytes) per row, sorted by id.
    return sorted([row["id"], [hashlib.sha256(image["bytes"]).hexdigest() for image in image_list(row)]] for row in rows)

out = {"configs": sorted(datasets.get_dataset_config_names(repo)), "streamed": {}, "downloaded": {}}
for config in configs:
    stream = datasets.load_dataset(repo, config, split="train", streaming=True)
    first = next(iter(stream))  # decoded: a PIL image whose size the row states
    decoded = image_list(first)[0]
    size = [first["width"], first["height"]] if "width" in first else [first["widths"][0], first["heights"][0]]
    out["streamed"][config] = {
        "n_shards": stream.num_shards,
        "rows": digest(stream.decode(False)),
        "first_image": [type(decoded).__name__, list(decoded.size), size],
        "features": str(stream.features),
    }
for config in downloaded:
    ds = datasets.load_dataset(repo, config, split="train")
    undecoded = ds.cast_column("image" if "image" in ds.features else "images",
                               Image(decode=False) if "image" in ds.features else List(Image(decode=False)))
    decoded = image_list(ds[0])[0]
    out["downloaded"][config] = {"num_rows": ds.num_rows, "rows": digest(undecoded),
                                 "first_image": [type(decoded).__name__, list(decoded.size)]}
print(json.dumps(out))
"""


def local_digest(folder, config: str) -> list:
    return sorted(
        [row["id"], [hashlib.sha256(image["bytes"]).hexdigest() for image in row.get("images") or [row["image"]]]]
        for row in folder_rows(folder, config)
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def hub_read(folder, tmp_path_factory) -> dict:
    parameters = json.dumps([REPO_ID, ALL_CONFIGS, DOWNLOADED])
    code = f"PARAMETERS = {parameters!r}\n{CLIENT}"
    with serve_dataset_repos({REPO_ID: folder}, tmp_path_factory.mktemp("hub")) as endpoint:
        stdout = run_with_hub(code, endpoint, timeout=240, cwd=str(tmp_path_factory.mktemp("client")))
    return json.loads(stdout.strip().splitlines()[-1])


def test_hub_lists_every_config(hub_read):
    assert hub_read["configs"] == sorted(ALL_CONFIGS)


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_streaming_from_the_hub_gives_the_folder_rows(hub_read, folder, config):
    read = hub_read["streamed"][config]
    expected = local_digest(folder, config)
    assert expected
    assert read["rows"] == expected
    assert read["n_shards"] == len(shard_paths(folder, config))
    kind, size, stated = read["first_image"]
    assert kind.endswith("ImageFile") and size == stated


@pytest.mark.parametrize("config", DOWNLOADED)
def test_downloading_from_the_hub_gives_the_folder_rows(hub_read, folder, config):
    read = hub_read["downloaded"][config]
    expected = local_digest(folder, config)
    assert read["num_rows"] == len(expected)
    assert read["rows"] == expected
    assert read["first_image"][0].endswith("ImageFile")
