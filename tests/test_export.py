"""Tests for svitpipe.training.export: every config of the sample in the formats LLaVA-v1.5, LLaVA-NeXT/OneVision
and InternVL read, each line checked with the rules those trainers' loaders apply; refusals; atomic output.

The loader rules checked (from the trainers' dataset code):

* LLaVA-v1.5 ``train.py``: ``os.path.join(image_folder, record["image"])``, so ``image`` is one string; the first
  human turn holds one ``<image>``.
* LLaVA-NeXT ``train.py`` (OneVision): ``type(record["image"]) is list`` selects the multi-image path, each item
  joined onto the image folder; ``<image>`` once per image.
* InternVL ``internvl_chat_finetune.py``: the meta JSON's ``annotation`` must end in ``jsonl`` and is read line by
  line (``json.loads``); a list ``image`` is multi-image, each ``os.path.join(root, path)``, with one ``<image>``
  per image; a string ``image`` is one image (the loader prepends ``<image>\\n`` when the first turn lacks it, so
  exactly one is written); turns alternate human, gpt.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from PIL import Image

from conftest import ALL_CONFIGS, SA1B_CONFIGS, SVIT_CONFIGS, undecoded_stream
from publish_fixtures import sample_build
from svitpipe import cli
from svitpipe.features import CONFIGS
from svitpipe.training.boxes import render_internvl_referring_text, to_thousandths
from svitpipe.training.export import FORMATS, annotation_name, export, main

REPO_ROOT = Path(__file__).resolve().parent.parent
MULTI_CONFIGS = [name for name in ALL_CONFIGS if CONFIGS[name].multi_image]
SINGLE_CONFIGS = [name for name in ALL_CONFIGS if not CONFIGS[name].multi_image]




def rows_of(builders, config_name):
    return list(undecoded_stream(builders(config_name)))


def stored_images(rows, config_name):
    """``{path: bytes}`` of the rows' images."""
    images = {}
    for row in rows:
        if CONFIGS[config_name].family == "svit":
            images[row["image"]["path"]] = row["image"]["bytes"]
        elif CONFIGS[config_name].multi_image:
            images.update({path: image["bytes"] for path, image in zip(row["image_paths"], row["images"])})
        else:
            images[row["image_path"]] = row["image"]["bytes"]
    return images


def expected_record_count(rows, config_name):
    if CONFIGS[config_name].family == "svit":
        return sum(len(row["conversations"]) for row in rows)
    return len(rows)


def files_under(root):
    return {
        os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
        for folder, _, names in os.walk(root) for name in names
    }


# --------------------------------------------------------------------------
# What the trainers' loaders accept
# --------------------------------------------------------------------------


def check_turns(conversations, where):
    assert isinstance(conversations, list) and conversations, where
    for index, turn in enumerate(conversations):
        assert set(turn) == {"from", "value"}, where
        assert turn["from"] == ("human" if index % 2 == 0 else "gpt"), (where, index)
        assert isinstance(turn["value"], str), where


def placeholders(conversations):
    return sum(turn["value"].count("<image>") for turn in conversations)


def check_internvl_export(out, config_name):
    """Every rule above for ``out``'s InternVL files; returns the records."""
    meta = json.loads((out / f"{config_name}.meta.json").read_text(encoding="utf-8"))
    assert list(meta) == [config_name]
    entry = meta[config_name]
    assert set(entry) == {"root", "annotation", "data_augment", "repeat_time", "length"}
    assert entry["annotation"].endswith("jsonl") and os.path.isabs(entry["annotation"])
    assert entry["data_augment"] is False and entry["repeat_time"] == 1
    assert Path(entry["root"]) == (out / "images").resolve()
    with open(entry["annotation"], encoding="utf-8") as file:
        lines = file.readlines()
    assert entry["length"] == len(lines) > 0
    records = []
    for number, line in enumerate(lines):
        record = json.loads(line)
        where = f"line {number}: {record.get('id')}"
        assert isinstance(record["id"], str), where
        check_turns(record["conversations"], where)
        if isinstance(record["image"], list):
            assert set(record) == {"id", "image", "conversations", "width_list", "height_list"}, where
            paths, sizes = record["image"], list(zip(record["width_list"], record["height_list"]))
            assert len(paths) > 1
        else:
            assert set(record) == {"id", "image", "conversations", "width", "height"}, where
            paths, sizes = [record["image"]], [(record["width"], record["height"])]
        assert placeholders(record["conversations"]) == len(paths), where
        assert record["conversations"][0]["value"].count("<image>") == len(paths), where
        for path, size in zip(paths, sizes):
            with Image.open(os.path.join(entry["root"], path)) as image:
                assert image.size == size, (where, path)
        records.append(record)
    assert not list(out.glob("*.partial"))
    return records


