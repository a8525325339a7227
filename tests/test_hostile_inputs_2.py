"""Hostile and changing inputs, second part: changed sources rebuilt (never stale or mixed), extracted folders
holding what is not a file, huge elements and members read in bounded memory, images a header check must catch,
EXIF-rotated images, duplicated tar members, staging folders left by a kill, glob characters in --local-dir.

Every input is generated here, small (a "1.5 GiB" member is a few MB on disk)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import PIL.Image
import pytest

import upload
from conftest import new_builder, stream_rows
from publish_fixtures import published_files
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_captions_source,
    write_sa1b_images_source,
    write_svit_source,
)

JPEG = {n: draw_jpeg(24 + 4 * n, 20 + 2 * n, seed=n) for n in range(1, 9)}
REPO_ROOT = Path(__file__).resolve().parent.parent


def svit_record(image_id: int, answer: str = "A plain answer.") -> dict:
    return {"image_id": image_id,
            "conversations": [{"content": [{"from": "user", "value": "Q?"}, {"from": "gpt", "value": answer}]}]}


def caption(path, text: str = "A caption.") -> dict:
    return {"image": path, "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                             {"from": "gpt", "value": text}]}


def build(out: Path, *options: str) -> Path:
    code = upload.main(["--local-dir", str(out), "--on-bad-record", "skip", *options])
    assert code == 0
    return out


# --------------------------------------------------------------------------
# 1. A changed source is rebuilt: a re-run equals a fresh build from the new sources
# --------------------------------------------------------------------------

def write_svit(root: Path, records: list, images: dict, extracted: bool = False) -> None:
    write_svit_source(root, {"detail_description": records, "referring_qa": records}, images, extracted=extracted)


SVIT_IMAGES = {"VG_100K": {f"{n}.jpg": JPEG[n] for n in (1, 2, 3, 4)},
               "VG_100K_2": {f"{n}.jpg": JPEG[n] for n in (5, 6, 7)}}
SVIT_RECORDS = [svit_record(n, f"Answer {n}.") for n in range(1, 7)]

SVIT_CHANGES = {
    "changed-record": lambda records, images: ([*records[:1], svit_record(2, "Changed."), *records[2:]], images),
    "deleted-record": lambda records, images: (records[:3] + records[4:], images),
    "added-record": lambda records, images: (records + [svit_record(7, "Added.")], images),
    "changed-image": lambda records, images: (records, {**images, "VG_100K": {**images["VG_100K"],
                                                                               "3.jpg": JPEG[8]}}),
}


def svit_options(source: Path) -> list:
    return ["--svit-source", str(source), "--configs", "description", "referring", "--svit-num-shards", "3"]


@pytest.mark.parametrize("extracted", [False, True], ids=["archives", "folders"])
@pytest.mark.parametrize("change", list(SVIT_CHANGES))
def test_a_changed_svit_source_is_rebuilt(tmp_path, change, extracted):
    source = tmp_path / "svit"
    write_svit(source, SVIT_RECORDS, SVIT_IMAGES, extracted)
    out = build(tmp_path / "out", *svit_options(source))
    before = published_files(out)
    # As if killed before the last unit of one config finished: a re-run must not mix versions.
    stats = sorted((out / ".cache").rglob("description/svit-00002-of-00003.json"))
    assert len(stats) == 1
    stats[0].unlink()
    records, images = SVIT_CHANGES[change](SVIT_RECORDS, SVIT_IMAGES)
    for path in sorted(source.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    write_svit(source, records, images, extracted)
    after = published_files(build(out, *svit_options(source)))
    fresh = published_files(build(tmp_path / "fresh", *svit_options(source)))
    assert after == fresh
    assert after != before


def test_an_unchanged_source_reuses_every_unit_and_a_change_rebuilds_only_its_units(tmp_path):
    from svitpipe.publish.parquet_layout import ParquetLayout
    from svitpipe.publish.units import make_builder, plan_units, unit_fingerprint

    source = tmp_path / "svit"
    write_svit(source, SVIT_RECORDS, SVIT_IMAGES, extracted=True)
    kwargs = {"svit_source": str(source), "svit_num_shards": 3, "index_dir": str(tmp_path / "index")}

    def fingerprints():
        units = plan_units(make_builder("description", kwargs))
        return [unit_fingerprint(unit, kwargs, ParquetLayout()) for unit in units]

    first = fingerprints()
    assert fingerprints() == first
    # Record 6 is the last unit's (records 5-6); an edit keeps every record where it is.
    records = SVIT_RECORDS[:5] + [svit_record(6, "Answer 0.")]
    (source / "data" / "detail_description.json").write_text(json.dumps(records))
    second = fingerprints()
    assert second[:2] == first[:2] and second[2] != first[2]


SA1B_TARS = {
    "sa_000000": [("sa_1.jpg", JPEG[1]), ("sa_1.json", sa1b_annotation_json(1, 1, 1)),
                  ("sa_2.jpg", JPEG[2]), ("sa_2.json", sa1b_annotation_json(2, 1, 1))],
    "sa_000001": [("sa_3.jpg", JPEG[3]), ("sa_3.json", sa1b_annotation_json(3, 1, 1)),
                  ("sa_4.jpg", JPEG[4]), ("sa_4.json", sa1b_annotation_json(4, 1, 1))],
}
SA1B_LINES = [caption(f"sa_00000{tar}/sa_{n}.jpg", f"Caption {n}.") for tar, n in ((0, 1), (0, 2), (1, 3), (1, 4))]
MULTI_LINES = [caption(["sa_000000/sa_1.jpg", "sa_000001/sa_3.jpg"], "One."),
               caption(["sa_000001/sa_4.jpg"], "Two.")]

SA1B_CHANGES = {
    "changed-line": lambda lines, tars: ([lines[0], caption("sa_000000/sa_2.jpg", "Changed."), *lines[2:]], tars),
    "deleted-line": lambda lines, tars: (lines[:2] + lines[3:], tars),
    "added-line": lambda lines, tars: (lines + [caption("sa_000001/sa_3.jpg", "Added.")], tars),
    "changed-tar": lambda lines, tars: (lines, {**tars, "sa_000001": [("sa_3.jpg", JPEG[8]), *tars["sa_000001"][1:]]}),
}


def write_sa1b(root: Path, lines: list, tars: dict, extracted: bool) -> None:
    write_sa1b_captions_source(root / "captions", {SA1B_CAPTION_FILES["sa1b-en-single"]: lines,
                                                   SA1B_CAPTION_FILES["sa1b-en-multi"]: MULTI_LINES})
    write_sa1b_images_source(root / "sa1b", tars, extracted=extracted)


def sa1b_options(root: Path) -> list:
    return ["--sa1b-captions-source", str(root / "captions"), "--sa1b-images-source", str(root / "sa1b"),
            "--configs", "sa1b-en-single", "sa1b-en-multi"]


@pytest.mark.parametrize("extracted", [False, True], ids=["tars", "folders"])
@pytest.mark.parametrize("change", list(SA1B_CHANGES))
def test_a_changed_sa1b_source_is_rebuilt(tmp_path, change, extracted):
    root = tmp_path / "src"
    write_sa1b(root, SA1B_LINES, SA1B_TARS, extracted)
    out = build(tmp_path / "out", *sa1b_options(root))
    before = published_files(out)
    lines, tars = SA1B_CHANGES[change](SA1B_LINES, SA1B_TARS)
    if extracted:
        for stem in tars:
            for member in (root / "sa1b" / stem).iterdir():
                member.unlink()
    write_sa1b(root, lines, tars, extracted)
    after = published_files(build(out, *sa1b_options(root)))
    fresh = published_files(build(tmp_path / "fresh", *sa1b_options(root)))
    assert after == fresh
    assert after != before


@pytest.mark.parametrize("with_tars", [False, True], ids=["captions-alone", "with-tars"])
@pytest.mark.parametrize("change", list(SA1B_CHANGES))
def test_a_changed_source_rebuilds_reference_mode_units(tmp_path, change, with_tars):
    """Reference mode reads the captions, and the tars only when they are given (sizes, tar order)."""
    root = tmp_path / "src"
    write_sa1b(root, SA1B_LINES, SA1B_TARS, extracted=False)
    options = ["--sa1b-captions-source", str(root / "captions"), "--sa1b-images", "reference",
               "--configs", "sa1b-en-single", "sa1b-en-multi"]
    if with_tars:
        options += ["--sa1b-images-source", str(root / "sa1b")]
    out = build(tmp_path / "out", *options)
    before = published_files(out)
    lines, tars = SA1B_CHANGES[change](SA1B_LINES, SA1B_TARS)
    write_sa1b(root, lines, tars, extracted=False)
    after = published_files(build(out, *options))
    assert after == published_files(build(tmp_path / "fresh", *options))
    # A new image in a tar changes no reference row when the tars are not read, and its size when they are.
    assert (after == before) == (change == "changed-tar" and not with_tars)


def test_a_changed_tar_rebuilds_only_the_units_reading_it(tmp_path):
    from svitpipe.publish.parquet_layout import ParquetLayout
    from svitpipe.publish.units import make_builder, plan_units, unit_fingerprint

    root = tmp_path / "src"
    write_sa1b(root, SA1B_LINES, SA1B_TARS, extracted=False)
    kwargs = {"sa1b_captions_source": str(root / "captions"), "sa1b_images_source": str(root / "sa1b"),
              "index_dir": str(tmp_path / "index")}

    def fingerprints(config):
        units = plan_units(make_builder(config, kwargs))
        return {unit.key: unit_fingerprint(unit, kwargs, ParquetLayout()) for unit in units}

    single, multi = fingerprints("sa1b-en-single"), fingerprints("sa1b-en-multi")
    write_sa1b_images_source(root / "sa1b", {"sa_000001": [("sa_3.jpg", JPEG[8]), *SA1B_TARS["sa_000001"][1:]]})
    changed_single, changed_multi = fingerprints("sa1b-en-single"), fingerprints("sa1b-en-multi")
    assert changed_single["sa_000000"] == single["sa_000000"] and changed_single["sa_000001"] != single["sa_000001"]
    # Both multi-image lines read sa_000001: the first line's unit (sa_000000) reads it too.
    assert all(changed_multi[key] != multi[key] for key in multi)


# --------------------------------------------------------------------------
# 6. Extracted folders: only regular files are read
# --------------------------------------------------------------------------

def special_entries(folder: Path, names: dict) -> None:
    """Replace files in ``folder`` by what ``names`` says: fifo, directory, /dev/zero link, link to a file, a
    sparse 300 MB file."""
    for name, kind in names.items():
        path = folder / name
        if path.exists() or path.is_symlink():
            path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "directory":
            path.mkdir()
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        elif kind == "link-to-file":
            target = folder.parent / f"linked-{name}"
            target.write_bytes(JPEG[5])
            path.symlink_to(target)
        elif kind == "sparse-300-mb":
            with open(path, "wb") as f:
                f.write(JPEG[6][:100])
                f.truncate(300 << 20)


SPECIAL = {"2.jpg": "fifo", "3.jpg": "directory", "4.jpg": "dev-zero", "5.jpg": "link-to-file",
           "6.jpg": "sparse-300-mb"}


def test_svit_folders_read_only_regular_files(tmp_path):
    write_svit_source(tmp_path / "svit", {"detail_description": [svit_record(n) for n in range(1, 7)]},
                      {"VG_100K": {f"{n}.jpg": JPEG[n] for n in range(1, 7)}, "VG_100K_2": {}}, extracted=True)
    special_entries(tmp_path / "svit" / "raw" / "VG_100K", SPECIAL)
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record="skip")
    rows = {row["id"]: row for row in stream_rows(builder)}
    assert sorted(rows) == ["1", "5"]
    assert rows["5"]["image"]["bytes"] == JPEG[5]  # a link to a regular file is followed
    ledger = builder.ledger
    assert ledger.skipped == Counter({"not-a-regular-file": 3, "image-too-large": 1}) and ledger.is_balanced()
    messages = " ".join(ledger.samples["not-a-regular-file"])
    assert "is a FIFO" in messages and "is a directory" in messages and "is a device" in messages
    assert "max_image_bytes=268435456" in ledger.samples["image-too-large"][0]


def test_sa1b_folders_read_only_regular_files(tmp_path):
    members = [(f"sa_{n}.jpg", JPEG[n]) for n in range(1, 7)]
    write_sa1b_images_source(tmp_path / "sa1b", {"sa_000000": members}, extracted=True)
    special_entries(tmp_path / "sa1b" / "sa_000000", {f"sa_{name}": kind for name, kind in SPECIAL.items()})
    lines = [caption(f"sa_000000/sa_{n}.jpg") for n in range(1, 7)]
    write_sa1b_captions_source(tmp_path / "captions", {SA1B_CAPTION_FILES["sa1b-en-single"]: lines})
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_captions_source=str(tmp_path / "captions"),
                          sa1b_images_source=str(tmp_path / "sa1b"), on_bad_record="skip")
    assert sorted(row["id"] for row in stream_rows(builder)) == ["1", "5"]
    assert builder.ledger.skipped == Counter({"not-a-regular-file": 3, "image-too-large": 1})


def test_a_folder_entry_that_is_not_a_file_raises_naming_it(tmp_path):
    from svitpipe.bad_records import BadRecordError

    write_svit_source(tmp_path / "svit", {"detail_description": [svit_record(1)]},
                      {"VG_100K": {"1.jpg": JPEG[1]}, "VG_100K_2": {}}, extracted=True)
    special_entries(tmp_path / "svit" / "raw" / "VG_100K", {"1.jpg": "fifo"})
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"))
    with pytest.raises(BadRecordError, match=r"not-a-regular-file: .*VG_100K/1\.jpg is a FIFO"):
        stream_rows(builder)


# --------------------------------------------------------------------------
# 13. JSON elements: linear scanning, and a bound with a clear error
# --------------------------------------------------------------------------

def test_a_20_mb_string_reads_whole_at_any_chunk_size():
    from svitpipe.svit.json_array_reader import iter_json_array

    text = ("0123456789\\\"" * ((20 << 20) // 12))
    data = b'[{"a": "' + text.encode() + b'"}, "' + text[:1000].encode() + b'", 1]'
    for chunk_size in ((1 << 16) + 1, 1 << 20):
        elements = list(iter_json_array(io.BytesIO(data), chunk_size=chunk_size))
        assert [element.index for element in elements] == [0, 1, 2]
        assert elements[0].value == {"a": text.replace('\\"', '"')}
        assert elements[1].value == text[:1000].replace('\\"', '"') and elements[2].value == 1


def test_an_element_over_max_element_bytes_stops_the_build_naming_file_and_element(tmp_path):
    records = [svit_record(1), svit_record(2, "x" * 500), svit_record(3)]
    write_svit_source(tmp_path / "svit", {"detail_description": records},
                      {"VG_100K": {f"{n}.jpg": JPEG[n] for n in (1, 2, 3)}, "VG_100K_2": {}})
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"),
                          on_bad_record="skip", max_element_bytes=300)
    with pytest.raises(ValueError) as caught:
        stream_rows(builder)
    message = str(caught.value)
    assert "detail_description.zip" in message and "element 1 is larger than max_element_bytes=300" in message
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"),
                          on_bad_record="skip", max_element_bytes=2000)
    assert len(stream_rows(builder)) == 3


@pytest.mark.parametrize("field", ["max_element_bytes", "max_image_bytes"])
@pytest.mark.parametrize("value", [0, -1, "10", 1.5])
def test_size_bounds_must_be_positive_integers(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        new_builder(tmp_path / "cache", "description", **{field: value})


# --------------------------------------------------------------------------
# 15. A tiny archive holding a 1.5 GiB member: refused by its declared size, in bounded memory
# --------------------------------------------------------------------------

HUGE = 3 << 29  # 1.5 GiB
_MIB = 1 << 20


def deflated_with_zeros(prefix: bytes, zeros: int, suffix: bytes) -> tuple[bytes, int]:
    """Raw deflate of ``prefix + zeros * b"\\0" + suffix`` and its CRC-32, without holding the zeros: after a full
    flush the compressor starts afresh, so one MiB of zeros compresses to the same block every time."""
    assert zeros % _MIB == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(suffix) + compressor.flush()
    crc = zlib.crc32(prefix)
    mib = bytes(_MIB)
    for _ in range(zeros // _MIB):
        crc = zlib.crc32(mib, crc)
    return head + block * (zeros // _MIB) + tail, zlib.crc32(suffix, crc)


def zip_with_huge_member(path: Path, small: dict, huge_name: str) -> None:
    """A zip of stored ``small`` members and one deflated member of 1.5 GiB of zeros (a few MB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in small.items():
            archive.writestr(name, data)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    end = min(info.header_offset for info in infos) + sum(
        30 + len(info.filename) + len(info.extra) + info.compress_size for info in infos)
    data, crc = deflated_with_zeros(b"", HUGE, b"")
    name = huge_name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), HUGE, len(name), 0) + name
    central = b""
    for info in infos:
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, info.CRC, info.compress_size,
                               info.file_size, len(info.filename), 0, 0, 0, 0, 0, info.header_offset)
        central += info.filename.encode()
    central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), HUGE, len(name),
                           0, 0, 0, 0, 0, end) + name
    start = end + len(local) + len(data)
    count = len(infos) + 1
    path.write_bytes(raw[:end] + local + data + central
                     + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), start, 0))


