"""Push a verified folder to a Hub dataset repo: only what changed, in batches, card last, retrying what is transient.

* Resumable and idempotent: the remote tree is listed first and a file is sent only when the remote copy is missing
  or differs (LFS files by SHA-256, others by git blob id). A re-run after an interruption sends what is missing; a
  re-run with the same input makes no commit at all.
* Data first, card last: shards go in commits of at most ``batch_size`` files; the last commit adds the card and
  ``dataset_infos.json`` and deletes shards left from earlier builds, so the repo switches to the new build at once.
* 429 and 5xx answers, answers whose body is not JSON (a proxy's HTML error page) and dropped connections are
  retried with exponential backoff (honouring ``Retry-After``), on every call the push makes.
* The token is passed to ``huggingface_hub`` and never printed or logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import httpx2
from datasets.utils import logging
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import HfHubHTTPError

from .card import CARD_FILE, DATASET_INFOS_FILE

logger = logging.get_logger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
WORK_FOLDER = ".cache"  # build state inside the local folder; never pushed
CARD_FILES = (DATASET_INFOS_FILE, CARD_FILE)


class HubAnswerError(RuntimeError):
    """The Hub (or a proxy in front of it) kept answering with a body that is not JSON."""


def call_with_retries(
    call: Callable, what: str, attempts: int = 6, base_delay: float = 2.0, sleep: Callable = time.sleep
):
    """``call()``, retried on transient failures with exponential backoff; other errors are raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status not in RETRYABLE_STATUS or attempt == attempts:
                raise
            retry_after = err.response.headers.get("Retry-After") if err.response is not None else None
            delay = float(retry_after) if retry_after and retry_after.isdigit() else base_delay * 2 ** (attempt - 1)
            reason = f"HTTP {status}"
        except json.JSONDecodeError as err:
            # huggingface_hub reads some answers as JSON before it checks their status (validate-yaml does), so a
            # gateway's HTML error page (a 502) arrives as a decoding error, with no status to look at.
            excerpt = " ".join(err.doc[:120].split()) if isinstance(err.doc, str) else ""
            if attempt == attempts:
                raise HubAnswerError(f"{what}: the Hub answered {attempts} times with a body that is not JSON "
                                     f"(a proxy or gateway error?): {excerpt!r}") from err
            delay = base_delay * 2 ** (attempt - 1)
            reason = f"an answer that is not JSON ({excerpt[:60]!r})"
        except (httpx2.TransportError, ConnectionError, TimeoutError) as err:
            if attempt == attempts:
                raise
            delay = base_delay * 2 ** (attempt - 1)
            reason = type(err).__name__
        delay = min(delay, 300.0)
        logger.warning(f"{what}: {reason}, retrying in {delay:.0f} s (attempt {attempt}/{attempts})")
        sleep(delay)
    raise AssertionError("unreachable")


def local_files(folder: str) -> list[str]:
    """Files to publish, relative to ``folder`` with ``/`` separators, sorted; build state excluded."""
    found = []
    for root, dirs, files in os.walk(folder):
        relative_root = os.path.relpath(root, folder)
        if relative_root == ".":
            dirs[:] = [d for d in dirs if d not in (WORK_FOLDER, ".git")]
        for name in files:
            found.append(os.path.normpath(os.path.join(relative_root, name)).replace(os.sep, "/"))
    return sorted(found)


def git_blob_id(path: str) -> str:
    with open(path, "rb") as f:
        content = f.read()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_same(local_path: str, remote) -> bool:
    """Whether a remote ``RepoFile`` already holds the local file's content."""
    if remote.size != os.path.getsize(local_path):
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == sha256_of(local_path)
    return remote.blob_id == git_blob_id(local_path)


@dataclass
class PushPlan:
    """What a push will do. Paths are relative to the repo root."""

    data_uploads: list = field(default_factory=list)
    card_uploads: list = field(default_factory=list)
    deletions: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.data_uploads or self.card_uploads or self.deletions)


def plan_push(folder: str, remote_files: dict, repo_name: str) -> PushPlan:
    plan = PushPlan()
    local = local_files(folder)
    for path in local:
        remote = remote_files.get(path)
        if remote is not None and is_same(os.path.join(folder, path), remote):
            plan.unchanged.append(path)
        elif path in CARD_FILES:
            plan.card_uploads.append(path)
        else:
            plan.data_uploads.append(path)
    local_set = set(local)
    for path in sorted(remote_files):
        stale_shard = path.startswith("data/") and path not in local_set
        # datasets >= 4 refuses a repo holding a loading script named after it
        loading_script = path == f"{repo_name}.py"
        if stale_shard or loading_script:
            plan.deletions.append(path)
    return plan


@dataclass
class PushReport:
    commits: list = field(default_factory=list)
    uploaded: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    unchanged: int = 0
    pr_url: Optional[str] = None


def push_folder(
    folder: str,
    repo_id: str,
    *,
    api,
    revision: Optional[str] = None,
    private: bool = False,
    create_pr: bool = False,
    batch_size: int = 50,
    sleep: Callable = time.sleep,
) -> PushReport:
    """Make the dataset repo ``repo_id`` hold exactly the publishable files of ``folder``.

    ``api`` is a ``huggingface_hub.HfApi`` (or an object with the same methods, for tests).
    """
    retry = lambda call, what: call_with_retries(call, what, sleep=sleep)  # noqa: E731
    retry(lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True), "create_repo")
    if revision and revision != "main":
        retry(
            lambda: api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True), "create_branch"
        )
    remote = {
        entry.path: entry
        for entry in retry(
            lambda: list(api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)),
            "list_repo_tree",
        )
        if hasattr(entry, "blob_id")
    }
    plan = plan_push(folder, remote, repo_id.split("/")[-1])
    report = PushReport(unchanged=len(plan.unchanged))
    if plan.is_empty:
        logger.info(f"{repo_id} already holds this build: nothing to push")
        return report
    batches = [plan.data_uploads[i : i + batch_size] for i in range(0, len(plan.data_uploads), batch_size)]
    target_revision = revision
    for number, batch in enumerate(batches, start=1):
        operations = [CommitOperationAdd(path, os.path.join(folder, path)) for path in batch]
        info = _commit(api, retry, repo_id, operations, f"Upload shards ({number}/{len(batches)})", target_revision,
                       create_pr and report.pr_url is None)
        target_revision = _after_commit(info, report, target_revision)
        report.uploaded += batch
    operations = [CommitOperationDelete(path) for path in plan.deletions]
    operations += [CommitOperationAdd(path, os.path.join(folder, path)) for path in plan.card_uploads]
    if operations:
        info = _commit(api, retry, repo_id, operations, "Update dataset card and infos", target_revision,
                       create_pr and report.pr_url is None)
        _after_commit(info, report, target_revision)
        report.uploaded += plan.card_uploads
        report.deleted += plan.deletions
    return report


def _commit(api, retry, repo_id, operations, message, revision, create_pr):
    return retry(
        lambda: api.create_commit(
            repo_id, operations, commit_message=message, repo_type="dataset", revision=revision, create_pr=create_pr
        ),
        f"commit '{message}'",
    )


def _after_commit(info, report: PushReport, revision: Optional[str]) -> Optional[str]:
    """Record the commit; after the commit that opened a pull request, later commits go to that PR's ref."""
    report.commits.append(getattr(info, "oid", None))
    pr_url = getattr(info, "pr_url", None)
    if pr_url and report.pr_url is None:
        report.pr_url = pr_url
        return getattr(info, "pr_revision", None) or f"refs/pr/{pr_url.rstrip('/').rsplit('/', 1)[-1]}"
    return revision
