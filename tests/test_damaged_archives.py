"""Damaged archives: SA-1B tars cut short or with a corrupt header, Visual Genome zips cut short or with a damaged
member.

Each case is a private copy of the bundled sample with bytes cut off or overwritten at offsets computed from the
archive itself (``TarInfo.offset``/``offset_data``, ``ZipInfo.header_offset``). Under ``on_bad_record="skip"`` exactly
the rows whose images lie before the damage (or in intact members) are kept and the lines or records lost are counted
under ``damaged-tar`` / ``damaged-zip``; under ``"raise"`` the first one lost raises ``BadRecordError``, naming the
archive and (for a tar) the last member read whole.
"""

from __future__ import annotations

import shutil
import struct
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import (
    SA1B_SAMPLE,
    SVIT_SAMPLE,
    VG_ARCHIVES,
    find_in_chain,
    new_builder,
    prepare,
    sample_caption_lines,
    sample_svit_records,
    stream_rows,
)
from svitpipe.bad_records import BadRecordError
from svitpipe.sa1b.paths import member_file_name, parse_sa1b_image_path

MODES = ["stream", "prepare"]
GARBAGE = bytes(range(1, 256)) * 3


def run(builder, mode: str) -> list[dict]:
    if mode == "stream":
        return stream_rows(builder)
    return prepare(builder).with_format("arrow")[:].to_pylist()


def overwrite(raw: bytes, offset: int, garbage: bytes) -> bytes:
    return raw[:offset] + garbage + raw[offset + len(garbage):]


def check_skips(builder, reason: str, lost: int, archive: Path) -> None:
    ledger = builder.ledger
    assert ledger.skipped == Counter({reason: lost})
    assert ledger.is_balanced(), ledger.summary()
    assert all(str(archive) in message for message in ledger.samples[reason])


def check_raised(error: BaseException, reason: str, named: list) -> None:
    bad = find_in_chain(error, BadRecordError)
    assert bad.reason == reason
    for part in named:
        assert part in str(bad), (part, str(bad))


# --------------------------------------------------------------------------
# SA-1B tars
# --------------------------------------------------------------------------

DAMAGED_TAR = "sa_000000"


@dataclass(frozen=True)
class TarDamage:
    name: str
    at: Callable  # the tar's regular members -> index of the first member damaged
    damage: Callable  # (tar bytes, that member's TarInfo) -> damaged tar bytes
    problem: str  # in the message: what is wrong


