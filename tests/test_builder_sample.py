"""The builder over the bundled sample: all 8 configs, streaming and prepared, checked against the upstream files.

Expected values come from the sample's files themselves (JSON arrays in the zips, jsonl lines, zip and tar members),
read here without the builder's code.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from datasets import Features, Image, List, Value
from datasets.distributed import split_dataset_by_node
from PIL import Image as PILImage

from conftest import (
    ALL_CONFIGS,
    SA1B_CONFIGS,
    SA1B_SAMPLE,
    SVIT_CONFIGS,
    SVIT_SAMPLE,
    arrow_rows,
    as_float32,
    by_id,
    jpeg_size,
    new_builder,
    prepare,
    sample_caption_lines,
    sample_svit_records,
    sample_svit_rows,
    sample_tar_members,
    sample_vg_images,
    stream_rows,
)
from svitpipe.bad_records import BadRecordLedger
from svitpipe.builder import iter_examples
from svitpipe.features import CONFIGS


@dataclass
class Built:
    """One config built both ways from the sample, by two separate builders."""

    streamed: list
    stream_builder: object
    prepared: list
    dataset: object
    prepare_builder: object


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = {}

    def get(config_name: str) -> Built:
        if config_name not in cache:
            stream_builder = new_builder(tmp_path_factory.mktemp("stream"), config_name)
            streamed = stream_rows(stream_builder)
            prepare_builder = new_builder(tmp_path_factory.mktemp("prepared"), config_name)
            dataset = prepare(prepare_builder)
            cache[config_name] = Built(streamed, stream_builder, arrow_rows(dataset), dataset, prepare_builder)
        return cache[config_name]

    return get


def expected_count(config_name: str) -> int:
    """Rows the sample's upstream file promises: one per SVIT image (its records merged), one per caption line."""
    if CONFIGS[config_name].family == "svit":
        return len(sample_svit_rows(config_name))
    return len(sample_caption_lines(config_name))


def images_of(row: dict) -> list[dict]:
    return row["images"] if "images" in row else [row["image"]]


# --------------------------------------------------------------------------
# Counts, ids, both modes agree
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_row_counts_match_the_upstream_files(built, config_name):
    result = built(config_name)
    expected = expected_count(config_name)
    assert expected > 0
    assert len(result.streamed) == expected
    assert len(result.prepared) == expected == result.dataset.num_rows
    records = len(sample_svit_records(config_name)) if CONFIGS[config_name].family == "svit" else expected
    for builder in (result.stream_builder, result.prepare_builder):
        ledger = builder.ledger
        assert (ledger.records_read, ledger.examples_written, ledger.total_skipped) == (records, expected, 0)
        assert ledger.is_balanced()  # a second record of one image is merged into its row
    assert result.prepare_builder.info.splits["train"].num_examples == expected


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_ids_are_unique(built, config_name):
    result = built(config_name)
    for rows in (result.streamed, result.prepared):
        ids = [row["id"] for row in rows]
        assert len(set(ids)) == len(ids)
        assert all(isinstance(i, str) and i for i in ids)


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_streaming_rows_equal_prepared_rows(built, config_name):
    result = built(config_name)
    streamed, prepared = by_id(result.streamed), by_id(result.prepared)
    assert sorted(streamed) == sorted(prepared)
    for row_id, row in prepared.items():
        # Arrow stores boxes as float32; everything else, image bytes included, must be identical.
        assert as_float32(streamed[row_id]) == row, row_id
        for streamed_image, prepared_image in zip(images_of(streamed[row_id]), images_of(row), strict=True):
            assert streamed_image["bytes"] == prepared_image["bytes"]


# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

NULLABLE = {"topic", "source_id", "upstream_extra", "caption"}


