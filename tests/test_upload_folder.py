"""``upload.py --sample --local-dir``: the folder it writes is what the builder yields, laid out for the Hub.

One sample build per session (``publish_fixtures.sample_build``) is read by most tests; the others build again with
other options and compare with it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import DatasetCard

import svitpipe.publish.units
from svitpipe.publish import engines
from publish_fixtures import (
    ALL_CONFIGS,
    PUBLISHED_TOP_LEVEL,
    SHARD_PATTERN,
    SVIT_CONFIGS,
    built_configs,
    copy_published,
    file_inode,
    folder_rows,
    published_files,
    run_upload,
    sample_build,
    sample_images,
    shard_paths,
    stored_rows,
    undecoded,
)
from svit_internvl import SVITInternVL
from svitpipe.features import CONFIGS, features_for
from svitpipe.publish.parquet_layout import ParquetLayout, image_bytes_columns, write_table
from svitpipe.sample import SAMPLE_SOURCES

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("datasets-cache"))


@pytest.fixture(scope="module")
def second_build(tmp_path_factory) -> Path:
    """The same command again, into another folder."""
    return run_upload(tmp_path_factory.mktemp("second-build") / "svit-internvl")


def builder_rows(config: str, cache_dir: str) -> list[dict]:
    """What the builder yields for ``config`` over the sample, images undecoded, as the schema stores it."""
    builder = SVITInternVL(config_name=config, cache_dir=cache_dir, **SAMPLE_SOURCES)
    return stored_rows(list(builder.as_streaming_dataset(split="train").decode(False)), config)


# --------------------------------------------------------------------------
# Parity: load_dataset(folder) gives exactly the builder's rows
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_load_dataset_gives_the_builders_rows(folder, cache_dir, config):
    expected = builder_rows(config, cache_dir)
    assert expected, f"the sample yields no {config} rows: nothing would be compared"
    assert len({row["id"] for row in expected}) == len(expected)

    loaded = datasets.load_dataset(str(folder), config, split="train", cache_dir=cache_dir)
    assert loaded.features == features_for(config)
    loaded = loaded.cast(undecoded(loaded.features))
    assert sorted(loaded, key=lambda row: row["id"]) == expected

    streamed = datasets.load_dataset(str(folder), config, split="train", streaming=True)
    assert streamed.features == features_for(config)
    assert sorted(streamed.decode(False), key=lambda row: row["id"]) == expected


def test_streaming_reads_one_shard_per_file(folder):
    for config in ALL_CONFIGS:
        streamed = datasets.load_dataset(str(folder), config, split="train", streaming=True)
        assert streamed.num_shards == len(shard_paths(folder, config)), config


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------


def test_folder_holds_only_card_infos_and_shards(folder):
    top_level = {name for name in os.listdir(folder) if name != ".cache"}
    assert top_level == PUBLISHED_TOP_LEVEL
    assert built_configs(folder) == sorted(ALL_CONFIGS)
    for relative in published_files(folder):
        assert relative in ("README.md", "dataset_infos.json") or re.fullmatch(
            rf"data/[a-z0-9-]+/{SHARD_PATTERN}", relative
        ), relative


def test_no_python_file_anywhere(folder):
    # datasets >= 4 refuses a repo holding <repo-name>.py; no script belongs in the folder at all, build state included.
    scripts = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names if name.endswith(".py")]
    assert scripts == []


def test_shard_names_are_numbered_and_counted(folder):
    for config in ALL_CONFIGS:
        names = [path.name for path in shard_paths(folder, config)]
        assert names, config
        count = len(names)
        assert names == [f"train-{index:05d}-of-{count:05d}.parquet" for index in range(count)], config


def test_row_groups_hold_at_most_100_rows(folder):
    for config in ALL_CONFIGS:
        for path in shard_paths(folder, config):
            metadata = pq.ParquetFile(path).metadata
            assert metadata.num_row_groups >= 1
            assert all(1 <= metadata.row_group(i).num_rows <= 100 for i in range(metadata.num_row_groups)), path


def test_column_codecs_encodings_and_page_index(folder):
    for config in ALL_CONFIGS:
        image_columns = image_bytes_columns(features_for(config))
        assert image_columns, config
        seen_image_columns = set()
        for path in shard_paths(folder, config):
            metadata = pq.ParquetFile(path).metadata
            for i in range(metadata.num_row_groups):
                group = metadata.row_group(i)
                for j in range(group.num_columns):
                    column = group.column(j)
                    where = f"{path.name} group {i} {column.path_in_schema}"
                    assert column.has_offset_index, where
                    if column.path_in_schema in image_columns:
                        seen_image_columns.add(column.path_in_schema)
                        assert column.compression == "UNCOMPRESSED", where
                        assert "PLAIN" in column.encodings, where
                        assert not {"RLE_DICTIONARY", "PLAIN_DICTIONARY"} & set(column.encodings), where
                        assert column.statistics is None or not column.statistics.has_min_max, where
                    else:
                        assert column.compression == "ZSTD", where
                        assert column.has_column_index, where
        assert seen_image_columns == image_columns, config


def test_file_metadata_declares_features_and_no_cdc(folder):
    """Content-defined chunking is off by default (it made Xet deduplicate image shards less, see
    ``benchmarks/bench_xet.py``); a file written with it declares its options."""
    for config in ALL_CONFIGS:
        for path in shard_paths(folder, config):
            key_values = pq.ParquetFile(path).metadata.metadata
            assert b"content_defined_chunking" not in key_values, path
            assert datasets.Features.from_arrow_schema(pq.read_schema(path)) == features_for(config), path


def test_content_defined_chunking_option_gives_the_same_rows(folder, tmp_path):
    chunked = run_upload(tmp_path / "cdc", "--content-defined-chunking", "--configs", "referring", "sa1b-en-single")
    for config in ("referring", "sa1b-en-single"):
        paths, plain = shard_paths(chunked, config), shard_paths(folder, config)
        assert [p.name for p in paths] == [p.name for p in plain]
        for path, plain_path in zip(paths, plain):
            assert b"content_defined_chunking" in pq.ParquetFile(path).metadata.metadata, path
            assert pq.read_table(path).equals(pq.read_table(plain_path)), path


def test_cdc_layout_declares_its_options(tmp_path):
    features = features_for("sa1b-en-single")
    rows = [{name: None for name in features} for _ in range(3)]
    for row, number in zip(rows, range(3)):
        row.update(id=str(number), image={"bytes": bytes(range(256)) * (number + 1), "path": f"sa_{number}.jpg"})
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    for cdc in (False, True):
        path = tmp_path / f"cdc-{cdc}.parquet"
        write_table(str(path), table, features, ParquetLayout(content_defined_chunking=cdc))
        key_values = pq.ParquetFile(path).metadata.metadata or {}
        if cdc:
            options = json.loads(key_values[b"content_defined_chunking"])
            assert options["min_chunk_size"] < options["max_chunk_size"]
        else:
            assert b"content_defined_chunking" not in key_values
        assert pq.read_table(path).equals(table)


def test_image_bytes_are_the_original_files(folder):
    originals = sample_images()
    checked = set()
    for config in ALL_CONFIGS:
        for row in folder_rows(folder, config):
            if config in SVIT_CONFIGS:
                pairs = [(row["image"], None)]
                name = row["image"]["path"]
                assert name in (f"VG_100K/{row['image_id']}.jpg", f"VG_100K_2/{row['image_id']}.jpg"), name
            elif "image" in row:
                pairs = [(row["image"], row["image_path"])]
            else:
                pairs = list(zip(row["images"], row["image_paths"], strict=True))
            for image, upstream_path in pairs:
                name = upstream_path or image["path"]
                assert image["path"] == name
                assert image["bytes"] == originals[name], f"{config} row {row['id']}: {name}"
                checked.add(name)
    assert checked == set(originals), "every sample image ends up in some config"


# --------------------------------------------------------------------------
# Determinism and resuming
# --------------------------------------------------------------------------


def test_second_build_is_byte_identical(folder, second_build):
    first, second = published_files(folder), published_files(second_build)
    assert len(first) > 2
    assert second == first


def test_rerun_into_the_same_folder_reuses_every_unit(second_build, monkeypatch):
    before = published_files(second_build)
    work = second_build / ".cache" / "svit-internvl-build"
    stats = [path for config in ALL_CONFIGS for path in sorted((work / config).glob("*.json"))]
    assert len(stats) >= len(ALL_CONFIGS), "no unit stats found under .cache/"
    stats_before = {path: (file_inode(path), path.read_bytes()) for path in stats}

    writers = []

    class CountingPartWriter(svitpipe.publish.units.PartWriter):
        def __init__(self, *args, **kwargs):
            writers.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(svitpipe.publish.units, "PartWriter", CountingPartWriter)
    run_upload(second_build)

    assert writers == [], "a finished unit was built again"
    # A rebuilt unit rewrites its stats with os.replace (a new inode); a reused one leaves them alone.
    assert {path: (file_inode(path), path.read_bytes()) for path in stats} == stats_before
    assert published_files(second_build) == before


SMALL_SHARDS = ["--max-shard-size", "25KB", "--rows-per-row-group", "1"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A fresh build with small shards and one row per row group."""
    return run_upload(tmp_path_factory.mktemp("small-shards") / "svit-internvl", *SMALL_SHARDS)


