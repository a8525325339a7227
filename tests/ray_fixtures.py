"""Helpers for the Ray engine tests: one local Ray cluster, ``upload.main`` runs, folder and row snapshots.

Imported only after ``pytest.importorskip("ray")``. Nothing here patches the pipeline: failures come from real
broken files in a copy of the sample, and attempts are counted from the warnings Ray's workers write to their logs.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import ray

import upload
from svitpipe.sample import SAMPLE_DIR

SAMPLE_SA1B = SAMPLE_DIR / "sa1b"
SAMPLE_TARS = ("sa_000000", "sa_000001", "sa_000002")
WORK_SUBDIR = Path(".cache") / "svit-internvl-build"
ATTEMPT_LINE = re.compile(r"unit (?P<config>[\w.-]+)/(?P<key>[\w.-]+) failed \(attempt (?P<attempt>\d+)\): (?P<error>.*)")


@dataclass
class UploadRun:
    returncode: int
    stderr: str

    def failure_lines(self) -> dict:
        """``{"config/key": error}`` from the report upload.py prints after a run with failed units."""
        report = self.stderr.split(" unit(s) failed after ", 1)
        if len(report) == 1:
            return {}
        lines = {}
        for line in report[1].splitlines()[1:]:
            if not line.startswith("  ") or line.startswith("   "):
                break
            unit, _, error = line.strip().partition(": ")
            lines[unit] = error
        return lines

    def redo_command(self) -> str:
        """The command upload.py says to run once the cause is fixed."""
        lines = self.stderr.splitlines()
        for position, line in enumerate(lines):
            if line.startswith("Fix the cause, then redo only those"):
                return lines[position + 1].strip()
        raise AssertionError(f"no redo command in stderr:\n{self.stderr}")


def run_upload(argv: list) -> UploadRun:
    """``upload.main(argv)`` in this process (it reuses the initialized Ray session); its stderr is captured."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        returncode = upload.main(list(argv))
    return UploadRun(returncode, stderr.getvalue())


def sample_argv(local_dir, configs, *, engine: str, images_source=None, extra=()) -> list:
    argv = ["--sample", "--local-dir", str(local_dir), "--engine", engine, "--configs", *configs]
    if images_source is not None:
        argv += ["--sa1b-images-source", str(images_source)]
    return [*argv, *extra]


def copy_sample_tars(target: Path) -> Path:
    """A private copy of the sample's SA-1B tars, to break and repair."""
    shutil.copytree(SAMPLE_SA1B, target)
    return target


def work_dir(local_dir) -> Path:
    return Path(local_dir) / WORK_SUBDIR


def stats_files(local_dir, config: str) -> dict:
    """``{unit key: path}`` of the units the build finished (their stats JSON)."""
    folder = work_dir(local_dir) / config
    return {path.stem: path for path in sorted(folder.glob("*.json"))}


def file_identity(path: Path) -> tuple:
    """Inode, modification time and bytes: any rewrite changes at least one."""
    status = path.stat()
    return status.st_ino, status.st_mtime_ns, path.read_bytes()


def published_files(local_dir) -> dict:
    """``{relative path: bytes}`` of what is published: the card, the infos and every shard (not the cache)."""
    root = Path(local_dir)
    files = {name: (root / name).read_bytes() for name in ("README.md", "dataset_infos.json")}
    for path in sorted((root / "data").rglob("*")):
        if path.is_file():
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def assert_same_published_files(actual_dir, expected_dir) -> None:
    actual, expected = published_files(actual_dir), published_files(expected_dir)
    assert sorted(actual) == sorted(expected)
    different = [name for name in expected if actual[name] != expected[name]]
    assert not different, f"these files differ from the reference build: {different}"


def published_rows(local_dir, config: str) -> list:
    """Every published row of ``config`` (shards in order), as Python dicts."""
    rows = []
    for path in sorted((Path(local_dir) / "data" / config).glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def row_tars(row: dict) -> set:
    """The SA-1B tars a row's image(s) come from."""
    paths = row["image_paths"] if "image_paths" in row else [row["image_path"]]
    return {path.split("/", 1)[0] for path in paths}


def primary_tar(row: dict) -> str:
    """The tar of a row's (first) image: the unit the row belongs to."""
    return (row["image_paths"][0] if "image_paths" in row else row["image_path"]).split("/", 1)[0]


class WorkerLogs:
    """What this session's Ray workers wrote to stderr since ``mark()``.

    Workers' stderr goes to ``<session>/logs/worker-*.err`` (the session runs with ``log_to_driver=False``); that
    is where ``_build_with_retries`` logs each failed attempt.
    """

    def __init__(self):
        # No public API gives the local session's log folder without the dashboard, which ray_session turns off.
        self.folder = ray._private.worker._global_node.get_logs_dir_path()
        self.offsets: dict = {}

    def _files(self) -> list:
        return sorted(glob.glob(os.path.join(self.folder, "worker-*.err")))

    def mark(self) -> None:
        self.offsets = {path: os.path.getsize(path) for path in self._files()}

    def new_text(self) -> str:
        text = []
        for path in self._files():
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                text.append(f.read().decode("utf-8", "replace"))
        return "\n".join(text)

    def attempts(self) -> list:
        """``(config, key, attempt number, error)`` of every failed attempt logged since ``mark()``, sorted."""
        return sorted(
            (m["config"], m["key"], int(m["attempt"]), m["error"]) for m in ATTEMPT_LINE.finditer(self.new_text())
        )
