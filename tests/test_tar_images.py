"""Reading SA-1B tars member by member (``svitpipe.sa1b.tar_images.iter_tar_members``): the header walk
(``walk_tar_headers``) on tars written with ``tarfile`` and damaged by cutting or overwriting bytes, and the local
fast path (headers walked by offset, one read per wanted member) against the ``tarfile`` stream path on the same
tars: same members, same bytes, same ``DamagedTar``."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from svitpipe.image_checks import ImageTooLarge
from svitpipe.locations import TarLocation
from svitpipe.sa1b.tar_images import DamagedTar, _streamed_tar_members, iter_tar_members
from svitpipe.sa1b.tar_member_index import (
    BAD_CHECKSUM,
    DATA_CUT_SHORT,
    INVALID_HEADER,
    NO_END,
    TRUNCATED_HEADER,
    TarWalkDamage,
    walk_tar_headers,
)

LONG_FOLDER = "very/" * 30  # over 100 characters: a GNU long-name or pax path header, or a ustar prefix
GARBAGE = bytes(range(1, 256)) * 3


def data_of(seed: int, size: int) -> bytes:
    return bytes((seed * 13 + i) % 251 for i in range(size))


def tar_bytes(members, tar_format=tarfile.GNU_FORMAT, pax_headers: Optional[dict] = None) -> bytes:
    """``members``: ``(path, bytes)``, in order; ``pax_headers``: path -> pax records of that member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.pax_headers = dict((pax_headers or {}).get(path, {}))
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tarfile_members(raw: bytes) -> list:
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return [info for info in archive.getmembers() if info.isreg()]


