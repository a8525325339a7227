"""The Ray engine on a real local Ray cluster: same files as the local engine, failed units reported, resumed runs.

One local cluster (2 CPUs) serves the whole module. Failures come from really broken files in a private copy of the
sample's SA-1B tars (cut short, or garbage), never from patching the pipeline.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import pytest

ray = pytest.importorskip("ray")

import upload  # noqa: E402
from ray_fixtures import (  # noqa: E402
    SAMPLE_TARS,
    WorkerLogs,
    assert_same_published_files,
    copy_sample_tars,
    file_identity,
    primary_tar,
    published_rows,
    run_upload,
    sample_argv,
    stats_files,
    work_dir,
)
from svitpipe.publish.engines import ray_session, run_local, run_ray  # noqa: E402
from svitpipe.publish.parquet_layout import ParquetLayout  # noqa: E402
from svitpipe.publish.units import make_builder, plan_units  # noqa: E402
from svitpipe.publish.upload import builder_kwargs, parse_args  # noqa: E402

SA1B_CONFIGS = ["sa1b-en-single", "sa1b-zh-single", "sa1b-en-multi", "sa1b-zh-multi"]
# Multi-image lines reach into other tars, so one broken tar fails several multi-image units; single-image units
# read their own tar only, which makes "exactly this unit failed" checkable.
SINGLE_CONFIGS = ["sa1b-en-single", "sa1b-zh-single"]
TWO_WORKERS = ["--num-proc", "2"]


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs for the module, started and shut down by ``ray_session``."""
    joined_existing = ray.is_initialized()
    with ray_session(None, 2):
        assert ray.is_initialized()
        yield WorkerLogs()
    assert ray.is_initialized() == joined_existing, "ray_session leaves only the cluster it started"


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    """The sample's four SA-1B configs built by the local engine in this process: the reference."""
    out = tmp_path_factory.mktemp("local-engine") / "build"
    run = run_upload(sample_argv(out, SA1B_CONFIGS, engine="local"))
    assert run.returncode == 0, run.stderr
    return out


def wait_for_attempts(logs: WorkerLogs, count: int, timeout: float = 10.0) -> list:
    """The failed attempts logged since ``logs.mark()``, once ``count`` of them are in (or the timeout passed).

    Every attempt is logged before its task returns, so after the run nothing more can arrive: a run with more
    attempts than ``count`` shows them all, and the caller's equality check fails.
    """
    deadline = time.monotonic() + timeout
    attempts = logs.attempts()
    while len(attempts) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        attempts = logs.attempts()
    return [(config, key, number) for config, key, number, _ in attempts]


def test_ray_builds_every_sa1b_config_as_several_tasks_and_matches_the_local_engine(ray_cluster, local_build, tmp_path):
    out = tmp_path / "build"
    argv = sample_argv(out, SA1B_CONFIGS, engine="ray", extra=TWO_WORKERS)
    run = run_upload(argv)
    assert run.returncode == 0, run.stderr
    assert ray.is_initialized(), "upload.main must reuse the module's Ray session and leave it running"

    kwargs = builder_kwargs(parse_args(argv), str(work_dir(out)))
    for config in SA1B_CONFIGS:
        units = plan_units(make_builder(config, kwargs))
        assert [unit.key for unit in units] == list(SAMPLE_TARS)  # one task per SA-1B tar
        stats = stats_files(out, config)
        assert sorted(stats) == list(SAMPLE_TARS), f"{config}: every task left its stats file"
        unit_rows = [sum(f["num_rows"] for f in json.loads(stats[key].read_text())["files"])
                     for key in SAMPLE_TARS]
        assert sum(1 for rows in unit_rows if rows) >= 2, f"{config}: fewer than two tasks had rows: {unit_rows}"
        assert sum(unit_rows) == len(published_rows(out, config))

    assert_same_published_files(out, local_build)


