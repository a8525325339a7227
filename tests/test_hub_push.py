"""Pushing a built folder: ``svitpipe.publish.hub_push.push_folder`` against a client that commits to real git
repositories (``git_hub_client.GitHubClient``: the local Hub server is read-only), the pushed repository served and
loaded through the local Hub, ``call_with_retries`` on real ``huggingface_hub`` HTTP errors, and ``upload.py``'s
command-line guards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError

import upload
from git_hub_client import ENDPOINT, GitHubClient, hub_error
from local_hub import run_with_hub, serve_git_repos
from publish_fixtures import (
    copy_published,
    folder_rows,
    published_files,
    run_upload,
    sample_build,
    shard_paths,
)
from svitpipe.features import CONFIGS
from svitpipe.publish.hub_push import PushReport, call_with_retries, push_folder
from svitpipe.publish.upload import SA1B_LOCAL_NOTE
from svitpipe.sample import SAMPLE_DIR

REPO = "acme/pushed"
BATCH = 10
CARD_FILES = {"README.md", "dataset_infos.json"}


@dataclass
class Stage:
    """One push: its report, the client calls it made, the remote files before and after, main's commits after."""

    report: PushReport
    calls: list
    before: dict
    after: dict
    commits_after: int


def push(client: GitHubClient, folder, repo_id: str = REPO, **kwargs) -> Stage:
    exists = client.git_dir(repo_id).exists()
    before = client.files(repo_id) if exists else {}
    start = len(client.calls)
    kwargs.setdefault("batch_size", BATCH)
    kwargs.setdefault("sleep", lambda seconds: pytest.fail(f"unexpected retry (sleep {seconds})"))
    report = push_folder(str(folder), repo_id, api=client, **kwargs)
    revision = kwargs.get("revision") or "main"
    return Stage(report, client.calls[start:], before, client.files(repo_id, revision),
                 client.commit_count(repo_id, revision))


def local_contents(folder) -> dict[str, bytes]:
    return {path: (Path(folder) / path).read_bytes() for path in published_files(folder)}


def commits(stage_or_calls) -> list:
    calls = stage_or_calls.calls if isinstance(stage_or_calls, Stage) else stage_or_calls
    return [call for call in calls if call.method == "create_commit" and not call.raised]


def assert_repo_holds(client: GitHubClient, folder, revision: str = "main", extra=(".gitattributes",)) -> None:
    remote = client.files(REPO, revision)
    local = local_contents(folder)
    assert set(remote) == set(local) | set(extra)
    for path, content in local.items():
        assert remote[path] == content, path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def rebuilt(folder, tmp_path_factory) -> Path:
    """The same sources rebuilt with other shard sizes, in a copy of the folder (build state included)."""
    copy = copy_published(folder, tmp_path_factory.mktemp("rebuilt") / "svit-internvl", with_build_state=True)
    return run_upload(copy, "--max-shard-size", "25KB", "--rows-per-row-group", "1")


@pytest.fixture(scope="module")
def history(folder, rebuilt, tmp_path_factory):
    """First push, the same push again, then a push of the rebuilt folder, all to one repository."""
    client = GitHubClient(tmp_path_factory.mktemp("remote"))
    stages = {"first": push(client, folder)}
    stages["again"] = push(client, folder)
    stages["rebuilt"] = push(client, rebuilt)
    return client, stages


# --------------------------------------------------------------------------
# First push, no-op push, push after a rebuild
# --------------------------------------------------------------------------