def check_value(feature, value, where: str) -> None:
    """``value`` has exactly the shape and types of ``feature``; only ``NULLABLE`` fields may be None."""
    name = where.rsplit(".", 1)[-1]
    if value is None:
        assert name in NULLABLE, f"{where} is None"
        return
    if isinstance(feature, (dict, Features)):
        assert isinstance(value, dict) and set(value) == set(feature), (where, sorted(value), sorted(feature))
        for key, sub in feature.items():
            check_value(sub, value[key], f"{where}.{key}")
    elif isinstance(feature, List):
        assert isinstance(value, list), where
        if feature.length != -1:
            assert len(value) == feature.length, where
        for i, item in enumerate(value):
            check_value(feature.feature, item, f"{where}[{i}]")
    elif isinstance(feature, Image):
        assert set(value) == {"bytes", "path"} and isinstance(value["bytes"], bytes) and value["bytes"], where
        assert isinstance(value["path"], str), where
    elif isinstance(feature, Value):
        if feature.dtype == "string":
            assert isinstance(value, str), where
        elif feature.dtype.startswith("int"):
            assert isinstance(value, int) and not isinstance(value, bool), where
            bits = int(feature.dtype[3:])
            assert -(2 ** (bits - 1)) <= value < 2 ** (bits - 1), where
        elif feature.dtype.startswith("float"):
            assert isinstance(value, float), where
        else:
            raise AssertionError(f"unexpected dtype {feature.dtype} at {where}")
    else:
        raise AssertionError(f"unexpected feature {feature!r} at {where}")


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_declared_features_match_rows(built, config_name):
    result = built(config_name)
    features = result.prepare_builder.info.features
    assert features is not None
    assert result.dataset.features == features
    assert result.stream_builder.info.features == features
    assert result.dataset.data.schema.remove_metadata() == features.arrow_schema.remove_metadata()
    encoded = []
    for row in result.streamed:
        check_value(features, row, "row")
        encoded.append(features.encode_example(row))
    # The encoded rows convert to the declared Arrow schema without any cast.
    table = pa.Table.from_pylist(encoded, schema=features.arrow_schema)
    assert table.num_rows == len(result.streamed)
    for row in result.prepared:
        check_value(features, row, "row")


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_examples_are_already_in_storage_form(sample_builder, config_name):
    """The generators yield examples exactly as the schema stores them, so shard writing can skip
    ``Features.encode_example`` (a deep walk of every nested conversation)."""
    builder = sample_builder(config_name)
    features = builder.info.features
    ledger = BadRecordLedger(policy="raise")
    examples = [example for kwargs in builder.shard_gen_kwargs() for _, _, example in iter_examples(builder.config, ledger, **kwargs)]
    assert examples and ledger.examples_written == len(examples)
    for example in examples:
        assert features.encode_example(example) == example
    pa.Table.from_pylist(examples, schema=features.arrow_schema)


# --------------------------------------------------------------------------
# Images: the original bytes, never re-encoded; sizes
# --------------------------------------------------------------------------


def original_images(config_name: str, row: dict) -> list[tuple[str, bytes]]:
    """``(path, bytes)`` of the row's image(s) as found in the sample's zips or tars."""
    if CONFIGS[config_name].family == "svit":
        return [sample_vg_images()[row["image_id"]]]
    members = sample_tar_members()
    paths = row["image_paths"] if "image_paths" in row else [row["image_path"]]
    return [(path, members[path]) for path in paths]


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_image_bytes_are_the_original_files(built, config_name):
    result = built(config_name)
    for rows in (result.streamed, result.prepared):
        for row in rows:
            originals = original_images(config_name, row)
            images = images_of(row)
            assert len(images) == len(originals)
            for image, (path, data) in zip(images, originals):
                assert image["path"] == path
                assert image["bytes"] == data


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_image_sizes(built, config_name):
    result = built(config_name)
    members = sample_tar_members()
    for row in result.prepared:
        if "images" in row:
            sizes = list(zip(row["widths"], row["heights"]))
        else:
            sizes = [(row["width"], row["height"])]
        originals = original_images(config_name, row)
        assert len(sizes) == len(originals) == len(images_of(row))
        for image, size, (path, data) in zip(images_of(row), sizes, originals):
            assert jpeg_size(image["bytes"]) == size == jpeg_size(data)
            if CONFIGS[config_name].family == "sa1b":
                # SA-1B's own per-image annotation header, an independent record of the size.
                header = json.loads(members[path.removesuffix(".jpg") + ".json"])["image"]
                assert (header["width"], header["height"]) == size
    # The prepared dataset decodes its images to the same sizes.
    for row in result.dataset:
        images = row["images"] if "images" in row else [row["image"]]
        sizes = list(zip(row["widths"], row["heights"])) if "images" in row else [(row["width"], row["height"])]
        assert [image.size for image in images] == sizes
        assert all(isinstance(image, PILImage.Image) for image in images)


