"""Reading Visual Genome images from local zips: the per-process member tables, the ``os.pread`` reads and their
checks, against what ``zipfile`` reads and raises for the same zip.

Each zip is written by ``zipfile`` in a test folder; damage is done by patching bytes at offsets the zip itself
gives (``ZipInfo.header_offset``, its central directory entry). The ``zipfile`` path is reached through the same
zip copied into fsspec's in-memory filesystem (a remote URL as far as the reader can tell).
"""

from __future__ import annotations

import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import fsspec
import pytest

from svitpipe.locations import ImageLocation
from svitpipe.svit.vg_images import DamagedZip, VGImageReader, total_image_bytes

_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # zipfile's structCentralDir: 46 bytes
_CRC_AT, _COMPRESS_SIZE_AT, _FILE_SIZE_AT = 16, 20, 24  # field offsets in a central directory entry
_MIB = 1 << 20

# image id -> (member name, bytes, compression): stored, deflated, bzip2 (read through zipfile), a folder prefix
MEMBERS = {
    1: ("VG_100K/1.jpg", bytes(range(256)) * 40, zipfile.ZIP_STORED),
    2: ("VG_100K/2.jpg", b"\xff\xd8" + b"deflate me " * 3000, zipfile.ZIP_DEFLATED),
    3: ("VG_100K/3.jpg", os.urandom(5000), zipfile.ZIP_DEFLATED),
    4: ("VG_100K/4.jpg", b"", zipfile.ZIP_STORED),
    5: ("VG_100K/5.jpg", b"bzip2 " * 500, zipfile.ZIP_BZIP2),
    6: ("images/VG_100K/6.jpg", b"under a prefix " * 100, zipfile.ZIP_DEFLATED),
}


def write_zip(path: Path, members: dict = MEMBERS, zip64: bool = False) -> Path:
    """A zip of ``members`` and one non-image member; ``zip64`` gives every member zip64 sizes (an extra field in
    its local header)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", b"not an image")
        for name, data, compression in members.values():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            with archive.open(info, "w", force_zip64=zip64) as member:
                member.write(data)
    return path


def location(url: str, folder: str = "VG_100K") -> tuple[ImageLocation, ...]:
    return (ImageLocation(folder, "zip", url),)


def read_all(url: str, ids=MEMBERS) -> dict:
    with VGImageReader(location(url)) as reader:
        return {image_id: reader.read(image_id) for image_id in ids}


def in_memory(path: Path) -> str:
    url = f"memory://vg-zip-reads/{path.parent.name}/{path.name}"
    with fsspec.open(url, "wb") as file:
        file.write(path.read_bytes())
    return url


def central_entry(raw: bytes, name: str) -> int:
    """The offset of ``name``'s central directory entry."""
    at = raw.index(b"PK\001\002")
    while True:
        fields = _CENTRAL_HEADER.unpack_from(raw, at)
        entry_name = raw[at + _CENTRAL_HEADER.size: at + _CENTRAL_HEADER.size + fields[12]]
        if entry_name == name.encode():
            return at
        at += _CENTRAL_HEADER.size + fields[12] + fields[13] + fields[14]


def patch_central(path: Path, name: str, field_at: int, value: int) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<L", raw, central_entry(bytes(raw), name) + field_at, value)
    path.write_bytes(bytes(raw))


def info_of(path: Path, name: str) -> zipfile.ZipInfo:
    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(name)


def data_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    name_length, extra_length = struct.unpack_from("<2H", raw, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


# --------------------------------------------------------------------------
# The same bytes as zipfile reads
# --------------------------------------------------------------------------

@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64-members"])
def test_local_reads_equal_zipfile_reads_byte_for_byte(tmp_path, zip64):
    path = write_zip(tmp_path / "images.zip", zip64=zip64)
    local = read_all(str(path))
    remote = read_all(in_memory(path))
    with zipfile.ZipFile(path) as archive:
        expected = {image_id: (f"VG_100K/{image_id}.jpg", archive.read(name))
                    for image_id, (name, _, _) in MEMBERS.items()}
    assert local == remote == expected
    assert {image_id: data for image_id, (_, data) in local.items()} == {
        image_id: data for image_id, (_, data, _) in MEMBERS.items()}


def test_a_zip64_central_directory_is_read(tmp_path, monkeypatch):
    # zipfile writes a zip64 end of central directory past 65535 members; a lower limit gets one from a few
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    path = write_zip(tmp_path / "images.zip")
    monkeypatch.undo()
    assert b"PK\006\006" in path.read_bytes() and b"PK\006\007" in path.read_bytes()
    assert read_all(str(path)) == read_all(in_memory(path))
    assert read_all(str(path))[2][1] == MEMBERS[2][1]


def test_members_of_the_other_folder_are_not_found(tmp_path):
    path = write_zip(tmp_path / "images.zip")
    with VGImageReader(location(str(path), "VG_100K_2")) as reader:
        assert [reader.read(image_id) for image_id in MEMBERS] == [None] * len(MEMBERS)


# --------------------------------------------------------------------------
# Member tables kept per process
# --------------------------------------------------------------------------

def test_the_member_table_is_made_once_for_readers_one_after_another(tmp_path):
    url = str(write_zip(tmp_path / "images.zip"))
    with VGImageReader(location(url)) as first:
        assert first.read(2)[1] == MEMBERS[2][1]
        table = first._zips[url].table
    assert total_image_bytes(location(url)) == sum(len(data) for _, data, _ in MEMBERS.values())
    with VGImageReader(location(url)) as second:
        assert second.read(1)[1] == MEMBERS[1][1]
        assert second._zips[url].table is table


def test_a_zip_changed_in_place_is_read_again(tmp_path):
    path = write_zip(tmp_path / "images.zip")
    with VGImageReader(location(str(path))) as first:
        assert first.read(2)[1] == MEMBERS[2][1]
        old_table = first._zips[str(path)].table
    before = path.stat()
    changed = {image_id: (name, data[::-1], compression) for image_id, (name, data, compression) in MEMBERS.items()}
    write_zip(path, changed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))  # a change within the clock's tick
    assert path.stat().st_size == before.st_size
    with VGImageReader(location(str(path))) as second:
        assert {image_id: second.read(image_id)[1] for image_id in MEMBERS} == {
            image_id: data for image_id, (_, data, _) in changed.items()}
        assert second._zips[str(path)].table is not old_table


