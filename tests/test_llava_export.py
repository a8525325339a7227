"""Tests for svitpipe.training.llava_export: LLaVA JSON plus image files from sample-built configs, streams and Parquet folders."""

import json
import os

import pytest

from conftest import ALL_CONFIGS, prepare, undecoded_stream
from svitpipe.features import CONFIGS
from svitpipe.training.chat_format import flatten_svit, to_llava_record
from svitpipe.training.llava_export import export_llava, iter_undecoded_rows, main, safe_image_path




def images_of(row, config_name):
    """``{path: bytes}`` of a row's images, as the export should write them."""
    if CONFIGS[config_name].family == "svit":
        return {row["image"]["path"]: row["image"]["bytes"]}
    if CONFIGS[config_name].multi_image:
        return {path: image["bytes"] for path, image in zip(row["image_paths"], row["images"])}
    return {row["image_path"]: row["image"]["bytes"]}


def expected_records(rows, config_name):
    """What the export should write: SVIT rows with several conversations as one record per conversation."""
    records = []
    for row in rows:
        if CONFIGS[config_name].family == "svit" and len(row["conversations"]) > 1:
            flat = flatten_svit({name: [value] for name, value in row.items()}, per="conversation")
            pieces = [{name: flat[name][i] for name in flat} for i in range(len(flat["id"]))]
        else:
            pieces = [row]
        records.extend(to_llava_record(piece, config_name) for piece in pieces)
    return records


def files_under(root):
    return {
        os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
        for folder, _, names in os.walk(root) for name in names
    }


def check_export(out, config_name, rows, counts):
    with open(out / f"{config_name}.json", encoding="utf-8") as file:
        records = json.load(file)
    assert records == expected_records(rows, config_name)
    images = {}
    for row in rows:
        images.update(images_of(row, config_name))
    assert files_under(out / "images") == set(images)
    for path, data in images.items():
        assert (out / "images" / path).read_bytes() == data
    refs = sum(len(r["image"]) if isinstance(r["image"], list) else 1 for r in records)
    assert counts == {"rows": len(rows), "records": len(records), "image_refs": refs, "images_written": len(images)}
    assert not (out / f"{config_name}.json.partial").exists()
    return records


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_export_sample_config(builders, tmp_path, config_name):
    rows = list(undecoded_stream(builders(config_name)))
    counts = export_llava(undecoded_stream(builders(config_name)), str(tmp_path), config_name)
    records = check_export(tmp_path, config_name, rows, counts)
    assert len(records) >= len(rows) > 0
    if config_name == "conversation":
        assert len(records) == 23 > len(rows) == 10  # every conversation kept (sample/README.md)
    if config_name == "sa1b-en-multi":
        assert counts["image_refs"] == counts["images_written"] == 12


def test_export_a_filtered_stream(builders, tmp_path):
    all_rows = list(undecoded_stream(builders("referring")))
    selected = undecoded_stream(builders("referring")).filter(lambda row: row["image_id"] % 2 == 0)
    counts = export_llava(selected, str(tmp_path), "referring")
    chosen = [row for row in all_rows if row["image_id"] % 2 == 0]
    assert 0 < len(chosen) < len(all_rows)
    records = check_export(tmp_path, "referring", chosen, counts)
    assert [record["id"] for record in records] == [row["id"] for row in chosen]


def test_export_from_a_prepared_dataset_matches_the_stream(builders, tmp_path):
    dataset = prepare(builders("sa1b-zh-multi"))
    counts = export_llava(iter_undecoded_rows(dataset), str(tmp_path / "a"), "sa1b-zh-multi")
    check_export(tmp_path / "a", "sa1b-zh-multi", list(undecoded_stream(builders("sa1b-zh-multi"))), counts)


@pytest.mark.parametrize("kind", ["Dataset", "IterableDataset"])
def test_export_takes_datasets_with_decoding_on(builders, tmp_path, kind):
    builder = builders("reasoning")
    dataset = prepare(builder) if kind == "Dataset" else builder.as_streaming_dataset(split="train")
    assert dataset.features["image"].decode
    counts = export_llava(dataset, str(tmp_path), "reasoning")
    check_export(tmp_path, "reasoning", list(undecoded_stream(builder)), counts)