def middle_image(infos: list) -> int:
    images = [position for position, info in enumerate(infos) if info.name.endswith(".jpg")]
    return images[len(images) // 2]


TAR_DAMAGES = [
    TarDamage("cut-in-member-data", middle_image, lambda raw, info: raw[: info.offset_data + info.size // 2],
              "unexpected end of data"),
    TarDamage("cut-in-header", middle_image, lambda raw, info: raw[: info.offset + tarfile.BLOCKSIZE // 2],
              "truncated header"),
    TarDamage("cut-between-members", middle_image, lambda raw, info: raw[: info.offset],
              "without an end-of-archive block"),
    TarDamage("garbage-header-block", middle_image,
              lambda raw, info: overwrite(raw, info.offset, GARBAGE[: tarfile.BLOCKSIZE]), "invalid header"),
    TarDamage("bad-header-checksum", middle_image, lambda raw, info: overwrite(raw, info.offset, GARBAGE[:100]),
              "bad checksum"),
    TarDamage("garbage-first-header", lambda infos: 0,
              lambda raw, info: overwrite(raw, info.offset, GARBAGE[: tarfile.BLOCKSIZE]), "before its first member"),
]


def write_damaged_tar(root: Path, case: TarDamage) -> tuple[Path, list]:
    """A copy of the sample tars with ``DAMAGED_TAR`` damaged; its path and the members before the damage."""
    shutil.copytree(SA1B_SAMPLE, root)
    path = root / f"{DAMAGED_TAR}.tar"
    with tarfile.open(path) as archive:
        infos = [info for info in archive.getmembers() if info.isreg()]
    at = case.at(infos)
    path.write_bytes(case.damage(path.read_bytes(), infos[at]))
    return path, [member_file_name(info.name) for info in infos[:at]]


def lost_line_numbers(config_name: str, intact: list) -> tuple[list, list]:
    """``(all line numbers, those with an image in the damaged tar past the damage)``."""
    numbers, lost = [], []
    for number, line in sample_caption_lines(config_name):
        paths = line["image"] if isinstance(line["image"], list) else [line["image"]]
        refs = [parse_sa1b_image_path(path) for path in paths]
        numbers.append(number)
        if any(ref.tar == DAMAGED_TAR and ref.member not in intact for ref in refs):
            lost.append(number)
    return numbers, lost


def tar_builder(tmp_path: Path, config_name: str, policy: str):
    return new_builder(tmp_path / "cache", config_name, sa1b_images_source=str(tmp_path / "sa1b"),
                       on_bad_record=policy)


SA1B_PATHS = ["sa1b-en-single", "sa1b-en-multi"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config_name", SA1B_PATHS)
@pytest.mark.parametrize("case", TAR_DAMAGES, ids=lambda case: case.name)
def test_damaged_tar_keeps_the_rows_before_the_damage(tmp_path, case, config_name, mode):
    path, intact = write_damaged_tar(tmp_path / "sa1b", case)
    numbers, lost = lost_line_numbers(config_name, intact)
    assert lost and len(lost) < len(numbers)
    builder = tar_builder(tmp_path, config_name, "skip")
    rows = run(builder, mode)
    assert sorted(int(row["id"]) for row in rows) == sorted(set(numbers) - set(lost))
    check_skips(builder, "damaged-tar", len(lost), path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config_name", SA1B_PATHS)
@pytest.mark.parametrize("case", TAR_DAMAGES, ids=lambda case: case.name)
def test_damaged_tar_raises_naming_the_tar_and_its_last_good_member(tmp_path, case, config_name, mode):
    path, intact = write_damaged_tar(tmp_path / "sa1b", case)
    _, lost = lost_line_numbers(config_name, intact)
    with pytest.raises(Exception) as caught:
        run(tar_builder(tmp_path, config_name, "raise"), mode)
    last_good = [f"after member {intact[-1]}"] if intact else []
    check_raised(caught.value, "damaged-tar", [str(path), case.problem, *last_good])
    if config_name == "sa1b-en-single":  # one pass: the first line lost is the first past the damage
        assert f"line {lost[0]}:" in str(find_in_chain(caught.value, BadRecordError))


# --------------------------------------------------------------------------
# Visual Genome zips
# --------------------------------------------------------------------------

SVIT_CONFIG = "description"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader: 30 bytes


@dataclass(frozen=True)
class ZipDamage:
    name: str
    archive: str  # images.zip or images2.zip
    damage: Callable  # (zip bytes, its ZipInfos) -> (damaged bytes, member paths no longer readable or None: all)
    problem: str


def cut_before_middle_member(raw: bytes, infos: list):
    return raw[: infos[len(infos) // 2].header_offset + 10], None


def garbage_over_local_header(raw: bytes, infos: list):
    info = infos[len(infos) // 2]
    return overwrite(raw, info.header_offset, GARBAGE[: _LOCAL_HEADER.size]), [info.filename]


def garbage_in_member_data(raw: bytes, infos: list):
    info = infos[len(infos) // 2]
    fields = _LOCAL_HEADER.unpack_from(raw, info.header_offset)
    data = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]  # after the name and the extra field
    return overwrite(raw, data + info.compress_size // 2, GARBAGE[:16]), [info.filename]


ZIP_DAMAGES = [
    ZipDamage("images-zip-cut-short", "images.zip", cut_before_middle_member, "the zip cannot be opened"),
    ZipDamage("images2-zip-cut-short", "images2.zip", cut_before_middle_member, "the zip cannot be opened"),
    ZipDamage("garbage-over-a-local-header", "images.zip", garbage_over_local_header, "Bad magic number"),
    ZipDamage("garbage-in-member-data", "images.zip", garbage_in_member_data, "Bad CRC-32"),
]


def write_damaged_zip(root: Path, case: ZipDamage) -> tuple[Path, set]:
    """A copy of the SVIT sample with one image zip damaged; its path and the member paths that cannot be read."""
    shutil.copytree(SVIT_SAMPLE, root)
    path = root / "raw" / case.archive
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    damaged, lost = case.damage(path.read_bytes(), infos)
    path.write_bytes(damaged)
    return path, set(lost if lost is not None else (info.filename for info in infos))


def lost_records(unreadable: set) -> tuple[list, list]:
    """``(every record's image id, those of the records whose image cannot be read)``, in file order (the sample
    writes one id as a string of digits, and records sharing an id become one row)."""
    folder_of = {}
    for folder, archive_name in VG_ARCHIVES.items():
        with zipfile.ZipFile(SVIT_SAMPLE / "raw" / archive_name) as archive:
            folder_of.update({int(Path(name).stem): folder for name in archive.namelist()})
    ids = [int(record["image_id"]) for record in sample_svit_records(SVIT_CONFIG)]
    return ids, [image_id for image_id in ids if f"{folder_of[image_id]}/{image_id}.jpg" in unreadable]


def zip_builder(tmp_path: Path, policy: str):
    return new_builder(tmp_path / "cache", SVIT_CONFIG, svit_source=str(tmp_path / "svit"), on_bad_record=policy)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ZIP_DAMAGES, ids=lambda case: case.name)
def test_damaged_zip_keeps_the_records_whose_images_are_readable(tmp_path, case, mode):
    path, unreadable = write_damaged_zip(tmp_path / "svit", case)
    ids, lost = lost_records(unreadable)
    assert lost and len(lost) < len(ids)
    builder = zip_builder(tmp_path, "skip")
    rows = run(builder, mode)
    assert sorted(int(row["id"]) for row in rows) == sorted(set(ids) - set(lost))
    check_skips(builder, "damaged-zip", len(lost), path)
    assert all(any(f"/{image_id}.jpg" in message for message in builder.ledger.samples["damaged-zip"])
               for image_id in lost[:5])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ZIP_DAMAGES, ids=lambda case: case.name)
def test_damaged_zip_raises_naming_the_zip_and_the_member(tmp_path, case, mode):
    path, unreadable = write_damaged_zip(tmp_path / "svit", case)
    _, lost = lost_records(unreadable)
    with pytest.raises(Exception) as caught:
        run(zip_builder(tmp_path, "raise"), mode)
    member = next(name for name in unreadable if name.endswith(f"/{lost[0]}.jpg"))
    check_raised(caught.value, "damaged-zip", [str(path), member, case.problem, f"image_id {lost[0]}"])