def gzipped_tar_with_huge_member(path: Path, small: list, huge_name: str) -> None:
    """An SA-1B-named tar, gzip-compressed (tarfile reads it transparently), whose last member is 1.5 GiB of
    zeros."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in small:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        prefix = buffer.getvalue()[: buffer.tell()]
    info = tarfile.TarInfo(huge_name)
    info.size = HUGE
    deflated, crc = deflated_with_zeros(prefix + info.tobuf(tarfile.USTAR_FORMAT), HUGE, bytes(1024))
    total = len(prefix) + 512 + HUGE + 1024
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    path.write_bytes(gzip_header + deflated + struct.pack("<2L", crc, total & 0xFFFFFFFF))


def peak_python_memory(run) -> tuple:
    """``run()``'s result and the peak of Python allocations during a second call: the first call is not measured,
    so what it imports the first time (torch, when ``datasets`` makes a stream) does not count as reading."""
    import tracemalloc

    run()
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_member_of_1_5_gib_is_refused_by_its_declared_size(tmp_path):
    root = tmp_path / "svit"
    write_svit_source(root, {"detail_description": [svit_record(1), svit_record(2)]},
                      {"VG_100K": {}, "VG_100K_2": {"1.jpg": JPEG[1]}})
    zip_with_huge_member(root / "raw" / "images.zip", {"VG_100K/3.jpg": JPEG[3]}, "VG_100K/2.jpg")
    assert (root / "raw" / "images.zip").stat().st_size < 4 * _MIB
    with zipfile.ZipFile(root / "raw" / "images.zip") as archive:
        assert archive.getinfo("VG_100K/2.jpg").file_size == HUGE
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(root), on_bad_record="skip")
    rows, peak = peak_python_memory(lambda: stream_rows(builder))
    assert [row["id"] for row in rows] == ["1"]
    assert builder.ledger.skipped == Counter({"image-too-large": 1})
    assert "images.zip::VG_100K/2.jpg is 1610612736 bytes" in builder.ledger.samples["image-too-large"][0]
    assert peak < 64 * _MIB, peak


def test_a_tar_member_of_1_5_gib_is_refused_by_its_declared_size(tmp_path):
    (tmp_path / "sa1b").mkdir()
    gzipped_tar_with_huge_member(tmp_path / "sa1b" / "sa_000000.tar", [("sa_1.jpg", JPEG[1])], "sa_2.jpg")
    assert (tmp_path / "sa1b" / "sa_000000.tar").stat().st_size < 4 * _MIB
    lines = [caption("sa_000000/sa_1.jpg"), caption("sa_000000/sa_2.jpg")]
    write_sa1b_captions_source(tmp_path / "captions", {SA1B_CAPTION_FILES["sa1b-en-single"]: lines})
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_captions_source=str(tmp_path / "captions"),
                          sa1b_images_source=str(tmp_path / "sa1b"), on_bad_record="skip")
    rows, peak = peak_python_memory(lambda: stream_rows(builder))
    assert [row["id"] for row in rows] == ["1"]
    assert builder.ledger.skipped == Counter({"image-too-large": 1})
    assert peak < 64 * _MIB, peak


# --------------------------------------------------------------------------
# 17. What the header check catches
# --------------------------------------------------------------------------

def encoded(image_format: str, size=(40, 24), **options) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", size, (200, 40, 40)).save(buffer, image_format, **options)
    return buffer.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(encoded("JPEG", (8, 8)))
    frame = data.find(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">2H", height, width)
    return bytes(data)


PNG, GIF, JPEG_SMALL = encoded("PNG"), encoded("GIF"), encoded("JPEG")
_SOS = JPEG_SMALL.find(b"\xff\xda")
_SCAN = _SOS + 2 + int.from_bytes(JPEG_SMALL[_SOS + 2 : _SOS + 4], "big")


def eps() -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("L", (8, 8)).save(buffer, "EPS")
    return buffer.getvalue()


def png_with_bad_idat_crc() -> bytes:
    data = bytearray(PNG)
    idat = data.find(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    data[idat + 4 + length] ^= 0xFF  # the first CRC byte
    return bytes(data)


NOT_IMAGES = [
    ("jpeg-header-only", JPEG_SMALL[:_SOS] + b"\xff\xd9", "corrupt-image", "no scan data"),
    ("jpeg-scan-header-no-data", JPEG_SMALL[:_SCAN] + b"\xff\xd9", "corrupt-image", "no scan data"),
    ("half-a-png", PNG[: len(PNG) // 2], "corrupt-image", "PNG is truncated"),
    ("png-without-iend", PNG[:-12], "corrupt-image", "before its IEND chunk"),
    ("png-bad-idat-crc", png_with_bad_idat_crc(), "corrupt-image", "wrong CRC"),
    ("gif-without-trailer", GIF[:-1], "corrupt-image", "before its trailer"),
    ("half-a-gif", GIF[: len(GIF) // 2], "corrupt-image", "GIF is truncated"),
    ("eps", eps(), "corrupt-image", "not a JPEG, PNG, GIF, WebP, BMP or TIFF image"),
    ("jpeg-declaring-13000x13000", jpeg_declaring(13000, 13000), "image-too-large",
     "more than Pillow's decompression-bomb limit"),
]


@pytest.mark.parametrize("check", ["header", "decode"])
@pytest.mark.parametrize("name, data, reason, detail", NOT_IMAGES, ids=[case[0] for case in NOT_IMAGES])
def test_the_header_check_catches(name, data, reason, detail, check):
    from svitpipe.image_checks import CorruptImage, inspect_image

    with pytest.raises(CorruptImage) as caught:
        inspect_image(data, check)
    assert caught.value.reason == reason
    assert check == "decode" or detail in str(caught.value)  # decoding may stop first, with its own words


@pytest.mark.parametrize("name, data", [("png", PNG), ("gif", GIF), ("jpeg", JPEG_SMALL)], ids=["png", "gif", "jpeg"])
def test_every_cut_of_an_image_is_caught_by_the_header_check(name, data):
    from svitpipe.image_checks import CorruptImage, inspect_image

    assert inspect_image(data) == (40, 24)
    passed = []
    for cut in range(1, len(data)):
        try:
            inspect_image(data[:cut])
            passed.append(cut)
        except CorruptImage:
            pass
    assert passed == []


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "WEBP", "BMP", "TIFF", "JPEG"])
def test_the_formats_upstream_may_hold_pass(image_format):
    from svitpipe.image_checks import inspect_image

    assert inspect_image(encoded(image_format)) == (40, 24)


def test_images_a_header_check_refuses_are_counted_bad_records_of_a_build(tmp_path):
    images = {f"{n}.jpg": data for n, (_, data, _, _) in enumerate(NOT_IMAGES, start=2)}
    records = [svit_record(n) for n in range(1, len(NOT_IMAGES) + 2)]
    write_svit_source(tmp_path / "svit", {"detail_description": records},
                      {"VG_100K": {"1.jpg": JPEG[1], **images}, "VG_100K_2": {}})
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record="skip")
    assert [row["id"] for row in stream_rows(builder)] == ["1"]
    assert builder.ledger.skipped == Counter({"corrupt-image": len(NOT_IMAGES) - 1, "image-too-large": 1})


def test_the_card_states_the_pixel_limit():
    from svitpipe.publish.card import image_checks_statement

    assert f"{PIL.Image.MAX_IMAGE_PIXELS:,}" in image_checks_statement()


# --------------------------------------------------------------------------
# 18. EXIF-rotated JPEGs: sizes and regions in the frame a user decodes
# --------------------------------------------------------------------------

def rotated_jpeg(orientation: int = 6) -> bytes:
    """64x32 as stored, EXIF ``orientation``; a red rectangle over the stored box [0.1, 0.2, 0.3, 0.6]."""
    image = PIL.Image.new("RGB", (64, 32), (255, 255, 255))
    image.paste((255, 0, 0), (6, 6, 19, 19))  # x 0.1-0.3, y 0.2-0.6 of 64x32, a little inside
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_an_exif_rotated_svit_image_has_sizes_and_regions_of_the_decoded_frame(tmp_path):
    import datasets

    text = "The <st>red patch<ed> [0.1, 0.2, 0.3, 0.6] is here."
    record = {"image_id": 1, "conversations": [{"content": [{"from": "user", "value": "Where?"},
                                                            {"from": "gpt", "value": text}]}]}
    write_svit_source(tmp_path / "svit", {"referring_qa": [record]},
                      {"VG_100K": {"1.jpg": rotated_jpeg(6)}, "VG_100K_2": {}})
    builder = new_builder(tmp_path / "cache", "referring", svit_source=str(tmp_path / "svit"))
    [row] = stream_rows(builder)
    decoded = datasets.Image().decode_example(row["image"])
    assert decoded.size == (row["width"], row["height"]) == (32, 64)
    [region] = row["conversations"][0]["content"][1]["regions"]
    assert row["conversations"][0]["content"][1]["value"] == text  # the upstream text as written
    x1, y1, x2, y2 = region["boxes"][0]
    assert [round(v, 4) for v in region["boxes"][0]] == [0.4, 0.1, 0.8, 0.3]
    centre = (int((x1 + x2) / 2 * row["width"]), int((y1 + y2) / 2 * row["height"]))
    red, green, blue = decoded.convert("RGB").getpixel(centre)
    assert red > 200 and green < 60 and blue < 60
    assert builder.ledger.flagged == Counter({"exif-oriented": 1})


@pytest.mark.parametrize("orientation, size", [(1, (64, 32)), (3, (64, 32)), (6, (32, 64)), (8, (32, 64))])
def test_an_exif_rotated_sa1b_image_has_the_decoded_size(tmp_path, orientation, size):
    import datasets

    write_sa1b_images_source(tmp_path / "sa1b", {"sa_000000": [("sa_1.jpg", rotated_jpeg(orientation))]})
    write_sa1b_captions_source(tmp_path / "captions",
                               {SA1B_CAPTION_FILES["sa1b-en-single"]: [caption("sa_000000/sa_1.jpg")]})
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_captions_source=str(tmp_path / "captions"),
                          sa1b_images_source=str(tmp_path / "sa1b"))
    [row] = stream_rows(builder)
    assert (row["width"], row["height"]) == size == datasets.Image().decode_example(row["image"]).size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_oriented_boxes_follow_the_pixels(orientation):
    """Every orientation: the box moved by oriented_box covers the patch where PIL's exif_transpose puts it."""
    import PIL.ImageOps

    from svitpipe.image_checks import inspect_image_frame, oriented_box

    data = rotated_jpeg(orientation)
    frame = inspect_image_frame(data)
    decoded = PIL.ImageOps.exif_transpose(PIL.Image.open(io.BytesIO(data))).convert("RGB")
    assert decoded.size == (frame.width, frame.height) and frame.orientation == orientation
    x1, y1, x2, y2 = oriented_box([0.1, 0.2, 0.3, 0.6], orientation)
    assert x1 < x2 and y1 < y2
    centre = (int((x1 + x2) / 2 * frame.width), int((y1 + y2) / 2 * frame.height))
    assert decoded.getpixel(centre)[0] > 200 and decoded.getpixel(centre)[1] < 60


