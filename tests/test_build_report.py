"""The build's own report tells the truth: every input record is a row, merged into a row, or a counted skip (per
config, in ``dataset_infos.json``, the card and the summary table), and a build with failed units says so instead
of ``verified`` and exits 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import upload
from publish_fixtures import ALL_CONFIGS, sample_build
from svitpipe.features import CONFIGS
from svitpipe.publish.card import REPORT_KEY
from svitpipe.sample import SAMPLE_DIR


def reports(folder: Path) -> dict:
    infos = json.loads((folder / "dataset_infos.json").read_text(encoding="utf-8"))
    return {name: info[REPORT_KEY] for name, info in infos.items()}


def upstream_records(config_name: str, root: Path = SAMPLE_DIR) -> int:
    import zipfile

    facts = CONFIGS[config_name]
    if facts.family == "svit":
        with zipfile.ZipFile(root / "svit" / "data" / f"{facts.upstream_file}.zip") as archive:
            return len(json.loads(archive.read(f"{facts.upstream_file}.json")))
    text = (root / "internvl-sa1b-caption" / facts.upstream_file).read_text(encoding="utf-8")
    return sum(1 for line in text.splitlines() if line.strip())


def test_every_sample_record_is_a_row_a_merge_or_a_counted_skip(tmp_path_factory):
    """The sample carries one of each oddity (sample/README.md); the default policy builds every config."""
    folder = sample_build(tmp_path_factory)
    found = reports(folder)
    assert sorted(found) == sorted(ALL_CONFIGS)
    flagged_kinds = set()
    for name, report in found.items():
        merged = report["flagged"].get("merged-duplicate", 0)
        assert report["records_read"] == upstream_records(name)
        assert report["records_read"] == report["rows"] + merged + sum(report["skipped"].values()), name
        assert report["failed_units"] == []
        flagged_kinds |= set(report["flagged"])
    assert flagged_kinds >= {"unparsed", "out-of-range", "inverted", "merged-duplicate", "image-id-as-string",
                             "upstream-extra-keys", "declared-size-mismatch", "no-single-caption"}
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "flagged merged-duplicate: 1" in card and "flagged inverted: 1" in card


def damaged_sample_tars(dest: Path) -> Path:
    """The sample's SA-1B tars with ``sa_000001.tar`` cut short in the middle of its second member's data."""
    import tarfile

    shutil.copytree(SAMPLE_DIR / "sa1b", dest)
    with tarfile.open(dest / "sa_000001.tar") as archive:
        second = archive.getmembers()[2]
    data = (dest / "sa_000001.tar").read_bytes()
    (dest / "sa_000001.tar").write_bytes(data[: second.offset_data + second.size // 2])
    return dest


def test_a_damaged_tar_under_skip_is_counted_and_the_build_finishes(tmp_path, capsys):
    images = damaged_sample_tars(tmp_path / "sa1b")
    out = tmp_path / "out"
    code = upload.main(["--sample", "--configs", "sa1b-en-single", "--sa1b-images-source", str(images),
                        "--on-bad-record", "skip", "--local-dir", str(out)])
    assert code == 0 and "verified:" in capsys.readouterr().out
    report = reports(out)["sa1b-en-single"]
    assert report["skipped"]["damaged-tar"] >= 1
    assert report["records_read"] == report["rows"] + sum(report["skipped"].values()) == upstream_records(
        "sa1b-en-single")


def test_failed_units_make_an_incomplete_build_that_says_so(tmp_path, capsys):
    images = damaged_sample_tars(tmp_path / "sa1b")
    out = tmp_path / "out"
    code = upload.main(["--sample", "--configs", "sa1b-en-single", "description", "--sa1b-images-source",
                        str(images), "--local-dir", str(out), "--retries", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "verified:" not in captured.out
    assert "INCOMPLETE" in captured.out and "sa1b-en-single" in captured.out
    line = next(row for row in captured.out.splitlines() if row.startswith("sa1b-en-single"))
    assert "INCOMPLETE" in line and "sa_000001" in line
    assert next(row for row in captured.out.splitlines() if row.startswith("description")).split()[-2] == "-"
    assert "damaged-tar" in captured.err and "redo only those" in captured.err
    report = reports(out)["sa1b-en-single"]
    assert report["failed_units"] == ["sa_000001"]
    assert "Incomplete build" in (out / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("policy, code", [("raise", 1), ("skip", 0)])
def test_inspect_sees_the_damaged_tar_before_the_build(tmp_path, capsys, policy, code):
    images = damaged_sample_tars(tmp_path / "sa1b")
    assert upload.main(["--inspect", "--sample", "--configs", "sa1b-en-single", "--sa1b-images-source", str(images),
                        "--on-bad-record", policy]) == code
    assert "skipped damaged-tar" in capsys.readouterr().out
