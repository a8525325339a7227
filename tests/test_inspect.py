"""``upload.py --inspect`` (``svit-internvl inspect``): what a build would find, said before it, building nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import upload
from svitpipe import cli
from svitpipe.features import CONFIGS
from svitpipe.inspection import folded_path
from svitpipe.sample import SAMPLE_DIR


@pytest.mark.parametrize(
    "path, folded",
    [("topic", "topic"), ("conversations[2].source", "conversations[*].source"),
     ("conversations[0].content[13].lang", "conversations[*].content[*].lang"), ("merged[4].note", "merged[*].note")],
)
def test_folded_paths(path, folded):
    assert folded_path(path) == folded


def test_inspect_the_sample_builds_nothing_and_reports_every_config(tmp_path, tmp_path_factory, capsys):
    report_path = tmp_path / "report.json"
    code = upload.main(["--inspect", "--sample", "--report", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0 and "a build would finish" in out
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["would_finish"] is True
    assert [entry["config_name"] for entry in report["configs"]] == list(CONFIGS)
    for entry in report["configs"]:
        assert entry["rows"] > 0 and entry["records_read"] >= entry["rows"] and entry["error"] is None
        assert f"{entry['config_name']}: {entry['records_read']:,} records -> {entry['rows']:,} rows" in out
    assert not list(tmp_path.glob("*/data"))
    # Every oddity the sample carries (sample/README.md) is reported before any build, as the build counts it.
    from test_build_report import reports

    from publish_fixtures import sample_build

    built = reports(sample_build(tmp_path_factory))
    for entry in report["configs"]:
        expected = built[entry["config_name"]]
        assert (entry["flagged"], entry["skipped"], entry["rows"]) == (
            expected["flagged"], expected["skipped"], expected["rows"]), entry["config_name"]
        for kind in entry["flagged"]:
            assert entry["examples"][kind], kind


@pytest.fixture
def broken_sample(tmp_path) -> dict:
    """A copy of the sample whose SVIT image zip lost an image and whose SA-1B tars lost one tar."""
    import zipfile

    root = tmp_path / "broken"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    images = root / "svit" / "raw" / "images.zip"
    with zipfile.ZipFile(SAMPLE_DIR / "svit" / "raw" / "images.zip") as source, \
            zipfile.ZipFile(images, "w") as target:
        names = source.namelist()
        for name in names[1:]:
            target.writestr(source.getinfo(name), source.read(name))
    (root / "sa1b" / "sa_000002.tar").unlink()
    return {"--svit-source": root / "svit", "--sa1b-captions-source": root / "internvl-sa1b-caption",
            "--sa1b-images-source": root / "sa1b", "removed image": names[0]}


def source_args(broken: dict) -> list[str]:
    return [word for key, value in broken.items() if key.startswith("--") for word in (key, str(value))]


@pytest.mark.parametrize("policy, code", [("raise", 1), ("skip", 0)])
def test_inspect_a_broken_copy_names_what_is_missing(broken_sample, tmp_path, capsys, policy, code):
    report_path = tmp_path / f"report-{policy}.json"
    argv = ["--inspect", "--configs", "referring", "sa1b-en-single", "--on-bad-record", policy,
            "--report", str(report_path), *source_args(broken_sample)]
    assert upload.main(argv) == code
    out = capsys.readouterr().out
    report = json.loads(report_path.read_text(encoding="utf-8"))
    by_config = {entry["config_name"]: entry for entry in report["configs"]}
    removed_id = Path(broken_sample["removed image"]).stem
    svit = by_config["referring"]
    assert svit["skipped"] == {"missing-image": 1}
    assert any(f"image_id {removed_id}" in message for message in svit["examples"]["missing-image"])
    sa1b = by_config["sa1b-en-single"]
    assert sa1b["skipped"]["missing-tar"] >= 1 and "sa_000002" in sa1b["examples"]["missing-tar"][0]
    assert sa1b["rows"] + sa1b["skipped"]["missing-tar"] == sa1b["records_read"]
    assert report["would_finish"] is (policy == "skip")
    assert "skipped missing-image: 1" in out and "e.g. " in out


def test_inspect_subcommand_is_upload_dash_dash_inspect(capsys):
    assert cli.main(["inspect", "--sample", "--configs", "description"]) == 0
    assert "description: " in capsys.readouterr().out


def test_report_needs_inspect(capsys):
    with pytest.raises(SystemExit):
        upload.main(["--sample", "--local-dir", "x", "--report", "r.json"])
    assert "--report goes with --inspect" in capsys.readouterr().err