def test_first_push_sends_everything_in_batches_with_the_card_last(history, folder):
    client, stages = history
    stage = stages["first"]
    local = set(published_files(folder))
    data_files = {path for path in local if path.startswith("data/")}
    made = commits(stage)

    assert [call.method for call in stage.calls][:2] == ["create_repo", "list_repo_tree"]
    assert stage.calls[0].args["exist_ok"] is True and stage.calls[0].args["repo_type"] == "dataset"
    assert stage.calls[1].args["recursive"] is True
    assert len(made) == -(-len(data_files) // BATCH) + 1
    for call in made[:-1]:
        assert 1 <= len(call.args["added"]) <= BATCH
        assert set(call.args["added"]) <= data_files and not call.args["deleted"]
    assert set(made[-1].args["added"]) == CARD_FILES and made[-1].args["deleted"] == []
    sent = [path for call in made for path in call.args["added"]]
    assert sorted(sent) == sorted(local)  # each file once
    assert sorted(stage.report.uploaded) == sorted(local)
    assert stage.report.deleted == [] and stage.report.unchanged == 0
    assert len(stage.report.commits) == len(made) and all(len(oid) == 40 for oid in stage.report.commits)
    assert stage.commits_after == 1 + len(made)  # the repo's initial commit, then one per create_commit


def test_every_commit_before_the_last_leaves_the_old_card(history):
    # A reader of the repo during a push sees the previous card (here: none) until the data is all there.
    _, stages = history
    for call in commits(stages["first"])[:-1]:
        assert not CARD_FILES & set(call.args["added"])


def test_pushed_repo_holds_exactly_the_folder(history, folder):
    client, stages = history
    first = stages["first"]
    assert set(first.after) == set(published_files(folder)) | {".gitattributes"}
    for path, content in local_contents(folder).items():
        assert first.after[path] == content, path


def test_pushing_the_same_folder_again_makes_no_commit(history, folder):
    _, stages = history
    stage = stages["again"]
    assert commits(stage) == []
    assert stage.report.commits == [] and stage.report.uploaded == [] and stage.report.deleted == []
    assert stage.report.unchanged == len(published_files(folder))
    assert stage.after == stage.before
    assert stage.commits_after == stages["first"].commits_after


def test_push_after_rebuild_sends_only_changes_and_deletes_stale_shards_last(history, rebuilt):
    client, stages = history
    stage = stages["rebuilt"]
    local = local_contents(rebuilt)
    changed = {path for path, content in local.items() if stage.before.get(path) != content}
    unchanged = set(local) - changed
    stale = {path for path in stage.before if path.startswith("data/") and path not in local}
    assert stale and unchanged & {p for p in local if p.startswith("data/")}, "the rebuild should move some shards"
    assert {p for p in changed if p.startswith("data/")}, "the rebuild should change some shards"

    made = commits(stage)
    sent = [path for call in made for path in call.args["added"]]
    assert sorted(sent) == sorted(changed)
    assert not unchanged & set(sent)
    assert all(call.args["deleted"] == [] for call in made[:-1])
    assert sorted(made[-1].args["deleted"]) == sorted(stale)
    assert CARD_FILES <= set(made[-1].args["added"])
    assert all(not CARD_FILES & set(call.args["added"]) for call in made[:-1])
    assert sorted(stage.report.deleted) == sorted(stale)
    assert stage.report.unchanged == len(unchanged)
    assert_repo_holds(client, rebuilt)


# --------------------------------------------------------------------------
# Interruptions, retries, pull requests, branches, leftovers
# --------------------------------------------------------------------------


def test_interrupted_push_resumes_with_what_is_missing(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    client.fail_on("create_commit", 2, RuntimeError("push killed"))
    with pytest.raises(RuntimeError, match="push killed"):
        push(client, folder)
    landed = [path for call in commits(client.calls) for path in call.args["added"]]
    assert len(landed) == BATCH and all(path.startswith("data/") for path in landed)
    assert set(client.files(REPO)) == set(landed) | {".gitattributes"}  # no card: the repo does not look complete

    stage = push(client, folder)
    made = commits(stage)
    sent = [path for call in made for path in call.args["added"]]
    assert sorted(sent) == sorted(set(published_files(folder)) - set(landed))
    assert set(made[-1].args["added"]) == CARD_FILES
    assert stage.report.unchanged == len(landed)
    assert_repo_holds(client, folder)


def test_transient_errors_during_a_push_are_retried(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    url = f"{ENDPOINT}/api/datasets/{REPO}/commit/main"
    client.fail_on("list_repo_tree", 1, hub_error(502, "GET", url))
    client.fail_on("create_commit", 2, hub_error(429, "POST", url, headers={"Retry-After": "17"}))
    client.fail_on("create_commit", 3, httpx2.ReadTimeout("read timed out"))
    delays = []
    stage = push(client, folder, sleep=delays.append)
    assert delays == [2.0, 17.0, 4.0]
    assert [call.args["added"] for call in client.calls if call.method == "create_commit"][1:3] == [
        commits(stage)[1].args["added"]
    ] * 2  # the failed commit was sent again, as it was
    assert_repo_holds(client, folder)


def test_create_pr_opens_one_pull_request_for_the_whole_push(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    stage = push(client, folder, create_pr=True)
    made = commits(stage)
    assert len(made) >= 3
    assert made[0].args["create_pr"] is True and made[0].args["revision"] is None
    for call in made[1:]:
        assert call.args["create_pr"] is False and call.args["revision"] == "refs/pr/1"
    assert stage.report.pr_url == f"{ENDPOINT}/datasets/{REPO}/discussions/1"
    assert set(client.files(REPO, "main")) == {".gitattributes"}  # main is untouched until the PR is merged
    assert "refs/pr/1" in client.refs(REPO) and not any(ref.startswith("refs/pr/2") for ref in client.refs(REPO))
    assert_repo_holds(client, folder, revision="refs/pr/1")


def test_revision_pushes_to_a_new_branch(folder, tmp_path):
    client = GitHubClient(tmp_path / "remote")
    stage = push(client, folder, revision="v1")
    assert [call.args["branch"] for call in client.calls_to("create_branch", stage.calls)] == ["v1"]
    assert client.calls_to("list_repo_tree", stage.calls)[0].args["revision"] == "v1"
    assert {call.args["revision"] for call in commits(stage)} == {"v1"}
    assert set(client.files(REPO, "main")) == {".gitattributes"}
    assert_repo_holds(client, folder, revision="v1")
    assert commits(push(client, folder, revision="v1")) == []


def test_leftovers_are_deleted_and_other_files_kept(folder, tmp_path):
    from huggingface_hub import CommitOperationAdd

    client = GitHubClient(tmp_path / "remote")
    client.create_repo(REPO, repo_type="dataset")
    leftovers = {
        "pushed.py": b"import datasets  # an old loading script: datasets >= 4 refuses the repo while it exists\n",
        "data/old-config/train-00000-of-00001.parquet": b"PAR1 stale shard",
        "data/referring/train-00000-of-00099.parquet": b"PAR1 stale shard",
    }
    kept = {"LICENSE.txt": b"kept: not the publisher's to delete\n", "scripts/pushed.py": b"# not the loading script\n"}
    client.create_commit(REPO, [CommitOperationAdd(path, content) for path, content in {**leftovers, **kept}.items()],
                         commit_message="older layout", repo_type="dataset")
    stage = push(client, folder)
    made = commits(stage)
    assert sorted(made[-1].args["deleted"]) == sorted(leftovers)
    assert all(call.args["deleted"] == [] for call in made[:-1])
    assert_repo_holds(client, folder, extra=(".gitattributes", *kept))


# --------------------------------------------------------------------------
# The pushed repository, served and loaded
# --------------------------------------------------------------------------

LOAD_PUSHED = r"""
import json
import datasets
datasets.disable_progress_bars()
stream = datasets.load_dataset("acme/pushed", "referring", split="train", streaming=True)
rows = list(stream.decode(False))
print(json.dumps({
    "configs": sorted(datasets.get_dataset_config_names("acme/pushed")),
    "n_shards": stream.num_shards,
    "ids": sorted(row["id"] for row in rows),
    "image_bytes": sum(len(row["image"]["bytes"]) for row in rows),
}))
"""


def test_pushed_repository_loads_through_the_local_hub(history, rebuilt, tmp_path):
    client, _ = history
    with serve_git_repos({REPO: client.git_dir(REPO)}, tmp_path / "hub") as endpoint:
        out = json.loads(run_with_hub(LOAD_PUSHED, endpoint, timeout=180).strip().splitlines()[-1])
    rows = folder_rows(rebuilt, "referring")
    assert out["configs"] == sorted(path.name for path in (rebuilt / "data").iterdir())
    assert out["n_shards"] == len(shard_paths(rebuilt, "referring"))  # the stale shards are gone
    assert out["ids"] == sorted(row["id"] for row in rows)
    assert out["image_bytes"] == sum(len(row["image"]["bytes"]) for row in rows)


# --------------------------------------------------------------------------
# call_with_retries on real huggingface_hub errors
# --------------------------------------------------------------------------

URL = f"{ENDPOINT}/api/datasets/{REPO}/commit/main"


class Flaky:
    """Raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retries_429_honouring_retry_after_and_503_with_backoff():
    call = Flaky(hub_error(429, "POST", URL, headers={"Retry-After": "7"}), hub_error(503, "POST", URL),
                 hub_error(503, "POST", URL))
    delays = []
    assert call_with_retries(call, "commit", sleep=delays.append) == "done"
    assert call.calls == 4
    assert delays == [7.0, 4.0, 8.0]


def test_errors_are_real_hub_http_errors():
    error = hub_error(429, "POST", URL, headers={"Retry-After": "7"})
    assert isinstance(error, HfHubHTTPError)
    assert error.response.status_code == 429 and error.response.headers["Retry-After"] == "7"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_client_errors_are_not_retried(status):
    call = Flaky(hub_error(status, "POST", URL))
    delays = []
    with pytest.raises(HfHubHTTPError) as raised:
        call_with_retries(call, "commit", sleep=delays.append)
    assert raised.value.response.status_code == status
    assert call.calls == 1 and delays == []


def test_gives_up_after_the_last_attempt():
    errors = [hub_error(500, "POST", URL) for _ in range(4)]
    call = Flaky(*errors)
    delays = []
    with pytest.raises(HfHubHTTPError) as raised:
        call_with_retries(call, "commit", attempts=4, base_delay=1.0, sleep=delays.append)
    assert raised.value is errors[-1]
    assert call.calls == 4 and delays == [1.0, 2.0, 4.0]


def test_dropped_connections_are_retried_and_long_waits_capped():
    call = Flaky(httpx2.ConnectError("connection refused"), hub_error(429, "POST", URL, headers={"Retry-After": "3600"}))
    delays = []
    assert call_with_retries(call, "commit", sleep=delays.append) == "done"
    assert delays == [2.0, 300.0]


# --------------------------------------------------------------------------
# upload.py's command line
# --------------------------------------------------------------------------

OPTIONS = [
    "--local-dir", "--repo-id", "--private", "--revision", "--create-pr", "--token", "--configs", "--svit-source",
    "--sa1b-captions-source", "--sa1b-images-source", "--sa1b-tars", "--sample", "--on-bad-record", "--image-check",
    "--sa1b-images", "--allow-sa1b-redistribution", "--max-shard-size", "--rows-per-row-group", "--svit-num-shards", "--num-proc",
]


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as raised:
        upload.main(["--help"])
    assert raised.value.code == 0
    shown = capsys.readouterr().out
    for option in OPTIONS:
        assert re.search(rf"^\s+{option}\b", shown, re.MULTILINE), option
    for config in CONFIGS:
        assert config in shown, config


def test_a_destination_is_required(capsys):
    with pytest.raises(SystemExit) as raised:
        upload.main(["--sample"])
    assert raised.value.code == 2
    assert "give --local-dir, --repo-id, or both" in capsys.readouterr().err


BOGUS_SA1B = ["--sa1b-captions-source", str(SAMPLE_DIR / "internvl-sa1b-caption"),
              "--sa1b-images-source", "/nonexistent/sa1b"]


@pytest.mark.parametrize("configs", [[], ["--configs", "referring", "sa1b-zh-multi"]])
def test_pushing_sa1b_images_needs_explicit_permission(tmp_path, capsys, configs):
    out = tmp_path / "never-built"
    code = upload.main(["--repo-id", "acme/x", "--local-dir", str(out), *configs, *BOGUS_SA1B])
    assert code == 2
    assert "--allow-sa1b-redistribution" in capsys.readouterr().err
    assert not out.exists(), "the guard fires before anything is built"


def test_the_sa1b_guard_is_what_stopped_the_build(tmp_path):
    # The same command with the permission goes on, and fails on the bogus image source long before any push.
    out = tmp_path / "bogus"
    with pytest.raises(Exception, match="nonexistent"):
        upload.main(["--repo-id", "acme/x", "--local-dir", str(out), "--configs", "sa1b-zh-multi",
                     "--allow-sa1b-redistribution", *BOGUS_SA1B])
    assert out.exists()


def test_sa1b_configs_build_locally_without_permission(tmp_path):
    # Without --repo-id nothing is published, so no permission is needed (the card warns against publishing).
    out = tmp_path / "local"
    code = upload.main(["--local-dir", str(out), "--configs", "sa1b-zh-multi", "--sa1b-images-source",
                        str(SAMPLE_DIR / "sa1b"), "--sa1b-captions-source",
                        str(SAMPLE_DIR / "internvl-sa1b-caption")])
    assert code == 0
    assert SA1B_LOCAL_NOTE in (out / "README.md").read_text(encoding="utf-8")


def corrupt_sa1b_copy(dest: Path) -> Path:
    """The sample's SA-1B tars with one JPEG of ``sa_000001.tar`` cut in half: that tar's unit fails to build."""
    import io
    import shutil
    import tarfile

    shutil.copytree(SAMPLE_DIR / "sa1b", dest)
    broken = dest / "sa_000001.tar"
    with tarfile.open(SAMPLE_DIR / "sa1b" / "sa_000001.tar") as source, tarfile.open(broken, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "sa_11202.jpg":
                data = data[: len(data) // 2]
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return dest


def test_an_incomplete_build_is_not_pushed(tmp_path, capsys, monkeypatch):
    import huggingface_hub

    clients = []

    class NoHub:
        def __init__(self, *args, **kwargs):
            clients.append(kwargs)
            raise AssertionError("upload.py tried to push an incomplete build")

    monkeypatch.setattr(huggingface_hub, "HfApi", NoHub)
    out = tmp_path / "incomplete"
    code = upload.main(["--sample", "--repo-id", "acme/x", "--local-dir", str(out), "--configs", "sa1b-zh-single",
                        "--sa1b-images-source", str(corrupt_sa1b_copy(tmp_path / "sa1b")), "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "sa1b-zh-single/sa_000001" in err and "not pushed to acme/x" in err
    assert clients == []
    built = sorted(path.name for path in shard_paths(out, "sa1b-zh-single"))
    assert built, "the other units are built and kept for the re-run"
