"""Hostile or unlucky operations end in a clear error, a retry that recovers, or a full result, never in a crash,
a race, silent truncation or orphaned processes: two runs into one folder, https sources, a Hub server that goes
away mid-stream, gateway errors with HTML bodies during a push, and a run killed with SIGKILL while it has workers.

Every case runs real processes and servers on 127.0.0.1: ``upload.py`` subprocesses, fsspec's HTTP filesystem
against a static server (``range_http``), ``datasets`` streaming through the local Hub (``local_hub``), and a real
``huggingface_hub.HfApi`` pushing to a Hub write API that injects faults (``fault_hub``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from packaging.requirements import Requirement

import upload
from fault_hub import GATEWAY_ERROR, ROUTES, serve_fault_hub
from git_hub_client import GitHubClient
from local_hub import hub_env, serve_stoppable_dataset_repos
from publish_fixtures import REPO_ROOT, folder_rows, published_files, sample_build, shard_paths
from range_http import serve_folder
from svitpipe.publish.engines import wait_for_process_end
from svitpipe.publish.folder_lock import LOCK_FILE
from svitpipe.publish.hub_push import HubAnswerError, push_folder
from svitpipe.sample import SAMPLE_DIR
from svitpipe.testing.fake_upstream import draw_jpeg, write_svit_source

WORK_DIR = Path(".cache") / "svit-internvl-build"
TOKEN = "hf_SeCrEtToKeN_ops_0123456789abcdef"


def upload_process(*args: str, **kwargs) -> subprocess.Popen:
    """``python upload.py *args`` as a process of its own, from the repository root."""
    return subprocess.Popen([sys.executable, "upload.py", *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


# --------------------------------------------------------------------------
# One run at a time per --local-dir
# --------------------------------------------------------------------------

HOLD_LOCK = """
import sys
from svitpipe.publish.folder_lock import folder_lock
with folder_lock(sys.argv[1], "python upload.py --sample --token ..."):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_lock(out: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / WORK_DIR)], cwd=REPO_ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_into_a_held_folder_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        second = upload_process("--sample", "--configs", "referring", "--local-dir", str(out))
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2, err
        assert f"pid {holder.pid} on host" in err and "being built by another run" in err
        assert "python upload.py --sample --token ..." in err  # the holder's command, as it wrote it
        assert sorted(path.name for path in out.iterdir()) == [".cache"], "nothing is written next to the lock"
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_two_upload_runs_into_one_folder(tmp_path):
    # The first run stalls on its source (an http server holding every request), holding the folder meanwhile.
    out, gate = tmp_path / "out", threading.Event()
    runs = []
    with serve_folder(SAMPLE_DIR, gate) as url:
        try:
            first = upload_process("--configs", "referring", "--local-dir", str(out), "--svit-source", f"{url}/svit")
            runs.append(first)
            lock = out / WORK_DIR / LOCK_FILE
            for _ in range(2400):  # up to 2 minutes for the first run to start and take the lock
                if lock.exists() and f'"pid": {first.pid},' in lock.read_text():
                    break
                assert first.poll() is None, first.communicate()
                time.sleep(0.05)
            else:
                pytest.fail("the first run never took the folder's lock")
            second = upload_process("--configs", "referring", "--local-dir", str(out), "--svit-source", f"{url}/svit")
            runs.append(second)
            _, second_err = second.communicate(timeout=120)  # at once: it does not wait for the first
            gate.set()
            _, first_err = first.communicate(timeout=300)
        finally:
            gate.set()
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.communicate()
    assert second.returncode == 2 and f"pid {first.pid} on host" in second_err
    assert first.returncode == 0, first_err
    assert len(folder_rows(out, "referring")) == 8


