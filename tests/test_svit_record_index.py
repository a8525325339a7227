"""The SVIT record index: one pass over the annotation file, then shards read contiguous record ranges."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from svitpipe.svit.json_array_reader import JSONArrayStructureError
from svitpipe.svit.record_index import (
    RECORDS_FILE,
    SVITRecordIndex,
    iter_record_range,
    load_or_build_record_index,
)


def record(image_id, answer="An answer.") -> bytes:
    turns = [{"from": "user", "value": "What is it?"}, {"from": "gpt", "value": answer}]
    return json.dumps({"image_id": image_id, "conversations": [{"content": turns}]}).encode()


def write_array(path, elements: list[bytes], in_zip: bool = False) -> str:
    data = b"[\n  " + b",\n  ".join(elements) + b"\n]\n"
    if in_zip:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("referring_qa.json", data)
    else:
        path.write_bytes(data)
    return str(path)


def all_records(index: SVITRecordIndex):
    return [entry for part in index.record_ranges(1) for entry in iter_record_range(part)]


@pytest.mark.parametrize(
    "num_records, num_shards, sizes",
    [
        (10, 1, [10]),
        (10, 3, [4, 3, 3]),
        (10, 4, [3, 3, 2, 2]),
        (8, 16, [1] * 8 + [0] * 8),  # fewer records than shards: the first shards hold one each
        (0, 3, [0, 0, 0]),
        (17, 16, [2] + [1] * 15),
    ],
)
def test_record_ranges_are_contiguous_and_balanced(num_records, num_shards, sizes):
    ranges = SVITRecordIndex("dir", "src", num_records, 0).record_ranges(num_shards)
    assert [r.stop - r.start for r in ranges] == sizes
    assert [r.position for r in ranges] == list(range(num_shards))
    assert ranges[0].start == 0 and ranges[-1].stop == num_records
    assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("in_zip", [False, True])
def test_records_keep_their_bytes_offsets_and_order(tmp_path, in_zip):
    elements = [record(n, "x" * n) for n in range(1, 30)]
    source = write_array(tmp_path / ("a.zip" if in_zip else "a.json"), elements, in_zip)
    index = load_or_build_record_index(source, in_zip, str(tmp_path / "index"))
    assert index.num_records == 29 and index.num_duplicates == 0
    assert index.source == (f"{source}::referring_qa.json" if in_zip else source)
    data = b"[\n  " + b",\n  ".join(elements) + b"\n]\n"
    got = all_records(index)
    assert [entry.raw for entry in got] == elements
    assert [entry.index for entry in got] == list(range(29))
    assert [data[entry.offset : entry.offset + len(entry.raw)] for entry in got] == elements
    # Any range reads just its records, from the right place.
    for part in index.record_ranges(5):
        assert [entry.raw for entry in iter_record_range(part)] == elements[part.start : part.stop]


def test_first_valid_image_id_holds_it(tmp_path):
    elements = [
        b'{"image_id": 7, "conversations": [1,, 2]}',  # broken JSON: claims nothing
        json.dumps({"image_id": "seven", "conversations": []}).encode(),  # not an id: claims nothing
        json.dumps({"image_id": "7", "conversations": []}).encode(),  # digits spell 7: the first that holds it
        record(8),
        record(7, "again"),
        record(8, "again"),
        record(7, "and again"),
    ]
    index = load_or_build_record_index(write_array(tmp_path / "a.json", elements), False, str(tmp_path / "i"))
    got = all_records(index)
    assert [entry.duplicate_of for entry in got] == [-1, -1, -1, -1, 2, 3, 2]
    assert index.num_duplicates == 3
    # The first record of an id carries the later ones, in file order; a range yields it with them.
    assert [[later.index for later in entry.merged] for entry in got] == [[], [], [4, 6], [5], [], [], []]
    assert [later.raw for later in got[2].merged] == [elements[4], elements[6]]


def test_index_is_reused_until_the_file_changes(tmp_path):
    path = tmp_path / "a.json"
    source = write_array(path, [record(1), record(2)])
    first = load_or_build_record_index(source, False, str(tmp_path / "i"))
    stamp = os.stat(os.path.join(first.directory, RECORDS_FILE)).st_mtime_ns
    again = load_or_build_record_index(source, False, str(tmp_path / "i"))
    assert again == first
    assert os.stat(os.path.join(again.directory, RECORDS_FILE)).st_mtime_ns == stamp
    write_array(path, [record(1), record(2), record(3)])
    changed = load_or_build_record_index(source, False, str(tmp_path / "i"))
    assert changed.directory != first.directory and changed.num_records == 3
    assert not [name for name in os.listdir(tmp_path / "i") if name.startswith(".")]  # no staging folder left


def test_broken_structure_names_the_file_and_leaves_no_index(tmp_path):
    source = write_array(tmp_path / "a.json", [record(1), b'{"image_id": 2, "conversations": [}'])
    with pytest.raises(JSONArrayStructureError) as caught:
        load_or_build_record_index(source, False, str(tmp_path / "i"))
    assert str(caught.value).startswith(f"{source}: mismatched '}}'") and caught.value.index == 1
    assert os.listdir(tmp_path / "i") == []


def test_cut_index_is_an_error_not_fewer_records(tmp_path):
    index = load_or_build_record_index(
        write_array(tmp_path / "a.json", [record(n) for n in range(5)]), False, str(tmp_path / "i")
    )
    records_path = os.path.join(index.directory, RECORDS_FILE)
    with open(records_path, "r+b") as f:
        f.truncate(os.path.getsize(records_path) - 10)
    with pytest.raises(ValueError, match=r"index ends inside record 4; delete it to rebuild"):
        all_records(index)


def test_zip_must_hold_one_json(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("one.json", b"[]")
        archive.writestr("two.json", b"[]")
    with pytest.raises(ValueError, match=r"should hold exactly one \.json file"):
        load_or_build_record_index(str(path), True, str(tmp_path / "i"))