def test_smaller_max_shard_size_gives_more_shards_under_the_limit(folder, small):
    limit_bytes = convert_file_size_to_int(SMALL_SHARDS[1])

    counts = {config: len(shard_paths(small, config)) for config in ALL_CONFIGS}
    default_counts = {config: len(shard_paths(folder, config)) for config in ALL_CONFIGS}
    assert sum(counts.values()) > sum(default_counts.values())
    assert all(counts[config] >= default_counts[config] for config in ALL_CONFIGS), (counts, default_counts)

    multi_group = 0
    for config in ALL_CONFIGS:
        for path in shard_paths(small, config):
            metadata = pq.ParquetFile(path).metadata
            assert all(metadata.row_group(i).num_rows == 1 for i in range(metadata.num_row_groups)), path
            if metadata.num_row_groups > 1:
                multi_group += 1
                assert path.stat().st_size <= limit_bytes, f"{path}: {path.stat().st_size} bytes > {limit_bytes}"
        assert folder_rows(small, config) == folder_rows(folder, config), config
    assert multi_group >= 3, "the limit was never tested on a shard of several row groups"


def test_rebuilding_in_place_with_other_layout_gives_a_fresh_builds_files(folder, small, tmp_path):
    # Finished units of the earlier build must not be reused when the layout they were written with has changed.
    again = copy_published(folder, tmp_path / "again", with_build_state=True)
    run_upload(again, *SMALL_SHARDS)
    assert published_files(again) == published_files(small)


