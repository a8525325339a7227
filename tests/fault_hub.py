"""The Hub's write API on 127.0.0.1, with faults on request: a real ``huggingface_hub.HfApi`` pushes to it over HTTP.

``serve_fault_hub(client)`` answers the routes ``svitpipe.publish.hub_push.push_folder`` reaches through ``HfApi``
(``create_repo``, ``list_repo_tree``, and ``create_commit``'s ``validate-yaml``, ``preupload`` and ``commit``) from a
``git_hub_client.GitHubClient``, which keeps the repositories as real git repos. Every file is a regular upload
(inlined in the commit), so no LFS or Xet transfer is involved.

``hub.fail(route, *answers)`` makes the next requests to ``route`` (one of ``ROUTES``) get those answers instead, as
a proxy or gateway in front of the Hub would give them: ``GATEWAY_ERROR(502)`` is nginx's HTML error page.
``hub.hits`` lists ``(route, status)`` for every request answered.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import RepoFolder

from git_hub_client import GitHubClient

ROUTES = ("create_repo", "tree", "validate-yaml", "preupload", "commit")
_STATUS_TEXT = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/html"
    headers: tuple = ()


def GATEWAY_ERROR(status: int, headers: tuple = ()) -> Answer:  # noqa: N802 - reads as the answer it makes
    """The HTML page nginx answers when the service behind it fails."""
    title = f"{status} {_STATUS_TEXT.get(status, 'Error')}"
    page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Answer(status, page.encode(), "text/html", headers)


@dataclass
class FaultHub:
    client: GitHubClient
    endpoint: str = ""
    faults: dict = field(default_factory=lambda: defaultdict(list))
    hits: list = field(default_factory=list)

    def fail(self, route: str, *answers: Answer) -> None:
        assert route in ROUTES, route
        self.faults[route].extend(answers)

    def answer(self, method: str, path: str, query: dict, body: bytes) -> tuple:
        route, repo_id, revision = _route(method, path)
        if route is None:
            return None, Answer(404, b'{"error": "no such route"}', "application/json")
        if self.faults[route]:
            return route, self.faults[route].pop(0)
        try:
            return route, Answer(200, json.dumps(self._serve(route, repo_id, revision, query, body)).encode(),
                                 "application/json")
        except HfHubHTTPError as error:
            status = error.response.status_code
            return route, Answer(status, json.dumps({"error": str(error)}).encode(), "application/json")

    def _serve(self, route, repo_id, revision, query, body):
        if route == "create_repo":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            self.client.create_repo(repo_id, repo_type=payload.get("type"), exist_ok=False)
            return {"url": f"{self.endpoint}/datasets/{repo_id}"}
        if route == "tree":
            recursive = query.get("recursive", ["False"])[0].lower() == "true"
            return [_tree_entry(entry) for entry in
                    self.client.list_repo_tree(repo_id, recursive=recursive, revision=revision, repo_type="dataset")]
        if route == "validate-yaml":
            return {"errors": [], "warnings": []}
        if route == "preupload":
            files = json.loads(body)["files"]
            return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        operations = []
        for line in lines:
            if line["key"] == "file":
                content = base64.b64decode(line["value"]["content"])
                operations.append(CommitOperationAdd(line["value"]["path"], content))
            elif line["key"] == "deletedFile":
                operations.append(CommitOperationDelete(line["value"]["path"]))
            elif line["key"] != "header":
                raise AssertionError(f"unexpected commit operation {line['key']}")
        create_pr = query.get("create_pr", ["0"])[0] == "1"
        info = self.client.create_commit(repo_id, operations, commit_message=header["summary"], repo_type="dataset",
                                         revision=revision, create_pr=create_pr)
        return {"commitUrl": info.commit_url, "commitOid": info.oid, "pullRequestUrl": info.pr_url}


def _route(method: str, path: str) -> tuple:
    """``(route, repo_id, revision)`` for a request path of the Hub API."""
    parts = [unquote(part) for part in path.strip("/").split("/")]
    if method == "POST" and parts == ["api", "repos", "create"]:
        return "create_repo", None, None
    if method == "POST" and parts == ["api", "validate-yaml"]:
        return "validate-yaml", None, None
    if len(parts) >= 6 and parts[:2] == ["api", "datasets"]:
        repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
        if method == "GET" and action == "tree":
            return "tree", repo_id, revision
        if method == "POST" and action in ("preupload", "commit"):
            return action, repo_id, revision
    return None, None, None


def _tree_entry(entry) -> dict:
    if isinstance(entry, RepoFolder):
        return {"type": "directory", "oid": entry.tree_id, "path": entry.path}
    out = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": entry.path}
    if entry.lfs is not None:
        out["lfs"] = {"oid": entry.lfs.sha256, "size": entry.lfs.size, "pointerSize": entry.lfs.pointer_size}
    return out


@contextlib.contextmanager
def serve_fault_hub(client: GitHubClient):
    """A ``FaultHub`` over ``client``, served on 127.0.0.1 (``hub.endpoint``) until the block ends."""
    hub = FaultHub(client)
    lock = threading.Lock()  # GitHubClient is not thread-safe; the push makes one request at a time anyway

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self):
            split = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                route, answer = hub.answer(self.command, split.path, parse_qs(split.query), body)
                hub.hits.append((route, answer.status))
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