def test_a_unit_that_failed_is_the_only_one_rebuilt_on_rerun(ray_cluster, local_build, tmp_path):
    tars = copy_sample_tars(tmp_path / "sa1b")
    broken = tars / "sa_000002.tar"
    complete = broken.read_bytes()
    broken.write_bytes(complete[: len(complete) // 2])  # as if its download had been cut off
    out = tmp_path / "build"
    argv = sample_argv(out, SINGLE_CONFIGS, engine="ray", images_source=tars, extra=[*TWO_WORKERS, "--retries", "1"])

    first = run_upload(argv)
    assert first.returncode == 1
    failed = first.failure_lines()
    assert sorted(failed) == [f"{config}/sa_000002" for config in SINGLE_CONFIGS], first.stderr
    assert all(str(broken) in error for error in failed.values()), failed
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "**Incomplete build.**" in card
    for config in SINGLE_CONFIGS:
        assert f"- `{config}`: sa_000002" in card
    kept = {}
    for config in SINGLE_CONFIGS:
        stats = stats_files(out, config)
        assert sorted(stats) == ["sa_000000", "sa_000001"], config
        parts = sorted(work_dir(out).joinpath(config).glob("sa_00000[01]-*.parquet"))
        assert len(parts) >= 2
        kept.update({path: file_identity(path) for path in [*stats.values(), *parts]})
        # The finished units are published, in unit order, exactly as a full build has them.
        expected = [row for row in published_rows(local_build, config) if primary_tar(row) != "sa_000002"]
        assert expected and published_rows(out, config) == expected

    broken.write_bytes(complete)
    second = run_upload(argv)
    assert second.returncode == 0, second.stderr
    assert second.failure_lines() == {} and "failed" not in second.stderr
    assert "Incomplete build" not in (out / "README.md").read_text(encoding="utf-8")
    changed = [str(path) for path, identity in kept.items() if file_identity(path) != identity]
    assert not changed, f"finished units were rebuilt: {changed}"
    for config in SINGLE_CONFIGS:
        assert sorted(stats_files(out, config)) == list(SAMPLE_TARS)
        stats = json.loads(stats_files(out, config)["sa_000002"].read_text())
        listed = {f["name"] for f in stats["files"]}
        on_disk = {path.name for path in work_dir(out).joinpath(config).glob("sa_000002-*.parquet")}
        assert listed == on_disk, "a part left by the cut-off attempt survived"

    clean = tmp_path / "clean"
    run = run_upload(sample_argv(clean, SINGLE_CONFIGS, engine="local", images_source=tars))
    assert run.returncode == 0, run.stderr
    assert_same_published_files(out, clean)
    for config in SINGLE_CONFIGS:
        ids = [row["id"] for row in published_rows(out, config)]
        assert len(ids) == len(set(ids)) == len(published_rows(clean, config))


def test_a_corrupt_tar_fails_its_unit_after_bounded_retries_and_says_how_to_redo(ray_cluster, local_build, tmp_path):
    tars = copy_sample_tars(tmp_path / "sa1b")
    corrupt = tars / "sa_000001.tar"
    corrupt.write_bytes(b"this is not a tar archive\n" * 400)
    out = tmp_path / "build"
    config = "sa1b-en-single"

    def build(retries: int):
        argv = sample_argv(out, [config], engine="ray", images_source=tars, extra=[*TWO_WORKERS, "--retries", str(retries)])
        ray_cluster.mark()
        return argv, run_upload(argv)

    argv, run = build(retries=1)
    assert run.returncode == 1
    failed = run.failure_lines()
    assert list(failed) == [f"{config}/sa_000001"], run.stderr
    error = failed[f"{config}/sa_000001"]
    assert error.startswith("BadRecordError: ") and "damaged-tar" in error and str(corrupt) in error, error
    assert "1 unit(s) failed after 2 attempt(s)" in run.stderr
    assert wait_for_attempts(ray_cluster, 2) == [(config, "sa_000001", 1), (config, "sa_000001", 2)]
    assert shlex.split(run.redo_command()) == [sys.executable, os.path.abspath(upload.__file__), *argv]

    expected = [row for row in published_rows(local_build, config) if primary_tar(row) != "sa_000001"]
    assert {primary_tar(row) for row in expected} == {"sa_000000", "sa_000002"}
    assert published_rows(out, config) == expected
    assert sorted(stats_files(out, config)) == ["sa_000000", "sa_000002"]

    # Fewer retries, fewer attempts; the finished units are reused, not retried.
    _, again = build(retries=0)
    assert again.returncode == 1
    assert list(again.failure_lines()) == [f"{config}/sa_000001"]
    assert "1 unit(s) failed after 1 attempt(s)" in again.stderr
    assert wait_for_attempts(ray_cluster, 1) == [(config, "sa_000001", 1)]


def test_run_ray_gives_the_same_unit_results_as_run_local(ray_cluster, tmp_path):
    config = "sa1b-en-single"
    args = parse_args(sample_argv(tmp_path / "unused", [config], engine="ray"))
    kwargs = builder_kwargs(args, str(tmp_path / "planning"))
    units = plan_units(make_builder(config, kwargs))
    assert len(units) >= 2
    layout = ParquetLayout(max_shard_bytes=12_000, rows_per_row_group=1)  # small parts: several per unit

    local = run_local(units, kwargs, str(tmp_path / "local"), layout, retries=0)
    remote = run_ray(units, kwargs, str(tmp_path / "ray"), layout, retries=0)
    assert ray.is_initialized()

    assert local.failures == [] and remote.failures == []
    assert [(r.config_name, r.key) for r in remote.results] == [(u.config_name, u.key) for u in units]
    assert [r.files for r in remote.results] == [r.files for r in local.results]
    assert not any(r.reused for r in [*local.results, *remote.results])
    assert any(len(r.files) >= 2 for r in local.results) and all(r.num_rows for r in local.results)
    for result in remote.results:
        for written in result.files:
            ray_bytes = (tmp_path / "ray" / config / written.name).read_bytes()
            assert ray_bytes == (tmp_path / "local" / config / written.name).read_bytes(), written.name