def test_rebuilding_in_place_from_other_sources_reads_them(folder, tmp_path):
    captions = tmp_path / "captions"
    shutil.copytree(SAMPLE_SOURCES["sa1b_captions_source"], captions)
    upstream = captions / CONFIGS["sa1b-zh-multi"].upstream_file
    lines = upstream.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["conversations"][-1]["value"] = "一个改过的标题。"
    lines[0] = json.dumps(record, ensure_ascii=False)
    upstream.write_text("\n".join(lines) + "\n", encoding="utf-8")

    again = copy_published(folder, tmp_path / "again", with_build_state=True)
    run_upload(again, "--configs", "sa1b-zh-multi", "--sa1b-captions-source", str(captions))
    captions_read = {row["id"]: row["caption"] for row in folder_rows(again, "sa1b-zh-multi")}
    assert captions_read["1"] == "一个改过的标题。"
    assert captions_read == {row["id"]: row["caption"] for row in folder_rows(folder, "sa1b-zh-multi")} | {
        "1": "一个改过的标题。"
    }


@pytest.mark.parametrize("start", ["fork", "forkserver", "chosen"])
def test_num_proc_2_gives_the_same_shards(folder, tmp_path, monkeypatch, start):
    """Workers forked from the run, started from a fork server, or as ``_worker_context`` chooses here."""
    if start != "chosen":
        if start == "fork" and not sys.platform.startswith("linux"):
            pytest.skip("workers are forked on Linux only")
        context = multiprocessing.get_context(start)
        if start == "forkserver":
            context.set_forkserver_preload([engines.__name__])
        monkeypatch.setattr(engines, "_worker_context", lambda: context)
    configs = ["referring"]  # sixteen units, finishing in any order across the two workers
    parallel = run_upload(tmp_path / "parallel", "--num-proc", "2", "--configs", *configs)
    parallel_files = published_files(parallel)
    serial_files = published_files(folder)
    shards = [path for path in parallel_files if path.startswith("data/")]
    assert {path.split("/")[1] for path in shards} == set(configs)
    assert len(shards) == len(shard_paths(folder, "referring")) >= 4
    for path in shards:
        assert parallel_files[path] == serial_files[path], path