# --------------------------------------------------------------------------
# SVIT text and regions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", SVIT_CONFIGS)
def test_svit_text_is_upstream_text(built, config_name):
    records = sample_svit_rows(config_name)
    result = built(config_name)
    for rows in (result.streamed, result.prepared):
        rows = by_id(rows)
        assert sorted(rows) == sorted(str(record["image_id"]) for record in records)
        for record in records:
            row = rows[str(record["image_id"])]
            assert row["image_id"] == record["image_id"]
            assert len(row["conversations"]) == len(record["conversations"])
            for conversation, upstream in zip(row["conversations"], record["conversations"]):
                turns = [(turn["from"], turn["value"]) for turn in conversation["content"]]
                assert turns == [(turn["from"], turn["value"]) for turn in upstream["content"]]
                for turn in conversation["content"]:
                    assert ("regions" in turn) == (config_name == "referring")
                if config_name == "conversation":
                    assert conversation["topic"] == upstream.get("topic")
                else:
                    assert "topic" not in conversation


def test_conversation_topics_present_and_absent(built):
    result = built("conversation")
    for rows in (result.streamed, result.prepared):
        topics = [conversation["topic"] for row in rows for conversation in row["conversations"]]
        upstream = [c.get("topic") for r in sample_svit_records("conversation") for c in r["conversations"]]
        assert sorted(topics, key=str) == sorted(upstream, key=str)
        assert None in topics and any(isinstance(topic, str) for topic in topics)


def test_detail_description_keeps_the_empty_message_apology(built):
    answers = [row["conversations"][0]["content"][1]["value"] for row in built("description").prepared]
    assert sum(answer.startswith("It seems like your message is empty") for answer in answers) == 1


# (image_id, conversation, turn) -> [(phrase, boxes)]; the turn's text is looked up in the upstream file.
HAND_PICKED_REGIONS = {
    # several boxes for one phrase
    (3, 0, 1): [("two cups", [(0.1, 0.5, 0.2, 0.7), (0.6, 0.5, 0.7, 0.7)])],
    # integer coordinates
    (3, 0, 2): [("the table", [(0.0, 0.25, 1.0, 0.9)])],
    # a phrase with commas
    (3, 0, 3): [("salt, pepper, and oil", [(0.38, 0.27, 0.62, 0.4)])],
    # "[OPEN]" after the box is text, not a region
    (1, 0, 1): [("The sign", [(0.62, 0.18, 0.8, 0.3)])],
    # irregular spacing inside the box
    (1, 0, 2): [("the umbrella", [(0.1, 0.2, 0.3, 0.4)])],
    # no references at all
    (1, 0, 6): [],
    (1, 0, 7): [],
    # no space between <ed> and the box; several references in one turn
    (2354786, 0, 1): [("The dog", [(0.2, 0.3, 0.5, 0.8)]), ("a red frisbee", [(0.38, 0.22, 0.5, 0.32)])],
    (2354786, 0, 5): [
        ("a person", [(0.82, 0.4, 0.92, 0.7)]),
        ("the bench", [(0.78, 0.5, 0.99, 0.75)]),
        ("the oak tree", [(0.75, 0.0, 1.0, 0.6)]),
    ],
    # two boxes, one integer coordinate
    (2412960, 0, 5): [("The cabinets", [(0.0, 0.55, 0.25, 1.0), (0.72, 0.55, 1.0, 1.0)])],
}


def f32(values) -> list:
    return [float(np.float32(v)) for v in values]


@pytest.mark.parametrize("mode", ["streamed", "prepared"])
def test_referring_regions_of_hand_picked_turns(built, mode):
    rows = by_id(getattr(built("referring"), mode))
    upstream = {record["image_id"]: record for record in sample_svit_records("referring")}
    for (image_id, conversation, turn_index), expected in HAND_PICKED_REGIONS.items():
        text = upstream[image_id]["conversations"][conversation]["content"][turn_index]["value"]
        turn = rows[str(image_id)]["conversations"][conversation]["content"][turn_index]
        assert turn["value"] == text
        assert [region["phrase"] for region in turn["regions"]] == [phrase for phrase, _ in expected]
        for region, (phrase, boxes) in zip(turn["regions"], expected):
            assert [f32(box) for box in region["boxes"]] == [f32(box) for box in boxes], (image_id, phrase)
            assert all(len(box) == 4 for box in region["boxes"])
            start = text.index(f"<st>{phrase}<ed>")
            assert region["start"] == start
            written = text[start : region["end"]]
            assert written.endswith("]") and written.count("[") == len(boxes)
        if "[OPEN]" in text:
            assert not any("OPEN" in region["phrase"] for region in turn["regions"])
            assert all(region["end"] <= text.index("[OPEN]") for region in turn["regions"])