def test_a_lock_whose_holder_was_killed_does_not_block(tmp_path, capsys):
    out = tmp_path / "out"
    holder = hold_lock(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert str(holder.pid) in (out / WORK_DIR / LOCK_FILE).read_text()  # the file stays, the lock does not
    code = upload.main(["--sample", "--configs", "referring", "--local-dir", str(out), "--token", TOKEN])
    assert code == 0
    held_by = json.loads((out / WORK_DIR / LOCK_FILE).read_text())
    assert held_by["pid"] == os.getpid() and "--token ..." in held_by["command"]
    assert TOKEN not in (out / WORK_DIR / LOCK_FILE).read_text()


def test_runs_into_other_folders_are_not_blocked(tmp_path):
    holder = hold_lock(tmp_path / "busy")
    try:
        assert upload.main(["--sample", "--configs", "description", "--local-dir", str(tmp_path / "free")]) == 0
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


# --------------------------------------------------------------------------
# https:// sources
# --------------------------------------------------------------------------


def test_http_sources_are_declared_dependencies():
    # fsspec's HTTP filesystem needs aiohttp: the runtime requirements ask for fsspec's "http" extra.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    for declared in (project["dependencies"], requirements):
        fsspec = [Requirement(line) for line in declared if line.startswith("fsspec")]
        assert len(fsspec) == 1 and "http" in fsspec[0].extras


HTTP_CONFIGS = ["referring", "sa1b-en-multi"]


def test_an_http_source_builds_what_the_local_paths_build(tmp_path):
    local = tmp_path / "local"
    assert upload.main(["--sample", "--configs", *HTTP_CONFIGS, "--local-dir", str(local)]) == 0
    remote = tmp_path / "remote"
    with serve_folder(SAMPLE_DIR) as url:
        code = upload.main(["--configs", *HTTP_CONFIGS, "--local-dir", str(remote), "--svit-source", f"{url}/svit",
                            "--sa1b-captions-source", f"{url}/internvl-sa1b-caption",
                            "--sa1b-images-source", f"{url}/sa1b"])
    assert code == 0
    shards = {path: digest for path, digest in published_files(local).items() if path.startswith("data/")}
    assert shards and {path: digest for path, digest in published_files(remote).items()
                       if path.startswith("data/")} == shards


def test_extracted_folders_over_http_are_found(tmp_path):
    # Folders are found by asking the server (datasets' xisdir drops the scheme and fails on http URLs).
    records = [{"image_id": n, "conversations": [{"content": [{"from": "user", "value": "Q?"},
                                                              {"from": "gpt", "value": f"A{n}."}]}]}
               for n in (1, 2)]
    images = {"VG_100K": {"1.jpg": draw_jpeg(40, 30, seed=1)}, "VG_100K_2": {"2.jpg": draw_jpeg(30, 40, seed=2)}}
    write_svit_source(tmp_path / "svit", {"detail_description": records}, images, extracted=True)
    out = tmp_path / "out"
    with serve_folder(tmp_path / "svit") as url:
        assert upload.main(["--configs", "description", "--local-dir", str(out), "--svit-source", url]) == 0
    rows = folder_rows(out, "description")
    assert [(row["id"], row["width"], row["height"]) for row in rows] == [("1", 40, 30), ("2", 30, 40)]


# --------------------------------------------------------------------------
# Streaming through a Hub server that goes away mid-stream
# --------------------------------------------------------------------------

STREAM_THROUGH_AN_OUTAGE = r"""
import json, os, sys, time
import datasets
if sys.argv[3] == "short retries":  # what a user may set: fail within seconds instead of minutes
    import huggingface_hub.utils._http as http
    http.http_backoff.__kwdefaults__.update(max_retries=1, base_wait_time=0.2, max_wait_time=0.5)
    datasets.config.STREAMING_READ_MAX_RETRIES = datasets.config.STREAMING_OPEN_MAX_RETRIES = 2
    datasets.config.STREAMING_READ_RETRY_INTERVAL = datasets.config.STREAMING_OPEN_RETRY_INTERVAL = 0.2
stream = datasets.load_dataset("acme/ops", "referring", split="train", streaming=True)
ids = []
try:
    for row in stream.decode(False):
        ids.append(row["id"])
        if len(ids) == 3:  # the server is stopped here, before the next shard is opened
            open(sys.argv[1], "w").close()
            while not os.path.exists(sys.argv[2]):
                time.sleep(0.05)
except Exception as error:
    print(json.dumps({"ids": ids, "error": type(error).__name__, "message": str(error)}))
else:
    print(json.dumps({"ids": ids, "error": None}))
"""


def stream_through_an_outage(folder: Path, tmp_path: Path, *, restart: bool, retries: str) -> dict:
    paused, go = tmp_path / "paused", tmp_path / "go"
    with serve_stoppable_dataset_repos({"acme/ops": folder}, tmp_path / "hub") as hub:
        reader = subprocess.Popen(
            [sys.executable, "-c", STREAM_THROUGH_AN_OUTAGE, str(paused), str(go), retries],
            env=hub_env(hub.endpoint, tmp_path / "hf-home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        while not paused.exists():
            assert reader.poll() is None, reader.communicate()
            time.sleep(0.05)
        hub.stop()
        go.touch()
        if restart:
            hub.start()  # on the same port
        out, err = reader.communicate(timeout=600)
    assert reader.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory) -> Path:
    folder = sample_build(tmp_path_factory)
    assert len(shard_paths(folder, "referring")) > 3, "the outage must come between shards"
    return folder


def stream_order(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [row_id for path in shard_paths(folder, "referring") for row_id in pq.read_table(path)["id"].to_pylist()]


def test_a_stream_recovers_when_the_server_comes_back(many_shards, tmp_path):
    result = stream_through_an_outage(many_shards, tmp_path, restart=True, retries="default retries")
    assert result == {"ids": stream_order(many_shards), "error": None}  # every row once, in order


def test_a_stream_whose_server_stays_down_raises_instead_of_ending(many_shards, tmp_path):
    result = stream_through_an_outage(many_shards, tmp_path, restart=False, retries="short retries")
    assert result["error"] == "ConnectionError" and "Server Disconnected" in result["message"]
    assert result["ids"] == stream_order(many_shards)[:3]  # the rows before the outage, then the error


# --------------------------------------------------------------------------
# Gateway errors with HTML bodies during a push
# --------------------------------------------------------------------------

REPO = "acme/pushed"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


def push(hub, folder: Path, delays: list):
    return push_folder(str(folder), REPO, api=HfApi(endpoint=hub.endpoint, token=TOKEN), batch_size=50,
                       sleep=delays.append)


def assert_remote_holds(client: GitHubClient, folder: Path) -> None:
    remote = client.files(REPO)
    assert set(remote) == set(published_files(folder)) | {".gitattributes"}
    for path in published_files(folder):
        assert remote[path] == (folder / path).read_bytes(), path


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_with_html_bodies_are_retried_on_every_route(folder, tmp_path, status):
    client = GitHubClient(tmp_path / "remote")
    delays = []
    with serve_fault_hub(client) as hub:
        for route in ROUTES:
            hub.fail(route, GATEWAY_ERROR(status))
        report = push(hub, folder, delays)
    for route in ROUTES:
        answers = [answered for name, answered in hub.hits if name == route]
        assert answers[:2] == [status, 200], (route, answers)
    # create_repo, the first commit and validate-yaml are retried here; tree and preupload by huggingface_hub
    assert delays == [2.0, 2.0, 2.0]
    assert set(report.uploaded) == set(published_files(folder))
    assert_remote_holds(client, folder)


def test_html_rate_limits_honour_retry_after(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    delays = []
    with serve_fault_hub(client) as hub:
        hub.fail("validate-yaml", GATEWAY_ERROR(429, headers=(("Retry-After", "7"),)))
        hub.fail("commit", GATEWAY_ERROR(500), GATEWAY_ERROR(429, headers=(("Retry-After", "11"),)))
        push(hub, folder, delays)
    # An answer validate-yaml cannot decode carries no status for the retry to read: plain backoff.
    assert delays == [2.0, 11.0, 2.0]
    assert_remote_holds(client, folder)


def test_a_validation_step_that_keeps_failing_ends_in_a_clear_error(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    delays = []
    with serve_fault_hub(client) as hub:
        hub.fail("validate-yaml", *[GATEWAY_ERROR(502)] * 6)
        with pytest.raises(HubAnswerError, match="not JSON") as raised:
            push(hub, folder, delays)
    assert "502 Bad Gateway" in str(raised.value) and "Update dataset card" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0]
    remote = client.files(REPO)
    assert "README.md" not in remote and "dataset_infos.json" not in remote  # the repo does not look complete
    assert {path for path in remote if path.startswith("data/")} == {
        path for path in published_files(folder) if path.startswith("data/")}


def test_a_client_error_with_an_html_body_is_raised_at_once(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    delays = []
    with serve_fault_hub(client) as hub:
        hub.fail("commit", GATEWAY_ERROR(403))
        with pytest.raises(HfHubHTTPError) as raised:
            push(hub, folder, delays)
    assert raised.value.response.status_code == 403 and delays == []


# --------------------------------------------------------------------------
# A run killed with SIGKILL leaves no process behind
# --------------------------------------------------------------------------


def _stat(pid: int):
    """``(parent pid, start time, state)`` of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19], fields[0]


def descendants(pid: int) -> dict:
    """``pid -> start time`` of every process under ``pid`` (a start time tells a reused pid apart)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            parents[int(name)] = stat
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, started, _) in parents.items():
            if ppid == parent and child not in found:
                found[child] = started
                frontier.append(child)
    return found


def still_running(processes: dict) -> list:
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started and stat[2] != "Z":
            alive.append(pid)
    return alive


def many_records_source(root: Path, count: int, size: tuple = (256, 192)) -> Path:
    jpeg = draw_jpeg(*size, seed=1)
    records = [{"image_id": n, "conversations": [{"content": [{"from": "user", "value": "Q?"},
                                                              {"from": "gpt", "value": f"Answer {n}."}]}]}
               for n in range(1, count + 1)]
    write_svit_source(root, {"detail_description": records},
                      {"VG_100K": {f"{n}.jpg": jpeg for n in range(1, count + 1)}, "VG_100K_2": {}})
    return root


# upload.py with a Python thread running besides the main one: its workers then start from a fork server.
UPLOAD_WITH_A_THREAD = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
import upload
sys.exit(upload.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_killing_a_run_with_workers_leaves_no_process_behind(tmp_path, start):
    source = many_records_source(tmp_path / "svit", 600, (2048, 1536))  # ~20 ms to decode each: a build of seconds
    args = ("--svit-source", str(source), "--configs", "description", "--local-dir", str(tmp_path / "out"),
            "--num-proc", "2", "--svit-num-shards", "16", "--image-check", "decode")
    if start == "fork":
        run = upload_process(*args)
    else:
        run = subprocess.Popen([sys.executable, "-c", UPLOAD_WITH_A_THREAD, *args], cwd=REPO_ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    left = {}
    try:
        # Wait for a worker: forked, a child of the run; else two levels down (the run -> the fork server -> a
        # worker), next to the resource tracker.
        levels = 1 if start == "fork" else 2
        while not (descendants(run.pid) if levels == 1 else any(descendants(c) for c in descendants(run.pid))):
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
        left = descendants(run.pid)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert run.returncode == -signal.SIGKILL, "the run ended before it was killed"
        assert len(left) >= levels  # a worker; or the fork server and a worker (and the resource tracker)
        for _ in range(200):  # up to 20 s
            if not still_running(left):
                break
            time.sleep(0.1)
        assert still_running(left) == []
    finally:
        for pid in still_running(left):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("use_pidfd", [True, False], ids=["pidfd", "polling"])
def test_a_worker_notices_its_run_ending(use_pidfd):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    noticed = threading.Event()
    watcher = threading.Thread(target=lambda: (wait_for_process_end(sleeper.pid, use_pidfd, 0.1), noticed.set()),
                               daemon=True)
    watcher.start()
    assert not noticed.wait(0.5)
    sleeper.kill()
    sleeper.wait()
    assert noticed.wait(20)
