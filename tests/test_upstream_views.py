"""The upstream text is the data; what the project derives from it is a view. A problem in a derived view (an id
written as digits, keys the schema does not declare, several records for one image, declared sizes that are not the
real ones, references that do not parse) keeps the row, is recorded on it and is counted as a flag, under both
policies: input records = rows + merged records + counted skips."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pytest

from conftest import new_builder, prepare, stream_rows
from svitpipe.sa1b.records import parse_caption_line
from svitpipe.svit.records import parse_svit_record, read_image_id
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_captions_source,
    write_sa1b_images_source,
    write_svit_source,
)

JPEG = {n: draw_jpeg(32 + 4 * n, 24 + 2 * n, seed=n) for n in range(1, 8)}


def turn(role: str, value: str, **extra) -> dict:
    return {"from": role, "value": value, **extra}


def svit_record(image_id, answer: str = "A plain answer.", **extra) -> dict:
    return {"image_id": image_id, "conversations": [{"content": [turn("user", "What is shown?"), turn("gpt", answer)]}],
            **extra}


def vg_images() -> dict:
    return {"VG_100K": {"1.jpg": JPEG[1], "2.jpg": JPEG[2]}, "VG_100K_2": {"3.jpg": JPEG[3]}}


# --------------------------------------------------------------------------
# Pure record views
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, expected",
    [(7, (7, False)), ("7", (7, True)), ("0012", (12, True)), (0, (0, False))],
)
def test_image_id_as_integer_or_digits(written, expected):
    assert read_image_id({"image_id": written}) == expected


@pytest.mark.parametrize("written", ["seven", "-7", "7.0", "", " 7", "٧", True, -1, 7.0, None, [7]])
def test_image_id_that_spells_no_integer_is_invalid(written):
    from svitpipe.bad_records import InvalidRecord

    with pytest.raises(InvalidRecord, match="'image_id' must be"):
        read_image_id({"image_id": written})


@pytest.mark.parametrize(
    "record, keys, extra",
    [
        (svit_record(1), (), {}),
        (svit_record(1, source="vg"), (), {"source": "vg"}),
        ({"image_id": 1, "conversations": [{"content": [turn("user", "q", lang="en")], "topic": "T"}]}, (),
         {"conversations[0].content[0].lang": "en", "conversations[0].topic": "T"}),
        ({"image_id": 1, "conversations": [{"content": [], "topic": "T"}]}, ("topic",), {}),
        ({"image_id": 1, "conversations": [{"content": [], "topic": 5}]}, ("topic",), {"conversations[0].topic": 5}),
        ({"image_id": 1, "conversations": [{"content": [turn("user", "q")]}, {"content": [], "mood": [1, 2]}]}, (),
         {"conversations[1].mood": [1, 2]}),
    ],
)
def test_undeclared_keys_go_to_upstream_extra_by_path(record, keys, extra):
    view = parse_svit_record(record, conversation_keys=keys)
    assert view.upstream_extra == extra
    for conversation in view.conversations:
        assert set(conversation) == {"content", *keys}


@pytest.mark.parametrize("conversations", [[], [{"content": []}], [{"content": []}, {"content": [turn("user", "")]}]])
def test_empty_conversations_and_content_are_kept_as_written(conversations):
    view = parse_svit_record({"image_id": 1, "conversations": conversations})
    assert view.conversations == conversations


def caption_line(images, turns, **extra) -> dict:
    return {"image": images, "conversations": turns, **extra}


@pytest.mark.parametrize(
    "line, multi, caption, extra",
    [
        (caption_line("sa_000000/sa_1.jpg", [turn("human", "<image>\nDescribe."), turn("gpt", "A cat.")]), False,
         "A cat.", {}),
        (caption_line(["sa_000000/sa_1.jpg", "sa_000000/sa_2.jpg"],
                      [turn("human", "Image-1: <image>\nImage-2: <image>\nCompare."), turn("gpt", "Both cats."),
                       turn("human", "And the colours?"), turn("gpt", "Grey and white.")]), True, None, {}),
        (caption_line("sa_000000/sa_1.jpg", [turn("human", "<image>\nDescribe.")]), False, None, {}),
        (caption_line("sa_000000/sa_1.jpg", [turn("human", "<image>\nD."), turn("gpt", "C.", score=0.9)],
                      quality="high", id={"a": 1}), False, "C.",
         {"quality": "high", "conversations[1].score": 0.9, "id": {"a": 1}}),
    ],
)
def test_caption_lines_keep_every_turn_and_unforeseen_keys(line, multi, caption, extra):
    parsed = parse_caption_line(line, multi)
    assert parsed.conversations == [{"from": t["from"], "value": t["value"]} for t in line["conversations"]]
    assert parsed.caption == caption and parsed.upstream_extra == extra


# --------------------------------------------------------------------------
# Through the builder, under both policies
# --------------------------------------------------------------------------


@dataclass
class KeptCase:
    name: str
    records: list
    flags: dict
    rows: dict  # id -> what to check: {"extra": {...}} and/or {"answers": [...]}
    config_name: str = "description"
    read: int = 3
    extra_checks: dict = field(default_factory=dict)


KEPT_CASES = [
    KeptCase("image-id-as-digits", [svit_record(1), svit_record("2"), svit_record(3)],
             {"image-id-as-string": 1}, {"2": {"extra": None}}),
    KeptCase("record-key", [svit_record(1), svit_record(2, caption="extra"), svit_record(3)],
             {"upstream-extra-keys": 1}, {"2": {"extra": {"caption": "extra"}}}),
    KeptCase("turn-key",
             [svit_record(1), {"image_id": 2, "conversations": [{"content": [turn("user", "x", lang="en")]}]},
              svit_record(3)],
             {"upstream-extra-keys": 1}, {"2": {"extra": {"conversations[0].content[0].lang": "en"}}}),
    KeptCase("topic-in-reasoning",
             [svit_record(1), {"image_id": 2, "conversations": [{"content": [turn("user", "x")], "topic": "T"}]},
              svit_record(3)],
             {"upstream-extra-keys": 1}, {"2": {"extra": {"conversations[0].topic": "T"}}}, config_name="reasoning"),
    KeptCase("empty-conversations", [svit_record(1), {"image_id": 2, "conversations": []}, svit_record(3)],
             {"empty-conversation": 1}, {"2": {"answers": []}}),
    KeptCase("merged-duplicate",
             [svit_record(1), svit_record(2, "First."), svit_record(3), svit_record(2, "Second.", note="n")],
             {"merged-duplicate": 1, "upstream-extra-keys": 1},
             {"2": {"answers": ["First.", "Second."], "extra": {"merged[3].note": "n"}}}, read=4),
]


@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("case", KEPT_CASES, ids=lambda case: case.name)
def test_derived_view_problems_keep_the_row(tmp_path, case, mode, policy):
    from svitpipe.features import CONFIGS

    write_svit_source(tmp_path / "svit", {CONFIGS[case.config_name].upstream_file: case.records}, vg_images())
    builder = new_builder(tmp_path / "cache", case.config_name, svit_source=str(tmp_path / "svit"),
                          on_bad_record=policy)
    rows = stream_rows(builder) if mode == "stream" else prepare(builder).with_format("arrow")[:].to_pylist()
    by_id = {row["id"]: row for row in rows}
    assert sorted(by_id) == ["1", "2", "3"]
    for row_id, expected in case.rows.items():
        row = by_id[row_id]
        if "extra" in expected:
            got = row["upstream_extra"]
            assert (json.loads(got) if got else None) == (expected["extra"] or None)
        if "answers" in expected:
            assert [c["content"][1]["value"] for c in row["conversations"]] == expected["answers"]
    ledger = builder.ledger
    assert ledger.flagged == Counter(case.flags) and not ledger.skipped
    assert ledger.records_read == case.read and ledger.is_balanced()


def sa1b_tree(root, config_name: str, lines: list, declared=None):
    tars = {"sa_000000": []}
    for number in (1, 2):
        tars["sa_000000"] += [(f"sa_{number}.jpg", JPEG[number]),
                              (f"sa_{number}.json", sa1b_annotation_json(number, 1, 1))]
    write_sa1b_captions_source(root / "captions", {SA1B_CAPTION_FILES[config_name]: lines})
    write_sa1b_images_source(root / "sa1b", tars)
    return new_builder(root / "cache", config_name, sa1b_captions_source=str(root / "captions"),
                       sa1b_images_source=str(root / "sa1b"))


def test_declared_sizes_that_differ_keep_the_real_ones(tmp_path):
    real = (32 + 4, 24 + 2)  # JPEG[1]
    lines = [
        caption_line("sa_000000/sa_1.jpg", [turn("human", "<image>\nD."), turn("gpt", "C.")], width=999, height=5),
        caption_line("sa_000000/sa_2.jpg", [turn("human", "<image>\nD."), turn("gpt", "C.")],
                     width=32 + 8, height=24 + 4),
        caption_line("sa_000000/sa_1.jpg", [turn("human", "<image>\nD."), turn("gpt", "C.")], width="wide"),
    ]
    builder = sa1b_tree(tmp_path, "sa1b-en-single", lines)
    rows = {row["id"]: row for row in stream_rows(builder)}
    assert (rows["1"]["width"], rows["1"]["height"]) == real
    assert json.loads(rows["1"]["upstream_extra"]) == {"width": 999, "height": 5}
    assert rows["2"]["upstream_extra"] is None  # declared and real agree
    assert json.loads(rows["3"]["upstream_extra"]) == {"width": "wide"}
    assert builder.ledger.flagged == Counter({"declared-size-mismatch": 2}) and builder.ledger.is_balanced()


def test_multi_image_line_with_several_turns_keeps_them_all(tmp_path):
    turns = [turn("human", "Image-1: <image>\nImage-2: <image>\nCompare."), turn("gpt", "Both cats."),
             turn("human", "Colours?"), turn("gpt", "Grey and white.")]
    builder = sa1b_tree(tmp_path, "sa1b-en-multi", [caption_line(["sa_000000/sa_1.jpg", "sa_000000/sa_2.jpg"], turns)])
    (row,) = stream_rows(builder)
    assert row["conversations"] == turns and row["caption"] is None
    assert builder.ledger.flagged == Counter({"no-single-caption": 1})
    assert [image["bytes"] for image in row["images"]] == [JPEG[1], JPEG[2]]
