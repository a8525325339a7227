"""Broken upstream input: a clear error by default, a counted skip under ``on_bad_record="skip"``.

Every broken tree is written with ``svitpipe.testing.fake_upstream`` under ``tmp_path``. Each case has one bad record between
two good ones, so the skip policy must still produce the good rows, and the builder's ledgers must add up:
``records_read == examples_written + skipped``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import find_in_chain, new_builder, prepare, stream_rows
from svitpipe.bad_records import BadRecordError
from svitpipe.features import CONFIGS
from svitpipe.svit.json_array_reader import JSONArrayStructureError
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_captions_source,
    write_sa1b_images_source,
    write_svit_source,
)

JPEG = {n: draw_jpeg(32 + 4 * n, 24 + 2 * n, seed=n) for n in range(1, 8)}
GARBAGE = b"this is not a JPEG at all, just some garbage bytes \x00\x01\x02" * 4
TRUNCATED = JPEG[2][:-64]  # header intact, end of the scan (and the end-of-image marker) cut off


def svit_record(image_id, answer: str = "A plain answer.") -> dict:
    return {
        "image_id": image_id,
        "conversations": [{"content": [{"from": "user", "value": "What is shown?"}, {"from": "gpt", "value": answer}]}],
    }


def vg_images(**overrides: bytes) -> dict:
    """Images 1, 2 (VG_100K) and 3 (VG_100K_2); ``overrides`` like ``{"2.jpg": b"..."}`` replace or add files."""
    images = {"VG_100K": {"1.jpg": JPEG[1], "2.jpg": JPEG[2]}, "VG_100K_2": {"3.jpg": JPEG[3]}}
    for name, data in overrides.items():
        images["VG_100K"][name] = data
    return images


def raw_array(*elements: bytes) -> bytes:
    return b"[" + b",\n ".join(elements) + b"]"


def dumps(record) -> bytes:
    return json.dumps(record).encode()


MALFORMED_ELEMENT = b'{"image_id": 2, "conversations": [1,, 2]}'  # balanced brackets, not JSON
MALFORMED_ARRAY = raw_array(dumps(svit_record(1)), MALFORMED_ELEMENT, dumps(svit_record(3)))


@dataclass
class SVITCase:
    name: str
    annotation: object  # list of records, or raw bytes
    reason: str
    location: str
    detail: list
    images: dict = field(default_factory=vg_images)
    config_name: str = "description"
    kept: tuple = ("1", "3")
    extracted: bool = False


SVIT_CASES = [
    SVITCase(
        "malformed-json-element",
        MALFORMED_ARRAY,
        "malformed-json",
        f"record 1 (byte {MALFORMED_ARRAY.index(MALFORMED_ELEMENT)})",
        ["invalid JSON"],
    ),
    SVITCase(
        "image-id-is-a-string-of-no-digits",
        [svit_record(1), svit_record("two"), svit_record(3)],
        "invalid-record",
        "record 1 (byte ",
        ["'image_id' must be a non-negative integer or a string of digits, got 'two'"],
    ),
    SVITCase(
        "image-id-missing",
        [svit_record(1), {"conversations": svit_record(2)["conversations"]}, svit_record(3)],
        "invalid-record",
        "record 1 (byte ",
        ["'image_id' must be a non-negative integer or a string of digits, got None"],
    ),
    SVITCase(
        "image-id-negative",
        [svit_record(1), svit_record(-2), svit_record(3)],
        "invalid-record",
        "record 1 (byte ",
        ["got -2"],
    ),
    SVITCase(
        "turn-without-a-value",
        [
            svit_record(1),
            {"image_id": 2, "conversations": [{"content": [{"from": "user", "text": "x"}]}]},
            svit_record(3),
        ],
        "invalid-record",
        "record 1 (byte ",
        ["conversations[0].content[0]", "string 'from' and 'value'", "text"],
    ),
    SVITCase(
        "conversations-not-a-list",
        [svit_record(1), {"image_id": 2, "conversations": {"content": []}}, svit_record(3)],
        "invalid-record",
        "record 1 (byte ",
        ["'conversations' must be a list, got dict"],
    ),
    SVITCase(
        "image-in-neither-folder",
        [svit_record(1), svit_record(7), svit_record(3)],
        "missing-image",
        "record 1 (image_id 7)",
        ["7.jpg is in neither", "raw/images.zip", "raw/images2.zip"],
    ),
    SVITCase(
        "image-in-neither-folder-extracted",
        [svit_record(1), svit_record(7), svit_record(3)],
        "missing-image",
        "record 1 (image_id 7)",
        ["7.jpg is in neither", "raw/VG_100K", "raw/VG_100K_2"],
        extracted=True,
    ),
    SVITCase(
        "corrupt-jpeg",
        [svit_record(1), svit_record(2), svit_record(3)],
        "corrupt-image",
        "record 1 (image_id 2)",
        ["VG_100K/2.jpg", "cannot read image"],
        images=vg_images(**{"2.jpg": GARBAGE}),
    ),
    SVITCase(
        "truncated-jpeg",
        [svit_record(1), svit_record(2), svit_record(3)],
        "corrupt-image",
        "record 1 (image_id 2)",
        ["VG_100K/2.jpg", "truncated"],
        images=vg_images(**{"2.jpg": TRUNCATED}),
    ),
]


def write_svit_case(root: Path, case: SVITCase) -> str:
    stem = CONFIGS[case.config_name].upstream_file
    write_svit_source(root, {stem: case.annotation}, case.images, extracted=case.extracted)
    return str(root / "data" / (f"{stem}.json" if case.extracted else f"{stem}.zip"))


def run(builder, mode: str) -> list[dict]:
    if mode == "stream":
        return stream_rows(builder)
    return prepare(builder).with_format("arrow")[:].to_pylist()


def check_bad_record_error(error: BaseException, source: str, reason: str, location: str, detail: list) -> None:
    bad = find_in_chain(error, BadRecordError)
    assert bad.reason == reason
    assert bad.source.startswith(source), (bad.source, source)
    assert location in bad.location
    message = str(bad)
    assert source in message and location in message and reason in message
    for part in detail:
        assert part in message, (part, message)
    assert "on_bad_record='skip'" in message


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("case", SVIT_CASES, ids=lambda case: case.name)
def test_svit_bad_record_raises_by_default(tmp_path, case, mode):
    source = write_svit_case(tmp_path / "svit", case)
    builder = new_builder(tmp_path / "cache", case.config_name, svit_source=str(tmp_path / "svit"))
    with pytest.raises(Exception) as caught:
        run(builder, mode)
    check_bad_record_error(caught.value, source, case.reason, case.location, case.detail)


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("case", SVIT_CASES, ids=lambda case: case.name)
def test_svit_bad_record_is_skipped_and_counted(tmp_path, case, mode):
    write_svit_case(tmp_path / "svit", case)
    builder = new_builder(
        tmp_path / "cache", case.config_name, svit_source=str(tmp_path / "svit"), on_bad_record="skip"
    )
    rows = run(builder, mode)
    assert sorted(row["id"] for row in rows) == sorted(case.kept)
    ledger = builder.ledger
    assert ledger.skipped == Counter({case.reason: 1})
    assert ledger.records_read == 3
    assert ledger.examples_written == len(case.kept) == 2
    assert ledger.records_read == ledger.examples_written + ledger.total_skipped
    assert any(case.location in message for message in ledger.samples[case.reason])


def test_svit_good_rows_are_untouched_by_a_skipped_record(tmp_path):
    case = SVIT_CASES[0]
    write_svit_case(tmp_path / "svit", case)
    rows = stream_rows(
        new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record="skip")
    )
    assert [row["image"]["bytes"] for row in rows] == [JPEG[1], JPEG[3]]
    assert [row["conversations"][0]["content"][1]["value"] for row in rows] == ["A plain answer."] * 2


# --------------------------------------------------------------------------
# A broken array structure is fatal under both policies
# --------------------------------------------------------------------------

BROKEN_ELEMENT = b'{"image_id": 2, "conversations": [}'
BROKEN_ARRAY = raw_array(dumps(svit_record(1)), BROKEN_ELEMENT, dumps(svit_record(3)))


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_broken_array_structure_is_fatal(tmp_path, policy, mode):
    write_svit_source(tmp_path / "svit", {"detail_description": BROKEN_ARRAY}, vg_images())
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record=policy)
    seen = []
    with pytest.raises(Exception) as caught:
        if mode == "stream":
            for row in builder.as_streaming_dataset(split="train").decode(False):
                seen.append(row["id"])
        else:
            prepare(builder)
    error = find_in_chain(caught.value, JSONArrayStructureError)
    offset = BROKEN_ARRAY.index(BROKEN_ELEMENT) + BROKEN_ELEMENT.index(b"}")
    assert (error.offset, error.index) == (offset, 1)
    message = str(error)
    assert "mismatched '}'" in message and f"byte offset {offset}" in message
    assert str(tmp_path / "svit" / "data" / "detail_description.zip") in message
    # The record index reads the whole array before the first example, so a broken file yields nothing.
    assert seen == []
    assert not builder.ledger.skipped


# --------------------------------------------------------------------------
# SA-1B
# --------------------------------------------------------------------------


def tar_members(*numbers: int, **overrides: bytes) -> list:
    members = []
    for number in numbers:
        data = overrides.get(f"sa_{number}.jpg", JPEG[number])
        members += [(f"sa_{number}.jpg", data), (f"sa_{number}.json", sa1b_annotation_json(number, 1, 1))]
    return members


def caption(paths, text: str = "A caption.", placeholders: Optional[int] = None) -> dict:
    paths_list = [paths] if isinstance(paths, str) else paths
    count = len(paths_list) if placeholders is None else placeholders
    prompt = "".join(f"Image-{i + 1}: <image>\n" for i in range(count)) + "Describe."
    return {"image": paths, "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]}


def default_tars(**overrides: bytes) -> dict:
    return {"sa_000000": tar_members(2, 1, 4, **overrides), "sa_000001": tar_members(5, 6)}


@dataclass
class SA1BCase:
    name: str
    bad_line: object  # dict or raw str: line 2 of the file, between two good lines
    reason: str
    detail: list
    config_name: str = "sa1b-en-single"
    tars: Callable = default_tars


def good_lines(config_name: str) -> tuple:
    if CONFIGS[config_name].multi_image:
        return (
            caption(["sa_000000/sa_1.jpg", "sa_000001/sa_5.jpg"]),
            caption(["sa_000001/sa_6.jpg", "sa_000000/sa_2.jpg"]),
        )
    return caption("sa_000000/sa_1.jpg"), caption("sa_000001/sa_5.jpg")


SA1B_CASES = [
    SA1BCase("malformed-jsonl-line", '{"image": "sa_000000/sa_2.jpg", "conversations": [', "malformed-json",
             ["invalid JSON"]),
    SA1BCase("not-an-sa1b-path", caption("images/sa_2.jpg"), "invalid-record", ["'images/sa_2.jpg'",
             "not of the form"]),
    SA1BCase("placeholder-count", caption("sa_000000/sa_2.jpg", placeholders=2), "invalid-record",
             ["1 image(s) but 2 '<image>' placeholder(s)"]),
    SA1BCase("image-missing-from-its-tar", caption("sa_000000/sa_3.jpg"), "missing-image",
             ["sa_3.jpg is not in", "sa_000000.tar"]),
    SA1BCase("corrupt-image", caption("sa_000000/sa_2.jpg"), "corrupt-image", ["sa_2.jpg", "cannot read image"],
             tars=lambda: default_tars(**{"sa_2.jpg": GARBAGE})),
    SA1BCase("truncated-image", caption("sa_000000/sa_2.jpg"), "corrupt-image", ["sa_2.jpg", "truncated"],
             tars=lambda: default_tars(**{"sa_2.jpg": TRUNCATED})),
    SA1BCase("multi-image-second-missing", caption(["sa_000000/sa_4.jpg", "sa_000001/sa_9.jpg"]), "missing-image",
             ["sa_9.jpg is not in", "sa_000001.tar"], config_name="sa1b-en-multi"),
    SA1BCase("multi-image-tar-missing", caption(["sa_000001/sa_6.jpg", "sa_000003/sa_9.jpg"]), "missing-image",
             ["sa_9.jpg is not in", "sa_000003"], config_name="sa1b-en-multi"),
    SA1BCase("multi-image-not-a-list", caption("sa_000000/sa_4.jpg"), "invalid-record", ["non-empty list"],
             config_name="sa1b-zh-multi"),
]


def write_sa1b_case(root: Path, case: SA1BCase) -> str:
    first, last = good_lines(case.config_name)
    file_name = SA1B_CAPTION_FILES[case.config_name]
    write_sa1b_captions_source(root / "captions", {file_name: [first, case.bad_line, last]})
    write_sa1b_images_source(root / "sa1b", case.tars())
    return str(root / "captions" / file_name)


def sa1b_builder(root: Path, config_name: str, **kwargs):
    return new_builder(
        root / "cache",
        config_name,
        sa1b_captions_source=str(root / "captions"),
        sa1b_images_source=str(root / "sa1b"),
        **kwargs,
    )


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("case", SA1B_CASES, ids=lambda case: case.name)
def test_sa1b_bad_line_raises_by_default(tmp_path, case, mode):
    source = write_sa1b_case(tmp_path, case)
    with pytest.raises(Exception) as caught:
        run(sa1b_builder(tmp_path, case.config_name), mode)
    check_bad_record_error(caught.value, source, case.reason, "line 2", case.detail)


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize("case", SA1B_CASES, ids=lambda case: case.name)
def test_sa1b_bad_line_is_skipped_and_counted(tmp_path, case, mode):
    write_sa1b_case(tmp_path, case)
    builder = sa1b_builder(tmp_path, case.config_name, on_bad_record="skip")
    rows = run(builder, mode)
    assert sorted(row["id"] for row in rows) == ["1", "3"]
    ledger = builder.ledger
    assert ledger.skipped == Counter({case.reason: 1})
    assert (ledger.records_read, ledger.examples_written) == (3, 2)
    assert ledger.records_read == ledger.examples_written + ledger.total_skipped
    assert any("line 2" in message for message in ledger.samples[case.reason])


# A missing tar, and building only some tars.

MISSING_TAR_LINES = [caption("sa_000000/sa_1.jpg"), caption("sa_000002/sa_7.jpg"), caption("sa_000001/sa_5.jpg"),
                     caption("sa_000002/sa_3.jpg")]


def write_missing_tar_tree(root: Path) -> str:
    file_name = SA1B_CAPTION_FILES["sa1b-en-single"]
    write_sa1b_captions_source(root / "captions", {file_name: MISSING_TAR_LINES})
    write_sa1b_images_source(root / "sa1b", default_tars())  # no sa_000002.tar
    return str(root / "captions" / file_name)


@pytest.mark.parametrize("mode", ["stream", "prepare"])
def test_missing_tar_raises_by_default(tmp_path, mode):
    source = write_missing_tar_tree(tmp_path)
    with pytest.raises(Exception) as caught:
        run(sa1b_builder(tmp_path, "sa1b-en-single"), mode)
    check_bad_record_error(caught.value, source, "missing-tar", "2 line(s)", ["sa_000002", "sa1b_tars=[...]",
                                                                              str(tmp_path / "sa1b")])


@pytest.mark.parametrize("mode", ["stream", "prepare"])
def test_missing_tar_is_skipped_and_counted(tmp_path, mode):
    write_missing_tar_tree(tmp_path)
    builder = sa1b_builder(tmp_path, "sa1b-en-single", on_bad_record="skip")
    rows = run(builder, mode)
    assert sorted(row["id"] for row in rows) == ["1", "3"]
    ledger = builder.ledger
    assert ledger.skipped == Counter({"missing-tar": 2})
    assert (ledger.records_read, ledger.examples_written) == (4, 2)


@pytest.mark.parametrize("mode", ["stream", "prepare"])
@pytest.mark.parametrize(
    "tars, kept, not_selected",
    [(["sa_000000", "sa_000001"], ["1", "3"], 2), (["sa_000001"], ["3"], 3), (("sa_000000",), ["1"], 3)],
)
def test_sa1b_tars_restricts_the_build(tmp_path, mode, tars, kept, not_selected):
    write_missing_tar_tree(tmp_path)
    builder = sa1b_builder(tmp_path, "sa1b-en-single", sa1b_tars=tars)  # default policy: no error
    if mode == "stream":
        stream = builder.as_streaming_dataset(split="train")
        assert stream.num_shards == len(tars)
    rows = run(builder, mode)
    assert sorted(row["id"] for row in rows) == kept
    ledger = builder.ledger
    assert ledger.skipped == Counter({"tar-not-selected": not_selected})
    assert (ledger.records_read, ledger.examples_written) == (4, len(kept))


@pytest.mark.parametrize("config_name", ["sa1b-en-single", "sa1b-zh-single", "sa1b-en-multi", "sa1b-zh-multi"])
def test_sa1b_config_without_images_source(tmp_path, config_name):
    for mode in ("stream", "prepare"):
        builder = new_builder(tmp_path / mode, config_name, sa1b_images_source=None)
        with pytest.raises(ValueError) as caught:
            run(builder, mode)
        message = str(caught.value)
        assert f"'{config_name}'" in message and "sa1b_images_source=" in message and "SA-1B" in message


def test_unknown_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_bad_record must be one of"):
        new_builder(tmp_path, "referring", on_bad_record="ignore")


@pytest.mark.parametrize("num_shards", [1, 2, 16])
def test_duplicate_image_ids_are_merged_whatever_the_sharding(tmp_path, num_shards):
    """Records 0 and 3 share an image_id: one row holds both records' conversations, in file order, however the
    subset is sharded (the later record may sit in another range), under the default policy (nothing is wrong)."""
    records = [svit_record(1), svit_record(3), svit_record(2), svit_record(1, "Another answer.")]
    write_svit_source(tmp_path / "svit", {"detail_description": records}, vg_images())
    options = {"svit_source": str(tmp_path / "svit"), "svit_num_shards": num_shards}
    results = []
    for mode, prepare_kwargs in (("stream", None), ("prepare", {}), ("prepare", {"num_proc": 2})):
        builder = new_builder(tmp_path / f"c-{len(results)}", "description", **options)
        if mode == "stream":
            rows = stream_rows(builder)
        else:
            rows = prepare(builder, **prepare_kwargs).with_format("arrow")[:].to_pylist()
        assert sorted(row["id"] for row in rows) == ["1", "2", "3"]
        first = next(row for row in rows if row["id"] == "1")
        answers = [conversation["content"][1]["value"] for conversation in first["conversations"]]
        assert answers == ["A plain answer.", "Another answer."]
        if not prepare_kwargs:  # num_proc workers keep their own ledgers
            ledger = builder.ledger
            assert ledger.flagged == Counter({"merged-duplicate": 1}) and not ledger.skipped
            assert (ledger.records_read, ledger.examples_written) == (4, 3) and ledger.is_balanced()
        results.append([row["id"] for row in rows])
    assert results[0] == results[1] == results[2]
