"""A Hub client that commits to local git repositories: the write half of the Hub, for push tests.

``GitHubClient`` implements the ``huggingface_hub.HfApi`` methods ``svitpipe.publish.hub_push.push_folder`` calls
(``create_repo``, ``create_branch``, ``list_repo_tree``, ``create_commit``) with the Hub's semantics, on bare git
repositories under a root folder (``<root>/<org>/<name>.git``):

* a new repo starts with one commit holding ``.gitattributes``, as on the Hub;
* one ``create_commit`` is one git commit (the operations are applied to the parent's tree); ``create_pr=True``
  opens ``refs/pr/<n>`` from the revision and answers with the pull request's URL;
* ``list_repo_tree`` answers ``RepoFile`` / ``RepoFolder`` objects; ``*.parquet`` files are LFS files: their
  ``lfs.sha256`` is the content's, their ``blob_id`` the LFS pointer's, as the Hub reports them. The repository
  itself keeps the real content, so it can be served (``local_hub.serve_git_repos``) and loaded;
* errors are the ones ``huggingface_hub`` raises for the Hub's answers (``hf_raise_for_status`` on real responses).

Every call is recorded in ``calls``; ``fail_on(method, n, error)`` makes the n-th call of ``method`` raise ``error``
before doing anything, as a dropped connection, a server error or a killed process would.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx2
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import hf_raise_for_status

ENDPOINT = "https://huggingface.co"
HUB_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hub",
    "GIT_AUTHOR_EMAIL": "hub@example.invalid",
    "GIT_COMMITTER_NAME": "hub",
    "GIT_COMMITTER_EMAIL": "hub@example.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def hub_error(status: int, method: str, url: str, error_code: Optional[str] = None, headers: Optional[dict] = None):
    """The exception ``huggingface_hub`` raises when the Hub answers ``status`` (with these headers)."""
    headers = dict(headers or {})
    if error_code:
        headers["X-Error-Code"] = error_code
    response = httpx2.Response(status, headers=headers, request=httpx2.Request(method, url))
    try:
        hf_raise_for_status(response)
    except Exception as error:  # noqa: BLE001 - returned, for the caller to raise
        return error
    raise AssertionError(f"hf_raise_for_status did not raise for HTTP {status}")


def is_lfs(path: str) -> bool:
    return path.endswith(".parquet")


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Call:
    method: str
    args: dict = field(default_factory=dict)
    raised: Optional[BaseException] = None  # the injected failure this call raised, if any


class GitHubClient:
    def __init__(self, root):
        self.root = Path(root)
        self.calls: list[Call] = []
        self._failures: dict[tuple, BaseException] = {}
        self._sha256: dict[str, str] = {}

    # -- test controls ------------------------------------------------------------------------------------------

    def fail_on(self, method: str, call_number: int, error: BaseException) -> None:
        """Make the ``call_number``-th call of ``method`` (counting from 1, failed calls included) raise ``error``."""
        self._failures[(method, call_number)] = error

    def fail_next(self, method: str, error: BaseException) -> None:
        self.fail_on(method, sum(call.method == method for call in self.calls) + 1, error)

    def calls_to(self, method: str, calls: Optional[list] = None) -> list[Call]:
        """The calls of ``method`` (among ``calls``, default all) that went through."""
        return [call for call in (self.calls if calls is None else calls) if call.method == method and not call.raised]

    def git_dir(self, repo_id: str) -> Path:
        return self.root / f"{repo_id}.git"

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """``path -> content`` of every file at ``revision``."""
        out = {}
        for _, _, sha, _, path in self._ls_tree(repo_id, revision):
            out[path] = self._git(repo_id, "cat-file", "blob", sha, text=False)
        return out

    def refs(self, repo_id: str) -> list[str]:
        return self._git(repo_id, "for-each-ref", "--format=%(refname)").split()

    def commit_count(self, repo_id: str, revision: str = "main") -> int:
        return int(self._git(repo_id, "rev-list", "--count", revision).strip())

    # -- HfApi methods ----------------------------------------------------------------------------------------

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, token=None, **kwargs):
        self._record("create_repo", repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok)
        git_dir = self.git_dir(repo_id)
        if git_dir.exists():
            if not exist_ok:
                raise hub_error(409, "POST", f"{ENDPOINT}/api/repos/create")
        else:
            git_dir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(git_dir)], check=True, env=self._env())
            self._commit(repo_id, "refs/heads/main", None, [CommitOperationAdd(".gitattributes", HUB_GITATTRIBUTES)],
                         "initial commit")
        return f"{ENDPOINT}/datasets/{repo_id}"

    def create_branch(self, repo_id, *, branch, revision=None, repo_type=None, exist_ok=False, token=None):
        self._record("create_branch", repo_id=repo_id, branch=branch, revision=revision, exist_ok=exist_ok)
        self._require_repo(repo_id)
        if self._resolve(repo_id, f"refs/heads/{branch}") is not None:
            if not exist_ok:
                raise hub_error(409, "POST", f"{ENDPOINT}/api/datasets/{repo_id}/branch/{branch}")
            return
        start = self._resolve(repo_id, revision or "main")
        self._git(repo_id, "update-ref", f"refs/heads/{branch}", start)

    def list_repo_tree(self, repo_id, path_in_repo=None, *, recursive=False, expand=False, revision=None,
                       repo_type=None, token=None):
        self._record("list_repo_tree", repo_id=repo_id, revision=revision, recursive=recursive)
        self._require_repo(repo_id)
        commit = self._resolve(repo_id, revision or "main")
        if commit is None:
            raise hub_error(404, "GET", f"{ENDPOINT}/api/datasets/{repo_id}/tree/{revision}", "RevisionNotFound")
        entries = []
        args = ["ls-tree", "-l", "-t"] + (["-r"] if recursive else []) + [commit]
        for line in self._git(repo_id, *args).splitlines():
            meta, path = line.split("\t", 1)
            _, kind, sha, size = meta.split()
            if kind == "tree":
                entries.append(RepoFolder(path=path, oid=sha))
                continue
            size = int(size)
            if is_lfs(path):
                sha256 = self._content_sha256(repo_id, sha)
                pointer = lfs_pointer(sha256, size)
                entries.append(RepoFile(path=path, size=size, oid=git_blob_sha(pointer),
                                        lfs={"size": size, "oid": sha256, "pointerSize": len(pointer)}))
            else:
                entries.append(RepoFile(path=path, size=size, oid=sha))
        return iter(entries)

    def create_commit(self, repo_id, operations, *, commit_message, commit_description=None, token=None,
                      repo_type=None, revision=None, create_pr=None, num_threads=5, parent_commit=None,
                      run_as_future=False):
        operations = list(operations)
        self._record(
            "create_commit",
            repo_id=repo_id,
            revision=revision,
            create_pr=bool(create_pr),
            message=commit_message,
            added=[op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)],
            deleted=[op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)],
        )
        self._require_repo(repo_id)
        revision = revision or "main"
        base = self._resolve(repo_id, revision)
        if base is None:
            raise hub_error(404, "POST", f"{ENDPOINT}/api/datasets/{repo_id}/commit/{revision}", "RevisionNotFound")
        pr_url = None
        if create_pr:
            number = 1 + sum(ref.startswith("refs/pr/") for ref in self.refs(repo_id))
            ref = f"refs/pr/{number}"
            pr_url = f"{ENDPOINT}/datasets/{repo_id}/discussions/{number}"
        elif revision.startswith("refs/"):
            ref = revision
        else:
            ref = f"refs/heads/{revision}"
        oid = self._commit(repo_id, ref, base, operations, commit_message)
        return CommitInfo(
            commit_url=f"{ENDPOINT}/datasets/{repo_id}/commit/{oid}",
            commit_message=commit_message,
            commit_description=commit_description or "",
            oid=oid,
            pr_url=pr_url,
        )

    # -- git ----------------------------------------------------------------------------------------------------

    def _record(self, method: str, **args) -> None:
        call = Call(method, args)
        self.calls.append(call)
        error = self._failures.pop((method, sum(c.method == method for c in self.calls)), None)
        if error is not None:
            call.raised = error
            raise error

    def _require_repo(self, repo_id: str) -> None:
        if not self.git_dir(repo_id).exists():
            raise hub_error(404, "GET", f"{ENDPOINT}/api/datasets/{repo_id}", "RepoNotFound")

    @staticmethod
    def _env(**extra) -> dict:
        return {**os.environ, **_GIT_ENV, **extra}

    def _git(self, repo_id: str, *args: str, stdin: bytes = b"", text: bool = True, env: Optional[dict] = None):
        result = subprocess.run(
            ["git", "--git-dir", str(self.git_dir(repo_id)), *args],
            input=stdin, capture_output=True, env=env or self._env(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode() if text else result.stdout

    def _resolve(self, repo_id: str, revision: str) -> Optional[str]:
        result = subprocess.run(
            ["git", "--git-dir", str(self.git_dir(repo_id)), "rev-parse", "--verify", "-q", f"{revision}^{{commit}}"],
            capture_output=True, text=True, env=self._env(),
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def _ls_tree(self, repo_id: str, revision: str) -> list[tuple]:
        rows = []
        for line in self._git(repo_id, "ls-tree", "-r", "-l", revision).splitlines():
            meta, path = line.split("\t", 1)
            mode, kind, sha, size = meta.split()
            rows.append((mode, kind, sha, int(size), path))
        return rows

    def _content_sha256(self, repo_id: str, blob: str) -> str:
        if blob not in self._sha256:
            content = self._git(repo_id, "cat-file", "blob", blob, text=False)
            self._sha256[blob] = hashlib.sha256(content).hexdigest()
        return self._sha256[blob]

    def _commit(self, repo_id: str, ref: str, parent: Optional[str], operations: list, message: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            env = self._env(GIT_INDEX_FILE=os.path.join(tmp, "index"))
            if parent is not None:
                self._git(repo_id, "read-tree", parent, env=env)
            present = set(self._git(repo_id, "ls-files", env=env).splitlines())
            for operation in operations:
                path = operation.path_in_repo
                if isinstance(operation, CommitOperationAdd):
                    with operation.as_file() as f:
                        content = f.read()
                    blob = self._git(repo_id, "hash-object", "-w", "--stdin", stdin=content).strip()
                    self._git(repo_id, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
                    present.add(path)
                elif isinstance(operation, CommitOperationDelete):
                    doomed = [p for p in present if p == path or (operation.is_folder and p.startswith(path.rstrip("/") + "/"))]
                    if not doomed:
                        raise hub_error(404, "POST", f"{ENDPOINT}/api/datasets/{repo_id}/commit", "EntryNotFound")
                    removals = "".join(f"0 {'0' * 40}\t{p}\n" for p in doomed)  # mode 0: drop the entry
                    self._git(repo_id, "update-index", "--index-info", stdin=removals.encode(), env=env)
                    present.difference_update(doomed)
                else:
                    raise TypeError(f"unsupported operation {operation!r}")
            tree = self._git(repo_id, "write-tree", env=env).strip()
            if parent is not None and tree == self._git(repo_id, "rev-parse", f"{parent}^{{tree}}").strip():
                raise hub_error(400, "POST", f"{ENDPOINT}/api/datasets/{repo_id}/commit",
                                headers={"X-Error-Message": "No files have been modified since last commit"})
            parents = ["-p", parent] if parent else []
            oid = self._git(repo_id, "commit-tree", tree, *parents, "-m", message).strip()
        self._git(repo_id, "update-ref", ref, oid)
        return oid
