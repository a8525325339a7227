"""Hostile or unlucky inputs end as a clear bad record, a counted skip or a valid row, never a crash or a leak
(the first cases of the hostile-inputs issue: the token, deep nesting, lone surrogates, huge ids, BOMs and bare
carriage returns, climbing paths)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path

import pytest

from conftest import new_builder, stream_rows
from svitpipe.json_text import decode_json
from svitpipe.publish.upload import redo_command
from svitpipe.sa1b.paths import parse_sa1b_image_path
from svitpipe.sample import SAMPLE_DIR
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_images_source,
    write_svit_source,
)

TOKEN = "hf_SeCrEtToKeN_0123456789abcdefXYZ"
JPEG = {n: draw_jpeg(32 + 4 * n, 24 + 2 * n, seed=n) for n in range(1, 4)}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["--token", TOKEN, "--sample"], ["--token", "...", "--sample"]),
        ([f"--token={TOKEN}"], ["--token=..."]),
        (["--tok", TOKEN], ["--tok", "..."]),
        ([f"--to={TOKEN}", "--configs", "referring"], ["--to=...", "--configs", "referring"]),
        (["--sample", "--local-dir", "--token"], ["--sample", "--local-dir", "--token"]),
    ],
)
def test_redo_command_never_repeats_the_token(argv, shown):
    assert shlex.split(redo_command(argv, ["svit-internvl", "upload"])) == ["svit-internvl", "upload", *shown]


def test_a_failing_run_writes_the_token_nowhere(tmp_path, capfd):
    """A run with --token and a failing unit: no byte it printed or wrote holds the token."""
    import shutil

    import upload

    images = tmp_path / "sa1b"
    shutil.copytree(SAMPLE_DIR / "sa1b", images)
    data = (images / "sa_000001.tar").read_bytes()
    (images / "sa_000001.tar").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    code = upload.main(["--sample", "--configs", "sa1b-en-single", "--sa1b-images-source", str(images),
                        "--local-dir", str(out), "--retries", "0", "--token", TOKEN])
    captured = capfd.readouterr()
    assert code == 1 and "redo only those" in captured.err and "--token ..." in captured.err
    assert TOKEN not in captured.out + captured.err
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "raw, error",
    [
        (DEEP, "nested too deeply"),
        ('{"a": "\\ud83d"}', "lone surrogate"),
        ('{"a": ["x", {"\\udfff": 1}]}', "lone surrogate"),
        ("{", "invalid JSON"),
    ],
)
def test_values_a_row_cannot_hold_are_reported(raw, error):
    for form in (raw, raw.encode()):
        value, why = decode_json(form)
        assert value is None and error in why


@pytest.mark.parametrize("raw", ['{"a": "\\ud83d\\ude00"}', '{"a": "\\u00e9"}', '{"a": "\\\\ud83d"}'])
def test_surrogate_pairs_and_escaped_backslashes_are_fine(raw):
    value, why = decode_json(raw)
    assert why is None and value == json.loads(raw)


def svit_record(image_id, answer: str = "A plain answer.") -> dict:
    return {"image_id": image_id,
            "conversations": [{"content": [{"from": "user", "value": "Q?"}, {"from": "gpt", "value": answer}]}]}


@pytest.mark.parametrize(
    "bad, reason, detail",
    [
        (("[" * 100_000 + "]" * 100_000).encode(), "malformed-json", "nested too deeply"),
        (json.dumps(svit_record(2)).replace("A plain answer.", "\\ud83d").encode(), "malformed-json",
         "lone surrogate"),
        (json.dumps(svit_record(2**70)).encode(), "invalid-record", "does not fit the int64 column"),
        (json.dumps(svit_record(str(2**70))).encode(), "invalid-record", "does not fit the int64 column"),
    ],
)
def test_svit_values_that_would_crash_a_unit_are_bad_records(tmp_path, bad, reason, detail):
    array = b"[" + b",".join([json.dumps(svit_record(1)).encode(), bad, json.dumps(svit_record(3)).encode()]) + b"]"
    write_svit_source(tmp_path / "svit", {"detail_description": array},
                      {"VG_100K": {"1.jpg": JPEG[1], "2.jpg": JPEG[2]}, "VG_100K_2": {"3.jpg": JPEG[3]}})
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record="skip")
    assert sorted(row["id"] for row in stream_rows(builder)) == ["1", "3"]
    assert builder.ledger.skipped == Counter({reason: 1}) and builder.ledger.is_balanced()
    assert any(detail in message for message in builder.ledger.samples[reason])


def caption(path: str, text: str = "A caption.") -> dict:
    return {"image": path, "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                             {"from": "gpt", "value": text}]}


def sa1b_tree(root: Path, raw_lines: bytes):
    captions = root / "captions"
    captions.mkdir(parents=True)
    (captions / SA1B_CAPTION_FILES["sa1b-en-single"]).write_bytes(raw_lines)
    members = []
    for number in (1, 2):
        members += [(f"sa_{number}.jpg", JPEG[number]), (f"sa_{number}.json", sa1b_annotation_json(number, 1, 1))]
    write_sa1b_images_source(root / "sa1b", {"sa_000000": members})
    return new_builder(root / "cache", "sa1b-en-single", sa1b_captions_source=str(captions),
                       sa1b_images_source=str(root / "sa1b"), on_bad_record="skip")


def test_a_byte_order_mark_and_bare_carriage_returns_read_as_valid_json(tmp_path):
    first = json.dumps(caption("sa_000000/sa_1.jpg")).encode()
    second = json.dumps(caption("sa_000000/sa_2.jpg", "Two\rlines")).replace(", ", ",\r ").encode()
    builder = sa1b_tree(tmp_path, b"\xef\xbb\xbf" + first + b"\n" + second + b"\n")
    rows = stream_rows(builder)
    assert [row["id"] for row in rows] == ["1", "2"] and not builder.ledger.skipped
    assert rows[1]["caption"] == "Two\rlines"


@pytest.mark.parametrize("line, reason", [
    ('{"image": "sa_000000/sa_1.jpg", "conversations": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed-json"),
    (json.dumps(caption("sa_000000/sa_1.jpg", "\\ud83d")).replace("\\\\ud83d", "\\ud83d"), "malformed-json"),
    (json.dumps(caption("../../sa_000000/sa_1.jpg")), "invalid-record"),
])
def test_sa1b_lines_that_would_crash_or_climb_are_bad_records(tmp_path, line, reason):
    good = json.dumps(caption("sa_000000/sa_2.jpg"))
    builder = sa1b_tree(tmp_path, (good + "\n" + line + "\n").encode())
    assert [row["id"] for row in stream_rows(builder)] == ["1"]
    assert builder.ledger.skipped == Counter({reason: 1}) and builder.ledger.is_balanced()


@pytest.mark.parametrize("path", ["../sa_000000/sa_1.jpg", "a/../sa_000000/sa_1.jpg", "../../sa_000000/sa_2.jpg"])
def test_paths_that_climb_are_refused(path):
    with pytest.raises(ValueError, match="is not of the form"):
        parse_sa1b_image_path(path)


@pytest.mark.parametrize("path", ["./sa_000000/sa_1.jpg", "sa1b/sa_000000/sa_1.jpg", "..a/sa_000000/sa_1.jpg"])
def test_paths_under_other_folders_are_kept(path):
    assert parse_sa1b_image_path(path).tar == "sa_000000"
