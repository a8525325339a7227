"""A static file server on 127.0.0.1 that answers HTTP ``Range`` requests (206 and the slice), as the web servers and
object stores behind ``https://`` sources do: fsspec's HTTP filesystem reads archives by ranges and refuses a server
that ignores them. Folders are listed as ``http.server`` lists them (an HTML page of links). With a ``gate``
(``threading.Event``), every request waits until it is set: a source that stalls, to hold a run mid-way."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gate = None

    def send_head(self):
        if self.gate is not None:
            self.gate.wait()
        path = self.translate_path(self.path)
        wanted = _RANGE.match(self.headers.get("Range", "").strip())
        if os.path.isdir(path) or not wanted or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = wanted.groups()
        if first == "":  # the last N bytes
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Body(body)

    def log_message(self, *args):
        pass


class _Body:
    """What ``send_head`` returns for ``copyfile`` to send."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, size=-1):
        data, self.data = self.data, b""
        return data

    def close(self):
        pass


@contextlib.contextmanager
def serve_folder(folder, gate=None):
    """``http://127.0.0.1:<port>`` serving ``folder`` until the block ends."""
    handler = type("Handler", (RangeRequestHandler,), {"gate": gate})
    handler = functools.partial(handler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