def test_configs_subset_replaces_the_folder_contents(folder, tmp_path):
    subset = copy_published(folder, tmp_path / "subset", with_build_state=True)
    run_upload(subset, "--configs", "referring", "description")

    assert built_configs(subset) == ["description", "referring"]
    card = DatasetCard.load(subset / "README.md")
    assert sorted(entry["config_name"] for entry in card.data.configs) == ["description", "referring"]
    assert sorted(entry["config_name"] for entry in card.data.dataset_info) == ["description", "referring"]
    assert [entry["config_name"] for entry in card.data.configs if entry.get("default")] == ["referring"]
    assert sorted(json.loads((subset / "dataset_infos.json").read_text(encoding="utf-8"))) == ["description", "referring"]
    assert sorted(datasets.get_dataset_config_names(str(subset))) == ["description", "referring"]
    # SVIT only: the SA-1B licences and citation stay out of this card.
    assert "mit" not in card.data.license and "SA-1B Dataset Research License" not in card.text
    assert "sa1b-en-single" not in card.text

    subset_files, full_files = published_files(subset), published_files(folder)
    for path, digest in subset_files.items():
        if path.startswith("data/"):
            assert full_files[path] == digest, path
    assert {p for p in subset_files if p.startswith("data/")} == {
        p for p in full_files if p.startswith(("data/referring/", "data/description/"))
    }


@pytest.mark.parametrize("config", ALL_CONFIGS)
@pytest.mark.parametrize("rows_per_group", [1, 100])
def test_row_group_footer_bound_covers_the_real_footer(folder, config, rows_per_group):
    """The bound used to keep shards under the size limit, which never writes image bytes twice, is at least what a
    row group really adds to the footer."""
    from svitpipe.publish.parquet_layout import ParquetLayout, footer_bytes, row_group_footer_bound

    features, layout = features_for(config), ParquetLayout(rows_per_row_group=rows_per_group)
    table = pq.read_table(shard_paths(folder, config)[0]).slice(0, rows_per_group)
    fixed = footer_bytes(features, layout)
    exact = footer_bytes(features, layout, table) - fixed
    bound = row_group_footer_bound(features, layout, table, fixed)
    assert exact <= bound <= exact + 64 * 1024, (exact, bound)


ALLOCATION_ROUNDS = """
import resource, sys
from svitpipe.publish.allocator import keep_freed_memory
tuned = sys.argv[1] == "tuned" and keep_freed_memory(128 * 1000 * 1000)
def rounds():
    for _ in range(20):  # what a row group does: 32 MB of image bytes read into bytes objects, then freed
        blocks = [bytes(1 << 20) for _ in range(32)]
        del blocks
rounds()  # warm: the heap reaches its working size
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_tuned_build_process_reuses_freed_image_memory():
    """``keep_freed_memory`` (called by ``upload.main``): blocks of image bytes freed by one row group are reused by
    the next instead of being given back to the system and faulted in again."""
    faults = {}
    for mode in ("tuned", "default"):
        result = subprocess.run([sys.executable, "-c", ALLOCATION_ROUNDS, mode], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent.parent, check=True)
        tuned, count = map(int, result.stdout.split())
        faults[mode] = (tuned, count)
    if not faults["tuned"][0]:
        pytest.skip("the C library is not glibc")
    assert faults["tuned"][1] * 10 < faults["default"][1], faults