# --------------------------------------------------------------------------
# 19. Duplicated tar members, staging folders left by a kill, damaged images.zip, glob characters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("config, extracted", [("sa1b-en-single", False), ("sa1b-en-multi", False)])
def test_a_duplicated_tar_member_gives_its_first_copy_to_every_config(tmp_path, config, extracted):
    members = [("sa_1.jpg", JPEG[1]), ("sa_2.jpg", JPEG[2]), ("sa_1.jpg", JPEG[3])]
    write_sa1b_images_source(tmp_path / "sa1b", {"sa_000000": members})
    image = "sa_000000/sa_1.jpg"
    write_sa1b_captions_source(tmp_path / "captions", {SA1B_CAPTION_FILES[config]: [
        caption([image] if config.endswith("multi") else image)]})
    builder = new_builder(tmp_path / "cache", config, sa1b_captions_source=str(tmp_path / "captions"),
                          sa1b_images_source=str(tmp_path / "sa1b"))
    [row] = stream_rows(builder)
    stored = row["images"][0] if config.endswith("multi") else row["image"]
    assert stored["bytes"] == JPEG[1]


KILLED_INDEX_BUILD = """
import os, sys
from svitpipe.source_index_cache import build_once

def build(staging):
    with open(os.path.join(staging, "records.bin"), "wb") as f:
        f.write(bytes(1 << 16))
    os._exit(9)  # killed midway: no rename, no clean-up

build_once(sys.argv[1], build)
"""