def test_every_referring_reference_becomes_a_region_or_an_issue(built):
    flagged = Counter()
    for row in built("referring").prepared:
        for conversation in row["conversations"]:
            for turn in conversation["content"]:
                text = turn["value"]
                issues = turn["reference_issues"]
                unparsed = [issue for issue in issues if issue["kind"] == "unparsed"]
                assert len(turn["regions"]) + len(unparsed) == text.count("<st>")
                spans = {(issue["start"], issue["end"]) for issue in issues}
                for region in turn["regions"]:
                    assert text[region["start"] :].startswith(f"<st>{region['phrase']}<ed>")
                    for x1, y1, x2, y2 in region["boxes"]:
                        if not (0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1):  # kept as written, and flagged
                            assert any(region["start"] <= start < end <= region["end"] for start, end in spans)
                flagged.update(issue["kind"] for issue in issues)
    # The sample's odd conversation (sample/README.md): one of each kind.
    assert flagged == Counter({"unparsed": 1, "out-of-range": 1, "inverted": 1})


# --------------------------------------------------------------------------
# SA-1B text and image order
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", SA1B_CONFIGS)
def test_sa1b_text_is_upstream_text(built, config_name):
    lines = sample_caption_lines(config_name)
    multi = CONFIGS[config_name].multi_image
    result = built(config_name)
    for rows in (result.streamed, result.prepared):
        rows = by_id(rows)
        assert sorted(rows, key=int) == [str(number) for number, _ in lines]
        for number, line in lines:
            row = rows[str(number)]
            assert row["conversations"] == line["conversations"]
            answers = [t["value"] for t in line["conversations"] if t["from"] == "gpt"]
            assert row["caption"] == (answers[0] if len(answers) == 1 else None)
            assert row["source_id"] is None
            if multi:
                assert row["image_paths"] == line["image"]
                assert [image["path"] for image in row["images"]] == line["image"]
            else:
                assert row["image_path"] == line["image"]
    if CONFIGS[config_name].language == "zh":
        assert any(ord(ch) > 127 for row in result.prepared for ch in row["caption"])


@pytest.mark.parametrize("config_name", ["sa1b-en-multi", "sa1b-zh-multi"])
def test_multi_image_rows_keep_order_across_tars(built, config_name):
    members = sample_tar_members()
    spanning = 0
    for row in built(config_name).prepared:
        tars = [path.split("/")[0] for path in row["image_paths"]]
        spanning += len(set(tars)) > 1
        for path, image in zip(row["image_paths"], row["images"], strict=True):
            assert image["bytes"] == members[path]
    assert spanning >= 2


def test_a_twice_captioned_image_gives_two_rows(built):
    rows = built("sa1b-en-single").prepared
    paths = [row["image_path"] for row in rows]
    repeated = {path for path in paths if paths.count(path) > 1}
    assert len(repeated) == 1
    twice = [row for row in rows if row["image_path"] in repeated]
    assert twice[0]["image"]["bytes"] == twice[1]["image"]["bytes"]
    assert twice[0]["conversations"] != twice[1]["conversations"]


# --------------------------------------------------------------------------
# Sharding
# --------------------------------------------------------------------------


@pytest.mark.parametrize("num_shards", [16, 3])
def test_svit_streaming_shards(sample_builder, num_shards):
    config_name = "referring"
    records = sample_svit_records(config_name)
    stream = sample_builder(config_name, svit_num_shards=num_shards).as_streaming_dataset(split="train")
    assert stream.num_shards == num_shards
    stream = stream.decode(False)
    per_shard = [[row["id"] for row in stream.shard(num_shards=num_shards, index=i)] for i in range(num_shards)]
    # Shards are contiguous runs of records, in file order, their sizes differing by one at most.
    ids = [str(record["image_id"]) for record in records]
    assert [row_id for shard in per_shard for row_id in shard] == ids
    sizes = [len(shard) for shard in per_shard]
    assert max(sizes) - min(sizes) <= 1
    everything = sorted(row_id for shard in per_shard for row_id in shard)
    assert everything == sorted(str(record["image_id"]) for record in records)
    for world_size in (2, 3):
        nodes = [[row["id"] for row in split_dataset_by_node(stream, rank=r, world_size=world_size)] for r in
                 range(world_size)]
        union = [row_id for node in nodes for row_id in node]
        assert sorted(union) == everything
        assert all(nodes)


