"""One run at a time per ``--local-dir``: an exclusive lock on ``<local-dir>/.cache/svit-internvl-build/lock``.

Two runs writing the same folder would race on its parts, shards and card. The lock is an ``flock`` on the lock file,
so it ends with the process that holds it, however that process ends (a run killed with SIGKILL leaves no stale
lock; the file stays, naming the last holder, and is taken over by the next run). The file holds the holder's pid,
host, start time and command line (the token left out), for the message a second run prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

try:
    import fcntl
except ImportError:  # not a POSIX system: no lock (the README says so)
    fcntl = None

LOCK_FILE = "lock"


class FolderInUse(RuntimeError):
    """Another run holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(work_dir: str, command: str):
    """Hold the lock of the build state in ``work_dir`` for the block, or raise ``FolderInUse`` at once, naming the
    process that holds it. ``command``: this run's command line, token left out, written for the next reader."""
    os.makedirs(work_dir, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = os.path.join(work_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(
                f"{os.path.dirname(os.path.dirname(work_dir))} is being built by another run "
                f"({describe_holder(_read_all(fd))}; lock file {path}). Wait for it to end, or use another --local-dir."
            ) from None
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command}
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)  # for every descriptor of the lock file, a forked worker's too
        os.close(fd)


def describe_holder(text: str) -> str:
    """The lock file's content as words: ``pid 123 on host h since <time>: <command>``."""
    try:
        holder = json.loads(text)
        return (f"pid {holder['pid']} on host {holder['host']} since {holder['started']}: "
                f"{holder['command']}")
    except (ValueError, KeyError, TypeError):  # the holder has not written its details yet
        return "a process that has not yet written its pid"


def _read_all(fd: int) -> str:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