@pytest.mark.parametrize("config_name,limit,records", [
    ("referring", 3, 3),
    ("referring", 0, 0),
    ("referring", 1000, 9),
    ("conversation", 3, 3),  # stops inside the second image's conversations
])
def test_limit_counts_records(builders, tmp_path, config_name, limit, records):
    counts = export_llava(undecoded_stream(builders(config_name)), str(tmp_path), config_name, limit=limit)
    with open(tmp_path / f"{config_name}.json", encoding="utf-8") as file:
        written = json.load(file)
    assert counts["records"] == len(written) == records
    assert written == expected_records(list(undecoded_stream(builders(config_name))), config_name)[:records]
    assert files_under(tmp_path / "images") == {
        r["image"] for r in written
    }


def test_a_failed_export_leaves_no_json(builders, tmp_path):
    def rows_then_decoded_image():
        rows = iter(undecoded_stream(builders("referring")))
        yield next(rows)
        yield {**next(rows), "image": object()}

    with pytest.raises(ValueError, match="Image\\(decode=False\\)"):
        export_llava(rows_then_decoded_image(), str(tmp_path), "referring")
    assert not (tmp_path / "referring.json").exists()


def test_same_path_with_other_bytes_is_an_error(builders, tmp_path):
    row = next(iter(undecoded_stream(builders("description"))))
    twin = {**row, "id": "twin", "image": {**row["image"], "bytes": row["image"]["bytes"] + b"x"}}
    with pytest.raises(ValueError, match="different bytes"):
        export_llava([row, twin], str(tmp_path), "description")


def test_same_path_twice_is_written_once(builders, tmp_path):
    row = next(iter(undecoded_stream(builders("description"))))
    counts = export_llava([row, {**row, "id": "again"}], str(tmp_path), "description")
    assert counts == {"rows": 2, "records": 2, "image_refs": 2, "images_written": 1}


@pytest.mark.parametrize("path", ["../x.jpg", "/etc/x.jpg", "a/../../x.jpg", "a//b.jpg", "./a.jpg", "", "a\\b.jpg"])
def test_unsafe_image_paths_are_refused(path):
    with pytest.raises(ValueError, match="not a plain relative path"):
        safe_image_path(path)


@pytest.mark.parametrize("path", ["VG_100K/1.jpg", "sa_000000/sa_2.jpg", "x.jpg"])
def test_plain_image_paths_are_accepted(path):
    assert str(safe_image_path(path)) == path


def _parquet_folder(builder, config_name, root):
    """A Hub-style folder (``data/<config>/*.parquet`` and a card declaring the config) without ``upload.py``."""
    dataset = prepare(builder)
    (root / "data" / config_name).mkdir(parents=True)
    dataset.to_parquet(str(root / "data" / config_name / "train-00000-of-00001.parquet"))
    (root / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config_name}\n  data_files:\n  - split: train\n"
        f"    path: data/{config_name}/*.parquet\n---\n"
    )
    return dataset


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "prepared"])
@pytest.mark.parametrize("config_name,limit", [("conversation", None), ("sa1b-en-single", 5)])
def test_cli(builders, tmp_path, capsys, config_name, limit, streaming):
    _parquet_folder(builders(config_name), config_name, tmp_path / "hub")
    argv = ["--data", str(tmp_path / "hub"), "--config", config_name, "--out", str(tmp_path / "out")]
    argv += ["--streaming"] if streaming else []
    argv += ["--limit", str(limit)] if limit else []
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = list(undecoded_stream(builders(config_name)))
    with open(tmp_path / "out" / f"{config_name}.json", encoding="utf-8") as file:
        records = json.load(file)
    expected = expected_records(rows, config_name)
    assert records == expected[:limit]
    assert printed["records"] == len(records)
    by_path = {}
    for row in rows:
        by_path.update(images_of(row, config_name))
    assert files_under(tmp_path / "out" / "images") == {r["image"] for r in records}
    for path in files_under(tmp_path / "out" / "images"):
        assert (tmp_path / "out" / "images" / path).read_bytes() == by_path[path]