# --------------------------------------------------------------------------
# Damage: the same DamagedZip as zipfile's reading raises
# --------------------------------------------------------------------------

def flip_a_data_byte(path: Path, name: str) -> None:
    raw = bytearray(path.read_bytes())
    info = info_of(path, name)
    raw[data_offset(bytes(raw), info) + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def garble_the_local_header(path: Path, name: str) -> None:
    raw = bytearray(path.read_bytes())
    raw[info_of(path, name).header_offset: info_of(path, name).header_offset + 4] = b"JUNK"
    path.write_bytes(bytes(raw))


def rename_in_the_local_header(path: Path, name: str) -> None:
    raw = bytearray(path.read_bytes())
    at = info_of(path, name).header_offset + 30 + name.index(".jpg") - 1
    raw[at] = ord("9")
    path.write_bytes(bytes(raw))


def declare_data_past_the_end(path: Path, name: str) -> None:
    """A stored member whose declared sizes run past the end of the file: its data is cut short."""
    past_the_end = path.stat().st_size
    patch_central(path, name, _COMPRESS_SIZE_AT, past_the_end)
    patch_central(path, name, _FILE_SIZE_AT, past_the_end)


def garble_deflated_data(path: Path, name: str) -> None:
    raw = bytearray(path.read_bytes())
    start = data_offset(bytes(raw), info_of(path, name))
    raw[start] = 0xFF  # block type 3: invalid
    path.write_bytes(bytes(raw))


DAMAGES = [
    # (name, damage, image id, what the problem says)
    ("stored-crc-mismatch", flip_a_data_byte, 1, "BadZipFile: Bad CRC-32 for file 'VG_100K/1.jpg'"),
    ("deflated-crc-mismatch", lambda path, name: patch_central(path, name, _CRC_AT, 12345), 2,
     "BadZipFile: Bad CRC-32 for file 'VG_100K/2.jpg'"),
    ("bad-local-header", garble_the_local_header, 2, "BadZipFile: Bad magic number for file header"),
    ("other-name-in-local-header", rename_in_the_local_header, 1, "BadZipFile: File name in directory"),
    ("stored-data-cut-short", declare_data_past_the_end, 1, "EOFError"),
    ("invalid-deflate-data", garble_deflated_data, 3, "error: Error -3 while decompressing data"),
]


@pytest.mark.parametrize("name, damage, image_id, problem", DAMAGES, ids=[case[0] for case in DAMAGES])
def test_a_damaged_member_raises_damaged_zip_naming_the_zip_and_member(tmp_path, name, damage, image_id, problem):
    path = write_zip(tmp_path / "images.zip")
    member = MEMBERS[image_id][0]
    damage(path, member)
    remote_url = in_memory(path)
    raised = {}
    for url in (str(path), remote_url):
        with VGImageReader(location(url)) as reader:
            with pytest.raises(DamagedZip) as caught:
                reader.read(image_id)
            assert reader.read(4) == ("VG_100K/4.jpg", b"")  # the other members stay readable
            assert type(reader._zips[url]).__name__ == ("_LocalZip" if url == str(path) else "_RemoteZip")
        assert (caught.value.url, caught.value.member) == (url, member)
        assert caught.value.problem.startswith(problem)
        assert url in str(caught.value) and member in str(caught.value)
        raised[url] = caught.value.problem
    assert raised[str(path)] == raised[remote_url]


def test_a_deflated_member_inflating_past_its_declared_size_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("VG_100K/7.jpg", "w") as member:
            for _ in range(64):
                member.write(bytes(_MIB))  # 64 MiB of zeros, about 64 KB deflated
    declared = 1000
    patch_central(path, "VG_100K/7.jpg", _FILE_SIZE_AT, declared)
    assert path.stat().st_size < _MIB
    with VGImageReader(location(str(path))) as reader:
        tracemalloc.start()
        try:
            with pytest.raises(DamagedZip) as caught:
                reader.read(7)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert caught.value.member == "VG_100K/7.jpg" and caught.value.url == str(path)
    assert f"inflates to more than the {declared} bytes it declares" in caught.value.problem
    assert peak < 2 * _MIB