@pytest.mark.parametrize("config_name", SA1B_CONFIGS)
def test_sa1b_streaming_shards_one_tar_each(sample_builder, config_name):
    lines = dict(sample_caption_lines(config_name))
    first_tar = {
        str(number): (line["image"] if isinstance(line["image"], str) else line["image"][0]).split("/")[0]
        for number, line in lines.items()
    }
    stream = sample_builder(config_name).as_streaming_dataset(split="train")
    assert stream.num_shards == len(set(first_tar.values())) == len(list(SA1B_SAMPLE.glob("*.tar")))
    stream = stream.decode(False)
    per_shard = [[row["id"] for row in stream.shard(num_shards=stream.num_shards, index=i)]
                 for i in range(stream.num_shards)]
    shard_tars = [{first_tar[row_id] for row_id in shard} for shard in per_shard]
    assert all(len(tars) == 1 for tars in shard_tars)
    assert len(set.union(*shard_tars)) == stream.num_shards
    union = [row_id for shard in per_shard for row_id in shard]
    assert sorted(union, key=int) == sorted(first_tar, key=int)


# --------------------------------------------------------------------------
# Extracted layouts and num_proc
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extracted_sources(tmp_path_factory):
    """The sample, unpacked: data/<stem>.json, raw/VG_100K*/, and sa_NNNNNN/ folders."""
    root = tmp_path_factory.mktemp("extracted")
    svit = root / "svit"
    for archive_path in (SVIT_SAMPLE / "data").glob("*.zip"):
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(svit / "data")
    for archive_path in (SVIT_SAMPLE / "raw").glob("*.zip"):
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(svit / "raw")
    sa1b = root / "sa1b"
    for tar_path in SA1B_SAMPLE.glob("*.tar"):
        with tarfile.open(tar_path) as archive:
            archive.extractall(sa1b / tar_path.stem, filter="data")
    assert sorted(p.name for p in (svit / "data").iterdir()) == sorted(
        f"{CONFIGS[name].upstream_file}.json" for name in SVIT_CONFIGS
    )
    assert {p.name for p in (svit / "raw").iterdir()} == {"VG_100K", "VG_100K_2"}
    assert not list(sa1b.glob("*.tar")) and len(list(sa1b.iterdir())) == 3
    return {"svit_source": str(svit), "sa1b_images_source": str(sa1b)}


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_extracted_layout_gives_the_same_rows(built, tmp_path_factory, extracted_sources, config_name):
    archived = built(config_name)
    streamed = stream_rows(new_builder(tmp_path_factory.mktemp("x"), config_name, **extracted_sources))
    prepared = arrow_rows(prepare(new_builder(tmp_path_factory.mktemp("x"), config_name, **extracted_sources)))
    if CONFIGS[config_name].family == "svit":
        # Same files, same order.
        assert [row["id"] for row in streamed] == [row["id"] for row in archived.streamed]
        assert [row["id"] for row in prepared] == [row["id"] for row in archived.prepared]
    assert as_float32(sorted(streamed, key=lambda r: r["id"])) == sorted(archived.prepared, key=lambda r: r["id"])
    assert sorted(prepared, key=lambda r: r["id"]) == sorted(archived.prepared, key=lambda r: r["id"])


def test_extracted_layout_written_by_fake_upstream(tmp_path, built):
    """``fake_upstream``'s own extracted writer, fed the sample's content, gives the sample's rows."""
    from svitpipe.testing.fake_upstream import write_sa1b_images_source, write_svit_source

    images = {"VG_100K": {}, "VG_100K_2": {}}
    for _, (path, data) in sorted(sample_vg_images().items()):
        folder, name = path.split("/")
        images[folder][name] = data
    records = sample_svit_records("reasoning")
    write_svit_source(tmp_path / "svit", {"complex_reasoning": records}, images, extracted=True)
    tars = {}
    for path, data in sample_tar_members().items():
        stem, name = path.split("/")
        tars.setdefault(stem, []).append((name, data))
    write_sa1b_images_source(tmp_path / "sa1b", tars, extracted=True)

    rows = stream_rows(new_builder(tmp_path / "c1", "reasoning", svit_source=str(tmp_path / "svit")))
    assert as_float32(rows) == built("reasoning").prepared
    rows = stream_rows(new_builder(tmp_path / "c2", "sa1b-en-multi", sa1b_images_source=str(tmp_path / "sa1b")))
    assert by_id(rows) == by_id(built("sa1b-en-multi").prepared)