def check_llava_export(out, config_name, format_name):
    records = json.loads((out / f"{config_name}.json").read_text(encoding="utf-8"))
    for record in records:
        where = record["id"]
        assert set(record) == {"id", "image", "conversations"}, where
        check_turns(record["conversations"], where)
        if type(record["image"]) is list:
            assert format_name == "llava-onevision" and CONFIGS[config_name].multi_image, where
            paths = record["image"]
        else:
            assert isinstance(record["image"], str), where
            paths = [record["image"]]
        assert placeholders(record["conversations"]) == len(paths), where
        for path in paths:
            assert os.path.isfile(os.path.join(out / "images", path)), (where, path)
    assert not list(out.glob("*.partial"))
    return records


# --------------------------------------------------------------------------
# Every config, every format that holds it
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_internvl_export_of_every_config(builders, tmp_path, config_name):
    rows = rows_of(builders, config_name)
    counts = export(undecoded_stream(builders(config_name)), str(tmp_path), config_name, "internvl", progress=False)
    records = check_internvl_export(tmp_path, config_name)
    images = stored_images(rows, config_name)
    assert counts["rows"] == len(rows) and counts["records"] == len(records) == expected_record_count(rows, config_name)
    assert counts["images_written"] == len(images) and files_under(tmp_path / "images") == set(images)
    for path, data in images.items():
        assert (tmp_path / "images" / path).read_bytes() == data  # original bytes
    if config_name in MULTI_CONFIGS:
        assert all(isinstance(record["image"], list) for record in records)


def test_internvl_referring_boxes_are_ref_box_markup_in_thousandths(builders, tmp_path):
    rows = rows_of(builders, "referring")
    export(rows, str(tmp_path), "referring", "internvl", progress=False)
    records = {record["id"]: record for record in check_internvl_export(tmp_path, "referring")}
    markup = re.compile(r"<ref>([^<]*)</ref><box>\[(\[-?\d+, -?\d+, -?\d+, -?\d+\](?:, \[-?\d+, -?\d+, -?\d+, -?\d+\])*)\]</box>")
    references = 0
    for row in rows:
        record = records[row["id"] if len(row["conversations"]) == 1 else f"{row['id']}-c0"]
        for index, (turn, written) in enumerate(zip(row["conversations"][0]["content"], record["conversations"])):
            value = written["value"].removeprefix("<image>\n") if index == 0 else written["value"]
            assert value == render_internvl_referring_text(turn["value"], turn["regions"])
            found = markup.findall(value)
            assert [phrase for phrase, _ in found] == [region["phrase"] for region in turn["regions"]]
            for (_, boxes), region in zip(found, turn["regions"]):
                assert json.loads(f"[{boxes}]") == [list(to_thousandths(box)) for box in region["boxes"]]
                references += 1
            assert "<st>" not in value or turn["reference_issues"], value  # only unparsed references stay as written
    assert references > 0


@pytest.mark.parametrize("config_name", MULTI_CONFIGS)
def test_llava_onevision_multi_image_export(builders, tmp_path, config_name):
    rows = rows_of(builders, config_name)
    counts = export(undecoded_stream(builders(config_name)), str(tmp_path), config_name, "llava-onevision", progress=False)
    records = check_llava_export(tmp_path, config_name, "llava-onevision")
    assert [record["image"] for record in records] == [row["image_paths"] for row in rows]
    assert all(type(record["image"]) is list and len(record["image"]) > 1 for record in records)
    assert counts["image_refs"] == sum(len(row["image_paths"]) for row in rows)