def with_field(raw: bytes, header: int, start: int, value: bytes) -> bytes:
    """``raw`` with a header field overwritten and the header's checksum made right again."""
    block = bytearray(raw[header:header + 512])
    block[start:start + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return raw[:header] + bytes(block) + raw[header + 512:]


def overwrite(raw: bytes, at: int, data: bytes) -> bytes:
    return raw[:at] + data + raw[at + len(data):]


def walk(raw: bytes):
    """``([(path, data)], damage or None)`` of a header walk over ``raw``."""
    found = []
    try:
        for path, offset, size in walk_tar_headers(lambda at, count: raw[at:at + count], len(raw)):
            found.append((path, raw[offset:offset + size]))
    except TarWalkDamage as damage:
        return found, damage
    return found, None


PLAIN = [("sa_1.jpg", data_of(1, 3000)), ("sa_1.json", b"{}"), ("sa_2.jpg", data_of(2, 1024)),
         ("sa_3.jpg", b"")]
PLAIN_TAR = tar_bytes(PLAIN)
PLAIN_INFOS = tarfile_members(PLAIN_TAR)  # sa_2.jpg's header is PLAIN_INFOS[2].offset
LONG = [(f"./{LONG_FOLDER}sa_4.jpg", data_of(4, 700)), ("sa_5.jpg", data_of(5, 600))]


def pax_size_only() -> bytes:
    """A pax ``size`` record the member's own (zeroed) size field does not repeat."""
    raw = tar_bytes([("sa_6.jpg", data_of(6, 900))], tarfile.PAX_FORMAT, {"sa_6.jpg": {"size": "900"}})
    header = tarfile_members(raw)[0].offset_data - 512
    return with_field(raw, header, 124, b"00000000000\0")


def base_256_size() -> bytes:
    raw = tar_bytes([("sa_7.jpg", data_of(7, 1500)), ("sa_8.jpg", b"x")])
    return with_field(raw, 0, 124, b"\x80" + (1500).to_bytes(11, "big"))


@dataclass(frozen=True)
class WalkCase:
    name: str
    raw: Callable[[], bytes]
    found: list  # (path, data) the walk yields, in order
    damage: Optional[str] = None  # TarWalkDamage.kind
    damage_at: Optional[int] = None  # its offset


WALK_CASES = [
    WalkCase("ustar", lambda: tar_bytes(PLAIN, tarfile.USTAR_FORMAT), PLAIN),
    WalkCase("ustar-prefix", lambda: tar_bytes(LONG, tarfile.USTAR_FORMAT), LONG),
    WalkCase("gnu-long-name", lambda: tar_bytes(LONG, tarfile.GNU_FORMAT), LONG),
    WalkCase("pax-path", lambda: tar_bytes(LONG, tarfile.PAX_FORMAT), LONG),
    WalkCase("pax-size", pax_size_only, [("sa_6.jpg", data_of(6, 900))]),
    WalkCase("base-256-size", base_256_size, [("sa_7.jpg", data_of(7, 1500)), ("sa_8.jpg", b"x")]),
    WalkCase("duplicate-names", lambda: tar_bytes([("sa_9.jpg", b"first"), ("again/sa_9.jpg", b"second")]),
             [("sa_9.jpg", b"first"), ("again/sa_9.jpg", b"second")]),
    WalkCase("bad-checksum", lambda: overwrite(PLAIN_TAR, PLAIN_INFOS[2].offset + 130, b"7"), PLAIN[:2],
             BAD_CHECKSUM, PLAIN_INFOS[2].offset),
    WalkCase("garbage-header", lambda: overwrite(PLAIN_TAR, PLAIN_INFOS[2].offset, GARBAGE[:512]), PLAIN[:2],
             INVALID_HEADER, PLAIN_INFOS[2].offset),
    WalkCase("cut-in-data", lambda: PLAIN_TAR[:PLAIN_INFOS[2].offset_data + 10], PLAIN[:2],
             DATA_CUT_SHORT, PLAIN_INFOS[2].offset),
    WalkCase("cut-in-header", lambda: PLAIN_TAR[:PLAIN_INFOS[2].offset + 200], PLAIN[:2],
             TRUNCATED_HEADER, PLAIN_INFOS[2].offset),
    WalkCase("no-end-blocks", lambda: PLAIN_TAR[:PLAIN_INFOS[3].offset_data], PLAIN, NO_END,
             PLAIN_INFOS[3].offset_data),
    WalkCase("one-end-block", lambda: PLAIN_TAR[:PLAIN_INFOS[3].offset_data + 512], PLAIN),
    WalkCase("empty-file", lambda: b"", [], NO_END, 0),
]


@pytest.mark.parametrize("case", WALK_CASES, ids=lambda case: case.name)
def test_header_walk(case):
    raw = case.raw()
    found, damage = walk(raw)
    assert found == case.found
    assert (damage and damage.kind, damage and damage.offset) == (case.damage, case.damage_at)
    if case.damage is None:
        assert [(info.name, info.size) for info in tarfile_members(raw)] == [(p, len(d)) for p, d in found]


def test_a_member_cut_short_is_named_with_its_declared_size():
    _, damage = walk(PLAIN_TAR[:PLAIN_INFOS[0].offset_data + 100])
    assert (damage.kind, damage.member_path, damage.member_size) == (DATA_CUT_SHORT, "sa_1.jpg", 3000)
    assert "cut short" in damage.problem


# --------------------------------------------------------------------------
# The local fast path against the stream path
# --------------------------------------------------------------------------

WANTED = frozenset({"sa_1.jpg", "sa_2.jpg", "sa_3.jpg", "sa_4.jpg", "sa_5.jpg", "sa_9.jpg"})
MAX_BYTES = 2500  # sa_1.jpg (3000 bytes) is refused by its declared size
MIXED = [("sa_1.jpg", data_of(1, 3000)), ("sa_1.json", data_of(11, 5000)), ("sa_9.jpg", b"first"),
         ("folder/sa_2.jpg", data_of(2, 1024)), (f"{LONG_FOLDER}sa_4.jpg", data_of(4, 700)),
         ("other/sa_9.jpg", b"second"), ("sa_5.jpg", data_of(5, 600)), ("sa_3.jpg", b"")]


def mixed(tar_format):
    raw = tar_bytes(MIXED, tar_format)
    return raw, tarfile_members(raw)


def header_of(infos, position):
    """The offset of a member's own header (after any long-name or pax header before it)."""
    return infos[position].offset_data - 512


DAMAGES = {
    "intact": lambda raw, infos: raw,
    "cut-in-refused-member": lambda raw, infos: raw[:infos[0].offset_data + 10],
    "cut-in-unwanted-member": lambda raw, infos: raw[:infos[1].offset_data + 4000],
    "cut-in-wanted-member": lambda raw, infos: raw[:infos[3].offset_data + 10],
    "cut-in-header": lambda raw, infos: raw[:infos[3].offset + 100],
    "cut-between-members": lambda raw, infos: raw[:infos[3].offset],
    "no-end-blocks": lambda raw, infos: raw[:infos[7].offset_data],
    "bad-checksum": lambda raw, infos: overwrite(raw, infos[3].offset + 130, b"7"),
    "garbage-header": lambda raw, infos: overwrite(raw, infos[3].offset, GARBAGE[:512]),
    "bad-header-after-long-name": lambda raw, infos: overwrite(raw, header_of(infos, 4) + 130, b"7"),
    "garbage-first-header": lambda raw, infos: overwrite(raw, 0, GARBAGE[:512]),
    "cut-in-first-header": lambda raw, infos: raw[:300],
    "empty-file": lambda raw, infos: b"",
}


def outcome(members):
    """``([(file name, bytes or refusal)], DamagedTar message or None, its last_good)``."""
    found = []
    try:
        for name, data in members:
            found.append((name, data if isinstance(data, bytes) else f"refused: {data}"))
    except DamagedTar as damage:
        return found, str(damage), damage.last_good
    return found, None, None


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
@pytest.mark.parametrize("damage", DAMAGES)
def test_the_local_path_reads_what_the_stream_path_reads(tmp_path, damage, tar_format):
    raw, infos = mixed(tar_format)
    path = tmp_path / "sa_000001.tar"
    path.write_bytes(DAMAGES[damage](raw, infos))
    location = TarLocation("sa_000001", "tar", str(path))
    local = outcome(iter_tar_members(location, WANTED, max_image_bytes=MAX_BYTES))
    streamed = outcome(_streamed_tar_members(location, WANTED, None, MAX_BYTES))
    assert local == streamed
    found, message, _ = local
    assert (message is None) == (damage == "intact")
    if damage == "intact":
        assert found[0][0] == "sa_1.jpg" and found[0][1].startswith("refused: ")
        assert found[1:] == [("sa_9.jpg", b"first"), ("sa_2.jpg", data_of(2, 1024)), ("sa_4.jpg", data_of(4, 700)),
                             ("sa_5.jpg", data_of(5, 600)), ("sa_3.jpg", b"")]


def test_a_missing_tar_is_damage_before_its_first_member(tmp_path):
    location = TarLocation("sa_000001", "tar", str(tmp_path / "sa_000001.tar"))
    with pytest.raises(DamagedTar) as caught:
        next(iter_tar_members(location, WANTED))
    assert caught.value.last_good is None and "No such file" in caught.value.problem
    assert outcome(iter_tar_members(location, WANTED)) == outcome(_streamed_tar_members(location, WANTED, None,
                                                                                        MAX_BYTES))


def test_a_compressed_local_tar_is_read_as_a_stream(tmp_path):
    raw, _ = mixed(tarfile.GNU_FORMAT)
    path = tmp_path / "sa_000001.tar"
    path.write_bytes(gzip.compress(raw))
    location = TarLocation("sa_000001", "tar", str(path))
    found, message, _ = outcome(iter_tar_members(location, WANTED, max_image_bytes=MAX_BYTES))
    assert message is None and [name for name, _ in found] == ["sa_1.jpg", "sa_9.jpg", "sa_2.jpg", "sa_4.jpg",
                                                               "sa_5.jpg", "sa_3.jpg"]


def test_a_member_over_the_limit_is_refused_by_its_declared_size(tmp_path):
    raw, infos = mixed(tarfile.GNU_FORMAT)
    path = tmp_path / "sa_000001.tar"
    path.write_bytes(raw)
    found = dict(iter_tar_members(TarLocation("sa_000001", "tar", str(path)), {"sa_1.jpg"}, max_image_bytes=10))
    assert isinstance(found["sa_1.jpg"], ImageTooLarge) and "3000 bytes" in str(found["sa_1.jpg"])