def test_num_proc_2_gives_the_same_rows(built, sample_builder):
    builder = sample_builder("conversation", svit_num_shards=4)
    dataset = prepare(builder, num_proc=2)
    assert len(dataset.cache_files) == 2  # two processes, each wrote its part
    assert sum(builder.info.splits["train"].shard_lengths) == dataset.num_rows
    rows = arrow_rows(dataset)
    assert by_id(rows) == by_id(built("conversation").prepared)
    assert len(rows) == len(sample_svit_rows("conversation"))


# --------------------------------------------------------------------------
# Text that any normalisation would change
# --------------------------------------------------------------------------

TRICKY_TEXTS = [
    "  leading and trailing spaces  ",
    "windows\r\nline breaks\nand a trailing newline\n",
    "\ttabs\tinside\t",
    "e\u0301 decomposed, \u00e9 composed, \ufb01 ligature, full\u3000width space",
    "emoji 😀, CJK 日本語, RTL \u05e9\u05dc\u05d5\u05dd, line separator \u2028 here",
    'quotes " \' and backslashes \\ \\n (not a newline) and a NUL \x00 char',
    "",
    "<image> and <st>the cup<ed> [0.1, 0.2, 0.3, 0.4] with \u00a0no-break spaces\u00a0",
]


@pytest.mark.parametrize("config_name", ["conversation", "referring"])
@pytest.mark.parametrize("mode", ["stream", "prepare"])
def test_svit_text_is_kept_byte_for_byte(tmp_path, config_name, mode):
    from svitpipe.testing.fake_upstream import draw_jpeg, write_svit_source

    records = [
        {
            "image_id": 5,
            "conversations": [
                {"content": [{"from": f" user{i} ", "value": text}, {"from": "gpt", "value": text[::-1]}],
                 **({"topic": text} if config_name == "conversation" else {})}
                for i, text in enumerate(TRICKY_TEXTS)
            ],
        }
    ]
    stem = CONFIGS[config_name].upstream_file
    write_svit_source(tmp_path / "svit", {stem: records}, {"VG_100K": {"5.jpg": draw_jpeg(20, 10, seed=5)},
                                                          "VG_100K_2": {}})
    builder = new_builder(tmp_path / "cache", config_name, svit_source=str(tmp_path / "svit"))
    rows = stream_rows(builder) if mode == "stream" else arrow_rows(prepare(builder))
    (row,) = rows
    for conversation, upstream in zip(row["conversations"], records[0]["conversations"], strict=True):
        for turn, upstream_turn in zip(conversation["content"], upstream["content"], strict=True):
            assert turn["from"].encode() == upstream_turn["from"].encode()
            assert turn["value"].encode() == upstream_turn["value"].encode()
        if config_name == "conversation":
            assert conversation["topic"].encode() == upstream["topic"].encode()


@pytest.mark.parametrize("mode", ["stream", "prepare"])
def test_sa1b_text_is_kept_byte_for_byte(tmp_path, mode):
    from svitpipe.testing.fake_upstream import (
        SA1B_CAPTION_FILES,
        draw_jpeg,
        write_sa1b_captions_source,
        write_sa1b_images_source,
    )

    lines = [
        {"image": "sa_000007/sa_1.jpg",
         "conversations": [{"from": "human", "value": "<image>\n" + text.replace("<image>", "[picture]")},
                           {"from": "gpt", "value": text}]}
        for text in TRICKY_TEXTS
    ]
    write_sa1b_captions_source(tmp_path / "captions", {SA1B_CAPTION_FILES["sa1b-zh-single"]: lines})
    write_sa1b_images_source(tmp_path / "sa1b", {"sa_000007": [("sa_1.jpg", draw_jpeg(12, 9, seed=1))]})
    builder = new_builder(tmp_path / "cache", "sa1b-zh-single", sa1b_captions_source=str(tmp_path / "captions"),
                          sa1b_images_source=str(tmp_path / "sa1b"))
    rows = by_id(stream_rows(builder) if mode == "stream" else arrow_rows(prepare(builder)))
    assert sorted(rows, key=int) == [str(n) for n in range(1, len(lines) + 1)]
    for number, line in enumerate(lines, start=1):
        row = rows[str(number)]
        assert [(t["from"].encode(), t["value"].encode()) for t in row["conversations"]] == [
            (t["from"].encode(), t["value"].encode()) for t in line["conversations"]
        ]
        assert row["caption"].encode() == line["conversations"][1]["value"].encode()
