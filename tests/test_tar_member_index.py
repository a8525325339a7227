"""The tar member index (one pass over a tar's headers) and reading members by offset from it
(``svitpipe.sa1b.tar_member_index``, ``svitpipe.sa1b.image_source``), on real tars written with ``tarfile``."""

from __future__ import annotations

import io
import tarfile

import pytest

from svitpipe.bad_records import DAMAGED_TAR, MISSING_IMAGE, MISSING_TAR
from svitpipe.sa1b.image_source import ImageNotAvailable, SA1BImageSource
from svitpipe.sa1b.tar_member_index import build_tar_member_index, load_or_build_tar_member_index

LONG_FOLDER = "very/" * 30  # a member name over 100 characters needs a GNU or pax long-name header


def write_tar(path, members, tar_format=tarfile.PAX_FORMAT):
    """``members``: ``(name, bytes)`` in order; directories for names ending with ``/``."""
    with tarfile.open(path, "w", format=tar_format) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def image_bytes(seed: int, size: int) -> bytes:
    return bytes((seed * 7 + i) % 251 for i in range(size))


MEMBERS = [("sa_3.jpg", image_bytes(3, 5000)), ("sa_3.json", b"{}"), ("folder/", b""),
           (f"./{LONG_FOLDER}sa_1.jpg", image_bytes(1, 70000)), ("sa_2.jpg", b"")]


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT],
                         ids=["gnu", "pax", "ustar"])
def test_index_maps_file_names_to_their_data(tmp_path, tar_format):
    members = MEMBERS if tar_format != tarfile.USTAR_FORMAT else [m for m in MEMBERS if LONG_FOLDER not in m[0]]
    path = write_tar(tmp_path / "sa_000001.tar", members, tar_format)
    index = build_tar_member_index(str(path))
    expected = [(name.rsplit("/", 1)[-1], data) for name, data in members if not name.endswith("/")]
    assert list(index.members) == [name for name, _ in expected]
    assert index.damage is None
    raw = path.read_bytes()
    for name, data in expected:
        offset, size = index.members[name]
        assert raw[offset:offset + size] == data, name


@pytest.mark.parametrize(
    "cut, kept",
    [(lambda size, offsets: offsets["sa_1.jpg"][0] + 100, ["sa_3.jpg", "sa_3.json"]),  # inside sa_1.jpg's data
     (lambda size, offsets: offsets["sa_2.jpg"][0], ["sa_3.jpg", "sa_3.json", "sa_1.jpg", "sa_2.jpg"])],  # no end
    ids=["inside-data", "no-end-block"],
)
def test_a_cut_tar_is_indexed_up_to_the_damage(tmp_path, cut, kept):
    whole = write_tar(tmp_path / "whole.tar", MEMBERS, tarfile.GNU_FORMAT)
    offsets = build_tar_member_index(str(whole)).members
    raw = whole.read_bytes()
    cut_path = tmp_path / "sa_000009.tar"
    cut_path.write_bytes(raw[: cut(len(raw), offsets)])
    index = build_tar_member_index(str(cut_path))
    assert list(index.members) == kept
    assert index.damage is not None and index.last_good == kept[-1]


def test_a_file_name_seen_twice_keeps_its_first_member(tmp_path):
    path = write_tar(tmp_path / "sa_000002.tar", [("sa_5.jpg", b"first"), ("again/sa_5.jpg", b"second")])
    index = build_tar_member_index(str(path))
    offset, size = index.members["sa_5.jpg"]
    assert path.read_bytes()[offset:offset + size] == b"first"


def test_not_a_tar_is_damage_before_the_first_member(tmp_path):
    path = tmp_path / "sa_000003.tar"
    path.write_bytes(b"this is not a tar" * 100)
    index = build_tar_member_index(str(path))
    assert index.members == {} and index.damage and index.last_good is None


def test_cached_index_equals_a_fresh_one(tmp_path):
    path = write_tar(tmp_path / "sa_000004.tar", MEMBERS)
    cached = load_or_build_tar_member_index(str(path), str(tmp_path / "index"))
    again = load_or_build_tar_member_index(str(path), str(tmp_path / "index"))
    assert cached == again == build_tar_member_index(str(path))
    assert len(list((tmp_path / "index").iterdir())) == 1


def test_source_reads_members_by_offset_with_bounded_open_files(tmp_path):
    root = tmp_path / "sa1b"
    root.mkdir()
    for number in range(3):
        write_tar(root / f"sa_00000{number}.tar", [(f"sa_{number}{k}.jpg", image_bytes(number + k, 3000 + k))
                                                   for k in range(4)])
    source = SA1BImageSource(str(root), str(tmp_path / "index"), max_open=2)
    for round_ in range(2):
        for number in range(3):
            for k in range(4):
                assert source.read(f"sa_00000{number}", f"sa_{number}{k}.jpg") == image_bytes(number + k, 3000 + k)
                assert source.open_files <= 2
    assert source.read("sa_000001", "sa_12.jpg", limit=10) == image_bytes(3, 10)
    with pytest.raises(ImageNotAvailable) as missing:
        source.read("sa_000001", "sa_99.jpg")
    assert missing.value.reason == MISSING_IMAGE and "sa_99.jpg" in missing.value.detail
    with pytest.raises(ImageNotAvailable) as no_tar:
        source.read("sa_000007", "sa_1.jpg")
    assert no_tar.value.reason == MISSING_TAR and "sa_000007" in no_tar.value.detail
    source.close()
    assert source.open_files == 0


def test_source_reports_members_lost_to_damage(tmp_path):
    root = tmp_path / "sa1b"
    root.mkdir()
    whole = write_tar(tmp_path / "whole.tar", MEMBERS, tarfile.GNU_FORMAT)
    offsets = build_tar_member_index(str(whole)).members
    (root / "sa_000005.tar").write_bytes(whole.read_bytes()[: offsets["sa_1.jpg"][0] + 100])
    source = SA1BImageSource(str(root), str(tmp_path / "index"))
    assert source.read("sa_000005", "sa_3.jpg") == MEMBERS[0][1]
    with pytest.raises(ImageNotAvailable) as lost:
        source.read("sa_000005", "sa_1.jpg")
    assert lost.value.reason == DAMAGED_TAR and "after member sa_3.json" in lost.value.detail


def test_index_agrees_with_tarfile_on_the_sample_tars():
    from svitpipe.sample import SAMPLE_DIR

    for path in sorted((SAMPLE_DIR / "sa1b").glob("sa_*.tar")):
        with tarfile.open(path) as archive:
            expected = {info.name.rsplit("/", 1)[-1]: (info.offset_data, info.size)
                        for info in archive.getmembers() if info.isreg()}
        index = build_tar_member_index(str(path))
        assert index.members == expected and index.damage is None, path


def test_a_corrupt_header_is_damage_after_the_members_before_it(tmp_path):
    whole = write_tar(tmp_path / "whole.tar", MEMBERS, tarfile.GNU_FORMAT)
    offsets = build_tar_member_index(str(whole)).members
    raw = bytearray(whole.read_bytes())
    header = offsets["sa_3.json"][0] - 512
    raw[header + 130] ^= 0x01  # a size digit changes: the checksum no longer matches
    (tmp_path / "sa_000006.tar").write_bytes(bytes(raw))
    index = build_tar_member_index(str(tmp_path / "sa_000006.tar"))
    assert list(index.members) == ["sa_3.jpg"] and "corrupt header" in index.damage and index.last_good == "sa_3.jpg"
