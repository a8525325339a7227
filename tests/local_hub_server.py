"""Launcher for a local, offline Hub-compatible server used by the tests.

Runs olah's ASGI app (a self-hosted Hub mirror, pinned to 0.5.4) behind a small
ASGI middleware that closes two gaps olah has when it serves local git repos in
offline mode:

* Range requests: olah ignores ``Range`` and always answers 200 with the whole
  file.  ``HfFileSystem`` trusts the server to honour the range, so streaming a
  Parquet file larger than its 64 KiB block size reads wrong bytes.  The
  middleware answers ranged GETs on ``/resolve/`` with ``206`` and the slice.
* Requests that name no revision and missing files: olah answers 401
  "Repository not found" for ``/api/<type>/<org>/<name>`` (it looks the newest
  commit up in its upstream cache, which is empty offline) and for a
  ``/resolve/<rev>/<path>`` whose path is not in the repo.  The middleware
  resolves the default branch from the local git repo, and answers a missing
  file or revision with the 404 + ``X-Error-Code`` huggingface_hub expects.

Usage: python local_hub_server.py --config olah.toml
(the config is olah's TOML format; host, port and mirrors-path are read from it).
"""

import argparse
import json
import logging
import os
import re
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote

import git
import gitdb
import uvicorn
from olah.configs import OlahConfig
from olah.server import AppSettings
from olah.server import app as olah_app

# /api/<type>/<org>/<name>  (repo info without a revision)
_API_INFO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)/?$")
# /api/<type>/<org>/<name>/tree/<rev>  (root listing: olah's route needs a trailing slash)
_API_TREE_ROOT = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)/tree/([^/]+)$")
# [/<type>]/<org>/<name>/resolve/<rev>/<path>
_RESOLVE = re.compile(r"^/(?:(datasets|spaces|models)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")


def parse_range(header: str, size: int) -> Optional[Tuple[int, int]]:
    """Parse a single ``bytes=`` range into an inclusive (start, end) pair.

    Returns None when the header is not a single byte range we understand (the
    caller then serves the whole file, which RFC 9110 allows).  Raises
    ValueError when the range is syntactically fine but unsatisfiable.
    """
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (m.group(1) == "" and m.group(2) == ""):
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # bytes=-n: the last n bytes
        n = int(last)
        if n == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        raise ValueError("unsatisfiable range")
    return start, end


class LocalHubMiddleware:
    def __init__(self, app, mirrors_path: List[str]):
        self.app = app
        self.mirrors_path = mirrors_path
        self._repos: Dict[str, git.Repo] = {}  # one Repo (and git cat-file process) per mirror

    def _local_repo(self, repo_type: str, org: str, name: str) -> Optional[git.Repo]:
        for root in self.mirrors_path:
            path = os.path.join(root, repo_type, org, name)
            if path in self._repos:
                return self._repos[path]
            if os.path.isdir(path):
                try:
                    self._repos[path] = git.Repo(path)
                    return self._repos[path]
                except git.exc.InvalidGitRepositoryError:
                    continue
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        # Match on the raw (still percent-encoded) path so that a revision such
        # as refs%2Fconvert%2Fparquet stays one segment.
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        path = path.split("?", 1)[0]

        m = _API_INFO.match(path)
        repo = self._local_repo(*map(unquote, m.groups())) if m else None
        if repo is not None:
            # No revision named: serve the metadata of the branch checked out in the mirror.
            branch = repo.head.reference.name if not repo.head.is_detached else "main"
            return await self.app(_with_path(scope, path.rstrip("/") + "/revision/" + branch), receive, send)

        m = _API_TREE_ROOT.match(path)
        if m and self._local_repo(*map(unquote, m.groups()[:3])) is not None:
            return await self.app(_with_path(scope, path + "/"), receive, send)

        m = _RESOLVE.match(path)
        if m:
            repo_type, org, name, rev, file_path = m.groups()
            repo = self._local_repo(repo_type or "models", unquote(org), unquote(name))
            if repo is not None:
                return await self._resolve(repo, unquote(rev), unquote(file_path), (path, m), scope, receive, send)
        return await self.app(scope, receive, send)

    async def _resolve(self, repo: git.Repo, rev: str, file_path: str, match, scope, receive, send):
        try:
            commit = repo.commit(rev)
        except (gitdb.exc.BadName, gitdb.exc.BadObject, ValueError):
            return await _send_error(send, "RevisionNotFound", f"Invalid rev id: {rev}")
        try:
            entry = commit.tree / file_path
        except KeyError:
            entry = None
        if entry is None or entry.type != "blob":
            return await _send_error(
                send, "EntryNotFound", f"{file_path} does not exist on \"{rev}\"", commit.hexsha
            )

        # Hand olah the commit id instead of the revision: it routes on the decoded
        # path, where a revision such as refs/convert/parquet would span segments.
        path, m = match
        scope = _with_path(scope, path[:m.start(4)] + commit.hexsha + path[m.end(4):])

        range_header = _header(scope, b"range")
        if scope["method"] != "GET" or range_header is None:
            return await self.app(scope, receive, send)

        # Ranged GET: let olah produce the whole file (it ignores Range anyway),
        # then send only the requested slice.
        status, headers, body = await _collect(self.app, scope, receive)
        if status != 200:
            return await _send(send, status, headers, body)
        size = len(body)
        try:
            byte_range = parse_range(range_header, size)
        except ValueError:
            return await _send(send, 416, [(b"content-range", f"bytes */{size}".encode())], b"")
        keep = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")]
        keep.append((b"accept-ranges", b"bytes"))
        keep.append((b"x-repo-commit", commit.hexsha.encode()))
        if byte_range is None:
            return await _send(send, 200, keep, body)
        start, end = byte_range
        keep.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        return await _send(send, 206, keep, body[start:end + 1])


def _with_path(scope, raw_path: str):
    new_scope = dict(scope)
    new_scope["path"] = unquote(raw_path)
    new_scope["raw_path"] = raw_path.encode("latin-1")
    return new_scope


def _header(scope, name: bytes) -> Optional[str]:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _collect(app, scope, receive):
    """Run the wrapped app and gather its whole response (status, headers, body)."""
    scope = dict(scope)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
    status, headers, chunks = 500, [], []

    async def capture(message):
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return status, headers, b"".join(chunks)


async def _send(send, status: int, headers, body: bytes):
    headers = list(headers) + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send, code: str, message: str, commit: Optional[str] = None):
    # huggingface_hub maps X-Error-Code to RevisionNotFoundError / RemoteEntryNotFoundError;
    # X-Repo-Commit lets hf_hub_download remember the miss in its cache.
    headers = [(b"x-error-code", code.encode()), (b"x-error-message", message.encode())]
    if commit is not None:
        headers.append((b"x-repo-commit", commit.encode()))
    headers.append((b"content-type", b"application/json"))
    body = json.dumps({"error": message}).encode()
    await _send(send, 404, headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", required=True, help="olah TOML config file")
    args = parser.parse_args()

    config = OlahConfig(args.config)
    if not config.offline:
        raise SystemExit("local_hub_server: set [accessibility] offline = true in the config")
    # olah.server.init() would also redirect stdout/stderr into its own logger;
    # set the two pieces of app state its routes need directly instead.
    olah_app.state.app_settings = AppSettings(config=config)
    olah_app.state.logger = logging.getLogger("olah")

    app = LocalHubMiddleware(olah_app, [os.path.abspath(p) for p in config.mirrors_path])
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