def test_a_staging_folder_left_by_a_killed_index_build_is_removed_by_the_next_build(tmp_path):
    from svitpipe.source_index_cache import SUMMARY_FILE, build_once

    index = tmp_path / "index" / "records-0123456789abcdef"
    done = subprocess.run([sys.executable, "-c", KILLED_INDEX_BUILD, str(index)], cwd=REPO_ROOT)
    assert done.returncode == 9
    [left] = [path for path in index.parent.iterdir()]
    assert left.name.startswith(".staging.") and (left / "records.bin").exists()

    def build(staging):
        Path(staging, SUMMARY_FILE).write_text("{}")

    build_once(str(index), build)
    assert sorted(path.name for path in index.parent.iterdir()) == [index.name]


def test_a_running_builds_staging_folder_is_kept(tmp_path):
    from svitpipe.source_index_cache import remove_abandoned_staging

    import socket
    own = tmp_path / f".staging.{socket.gethostname().replace('.', '_')}.{os.getpid()}.records-x-abc"
    other_host = tmp_path / ".staging.elsewhere.1.records-x-abc"
    own.mkdir()
    other_host.mkdir()
    assert remove_abandoned_staging(str(tmp_path)) == []
    assert own.exists() and other_host.exists()


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_a_damaged_images_zip_is_named(tmp_path, policy):
    from svitpipe.bad_records import BadRecordError

    write_svit_source(tmp_path / "svit", {"detail_description": [svit_record(1), svit_record(2)]},
                      {"VG_100K": {"1.jpg": JPEG[1]}, "VG_100K_2": {"2.jpg": JPEG[2]}})
    damaged = tmp_path / "svit" / "raw" / "images.zip"
    damaged.write_bytes(b"not a zip at all" * 64)
    out = tmp_path / "out"
    code = upload.main(["--svit-source", str(tmp_path / "svit"), "--configs", "description", "--local-dir", str(out),
                        "--on-bad-record", policy, "--retries", "0"])
    if policy == "raise":
        assert code == 1
        return
    assert code == 0
    builder = new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit"), on_bad_record=policy)
    assert [row["id"] for row in stream_rows(builder)] == ["2"]
    [message] = builder.ledger.samples["damaged-zip"]
    assert str(damaged) in message and "File is not a zip file" in message
    with pytest.raises(BadRecordError, match=f"{damaged}.*File is not a zip file"):
        stream_rows(new_builder(tmp_path / "cache", "description", svit_source=str(tmp_path / "svit")))


def test_a_local_dir_with_glob_characters_builds_and_verifies(tmp_path):
    out = tmp_path / "out[1]*?" / "svit-internvl"
    assert upload.main(["--sample", "--configs", "description", "sa1b-en-single", "--local-dir", str(out)]) == 0
    assert sorted(path.name for path in (out / "data").iterdir()) == ["description", "sa1b-en-single"]
    assert list((out / "data" / "description").glob("train-*.parquet"))