@pytest.mark.parametrize("config_name", SINGLE_CONFIGS)
@pytest.mark.parametrize("format_name", ["llava", "llava-onevision"])
def test_llava_single_image_export(builders, tmp_path, config_name, format_name):
    rows = rows_of(builders, config_name)
    export(rows, str(tmp_path), config_name, format_name, progress=False)
    records = check_llava_export(tmp_path, config_name, format_name)
    assert len(records) == expected_record_count(rows, config_name)
    assert all(isinstance(record["image"], str) for record in records)


@pytest.mark.parametrize("config_name", MULTI_CONFIGS)
def test_llava_v15_refuses_multi_image_configs(builders, tmp_path, capsys, config_name):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--format llava cannot hold .*several images.*--format llava-onevision"):
        export(undecoded_stream(builders(config_name)), str(out), config_name, "llava", progress=False)
    assert not out.exists()  # refused before anything is written
    with pytest.raises(SystemExit) as exited:
        main(["--format", "llava", "--data", str(tmp_path / "nowhere"), "--config", config_name, "--out", str(out)])
    assert exited.value.code == 2
    assert "llava-onevision" in capsys.readouterr().err and not out.exists()


def test_reference_mode_rows_are_refused(builders, tmp_path):
    row = rows_of(builders, "sa1b-en-single")[0]
    reference = {key: value for key, value in row.items() if key != "image"}
    reference["image_ref"] = "sa_000000.tar/" + row["image_path"].split("/")[-1]
    for rows in ([reference], datasets.Dataset.from_list([reference])):
        with pytest.raises(ValueError, match="reference mode.*svitpipe.sa1b.attach_images"):
            export(rows, str(tmp_path), "sa1b-en-single", "internvl", progress=False)
    assert not (tmp_path / "sa1b-en-single.jsonl").exists()


# --------------------------------------------------------------------------
# Images once, atomic output, progress
# --------------------------------------------------------------------------


def test_svit_configs_share_images_and_each_is_written_once(builders, tmp_path):
    first, second = stored_images(rows_of(builders, "referring"), "referring"), stored_images(
        rows_of(builders, "description"), "description")
    shared = set(first) & set(second)
    assert shared  # SVIT configs are about the same Visual Genome images
    assert all(first[path] == second[path] for path in shared)
    one = export(undecoded_stream(builders("referring")), str(tmp_path), "referring", "internvl", progress=False)
    two = export(undecoded_stream(builders("description")), str(tmp_path), "description", "internvl", progress=False)
    assert one["images_written"] == len(first)
    assert two["images_written"] == len(set(second) - set(first)) < two["image_refs"]
    assert files_under(tmp_path / "images") == set(first) | set(second)
    check_internvl_export(tmp_path, "referring")
    check_internvl_export(tmp_path, "description")


@pytest.mark.parametrize("format_name", list(FORMATS))
def test_a_failure_mid_way_leaves_no_complete_looking_file_and_a_rerun_finishes(builders, tmp_path, format_name):
    config_name = "sa1b-en-single" if format_name == "llava" else "sa1b-en-multi"
    rows = rows_of(builders, config_name)

    def failing():
        yield from rows[:2]
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        export(failing(), str(tmp_path), config_name, format_name, progress=False)
    left = {path for path in files_under(tmp_path) if not path.startswith("images/")}
    suffix = "jsonl" if format_name == "internvl" else "json"
    assert left == {f"{config_name}.{suffix}.partial"}  # no annotation, no meta under its real name
    assert not any(path.endswith(".partial") for path in files_under(tmp_path / "images"))
    counts = export(rows, str(tmp_path), config_name, format_name, progress=False)
    written_before = len(stored_images(rows[:2], config_name))
    assert counts["images_written"] == len(stored_images(rows, config_name)) - written_before
    if format_name == "internvl":
        check_internvl_export(tmp_path, config_name)
    else:
        check_llava_export(tmp_path, config_name, format_name)


_ENDLESS_EXPORT = """
import itertools, pickle, sys
from svitpipe.training.export import export
row = pickle.load(open(sys.argv[1], "rb"))
rows = ({**row, "id": f"row-{i}"} for i in itertools.count())
export(rows, sys.argv[2], "sa1b-en-single", sys.argv[3], progress=False)
"""


@pytest.mark.parametrize("format_name", ["llava", "internvl"])
def test_a_killed_export_leaves_no_complete_looking_file(builders, tmp_path, format_name):
    row_file = tmp_path / "row.pickle"
    row_file.write_bytes(pickle.dumps(rows_of(builders, "sa1b-en-single")[0]))
    out = tmp_path / "out"
    suffix = "jsonl" if format_name == "internvl" else "json"
    partial = out / f"sa1b-en-single.{suffix}.partial"
    process = subprocess.Popen(
        [sys.executable, "-c", _ENDLESS_EXPORT, str(row_file), str(out), format_name], cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        while not (partial.exists() and partial.stat().st_size > 100_000):
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert partial.exists()
    assert not (out / f"sa1b-en-single.{suffix}").exists()
    assert not (out / "sa1b-en-single.meta.json").exists()


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_annotation_file_is_written_incrementally(builders, tmp_path, format_name):
    # 2000 records (one image): by the time the last row is asked for, most of the file must be on disk already
    row = rows_of(builders, "description")[0]
    final = tmp_path / annotation_name("description", format_name)
    partial = tmp_path / f"{final.name}.partial"
    sizes = []

    def rows():
        for index in range(2000):
            if index in (1000, 1999):
                sizes.append(partial.stat().st_size if partial.exists() else 0)
            yield {**row, "id": str(index)}

    counts = export(rows(), str(tmp_path), "description", format_name, progress=False)
    final_size = final.stat().st_size
    assert counts["records"] == 2000 and counts["images_written"] == 1
    assert 0.4 * final_size < sizes[0] < sizes[1] and sizes[1] > 0.9 * final_size


def test_progress_bar_shows_rows_and_bytes(tmp_path_factory, tmp_path, capsys):
    folder = sample_build(tmp_path_factory)
    dataset = datasets.load_dataset(str(folder), "sa1b-en-multi", split="train", streaming=True)
    datasets.enable_progress_bars()
    try:
        counts = export(dataset, str(tmp_path), "sa1b-en-multi", "internvl")
    finally:
        datasets.disable_progress_bars()
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in shown if line.startswith("sa1b-en-multi -> internvl")][-1]
    assert f"{counts['rows']}/{counts['rows']} [" in last and "rows/s" in last  # the stream's info knows its rows
    assert re.search(r"\d+(\.\d+)?kB", last), last


# --------------------------------------------------------------------------
# The command, on a folder built by upload.py
# --------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "prepared"])
@pytest.mark.parametrize("config_name", ["referring", "sa1b-zh-multi"])
def test_command_exports_a_built_folder(tmp_path_factory, tmp_path, capsys, config_name, streaming):
    folder = sample_build(tmp_path_factory)
    out = tmp_path / "out"
    argv = ["export", "--format", "internvl", "--data", str(folder), "--config", config_name, "--out", str(out)]
    assert cli.main(argv + (["--streaming"] if streaming else [])) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = check_internvl_export(out, config_name)
    assert printed["records"] == len(records) and printed["format"] == "internvl"


def test_help_says_which_trainer_reads_which_format(capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for format_name in FORMATS:
        assert format_name in text
    for reader in ("LLaVA-v1.5", "LLaVA-NeXT", "InternVL", "refuses multi-image configs"):
        assert reader in text


@pytest.mark.parametrize("config_name", SVIT_CONFIGS + SA1B_CONFIGS[:1])
def test_former_llava_export_name_is_the_same_code_path(builders, tmp_path, config_name):
    from svitpipe.training import llava_export

    rows = rows_of(builders, config_name)
    llava_export.export_llava(rows, str(tmp_path / "a"), config_name)
    export(rows, str(tmp_path / "b"), config_name, "llava-onevision", progress=False)
    assert (tmp_path / "a" / f"{config_name}.json").read_bytes() == (tmp_path / "b" / f"{config_name}.json").read_bytes()
