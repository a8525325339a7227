"""SA-1B without its images (issue 13): the join's speed against reading the embedded build, and the tar member
index's cost against reading the tar.

* **Joined stream vs embed shards.** The same ``sa1b-en-single`` rows, read as a stream (images undecoded): from the
  shards built with ``--sa1b-images embed``, and from the ``--sa1b-images reference`` shards through
  ``svitpipe.sa1b.attach_images`` (member indexes already cached, as after a first epoch). Rows/s and MB/s of image
  bytes; target: joined >= 0.8 of embedded.
* **Index build vs one read of the tar.** ``build_tar_member_index`` (headers only, seeking over the data) against
  reading the whole tar sequentially in 1 MB blocks. Both read warm (the tar in the page cache), so the ratio is of
  the work each does, not of the disk; the same pair is also timed after asking the kernel to drop the tar's pages
  (``posix_fadvise``; it may be a no-op on some filesystems, which the cold/warm read ratio shows), and the bytes
  the index pass reads are counted against the tar's. Target: < 0.05.

Inputs: generated SA-1B-like tars (``datagen.sa1b_source``: photo-like JPEGs of 0.6-1.0 MB with their ``.json``),
one caption line per image.
"""

from __future__ import annotations

import os

from . import datagen
from .common import Measurement, Results, evict, timed_interleaved

JOIN_TARGET = 0.8
INDEX_TARGET = 0.05
_BLOCK = 1 << 20


def _build(source: dict, out: str, mode: str) -> str:
    from svitpipe.publish.upload import main

    argv = ["--local-dir", out, "--configs", "sa1b-en-single", "--sa1b-images", mode,
            "--sa1b-captions-source", os.path.join(source["root"], "captions"),
            "--sa1b-images-source", os.path.join(source["root"], "images")]
    if main(argv) != 0:
        raise RuntimeError(f"upload.py {' '.join(argv)} failed")
    return out


def _read_rows(stream) -> tuple[int, int]:
    rows = size = 0
    for row in stream:
        rows += 1
        size += len(row["image"]["bytes"])
    return rows, size


def _read_whole(path: str) -> int:
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(_BLOCK)
            if not block:
                return size
            size += len(block)


def _bytes_an_index_reads(path: str) -> int:
    from svitpipe.sa1b.tar_member_index import scan_tar_headers

    read = [0]
    with open(path, "rb", buffering=0) as f:
        descriptor = f.fileno()

        def read_at(at: int, count: int) -> bytes:
            data = os.pread(descriptor, count, at)
            read[0] += len(data)
            return data

        scan_tar_headers(read_at, os.fstat(descriptor).st_size, path)
    return read[0]


def run(results: Results, work_dir: str, tars: int, per_tar: int, repeats: int) -> None:
    from datasets import load_dataset

    from svitpipe.sa1b import attach_images
    from svitpipe.sa1b.tar_member_index import build_tar_member_index

    source = datagen.sa1b_source(work_dir, tars, per_tar)
    images = os.path.join(source["root"], "images")
    tar_paths = sorted(os.path.join(images, name) for name in os.listdir(images) if name.endswith(".tar"))
    published = os.path.join(work_dir, "published", "join", os.path.basename(source["root"]))
    embed = _build(source, os.path.join(published, "embed"), "embed")
    reference = _build(source, os.path.join(published, "reference"), "reference")
    index_dir = os.path.join(published, "tar-member-index")

    def embedded():
        return _read_rows(load_dataset(embed, "sa1b-en-single", split="train", streaming=True).decode(False))

    def joined():
        stream = load_dataset(reference, "sa1b-en-single", split="train", streaming=True)
        return _read_rows(attach_images(stream, images, index_dir=index_dir).decode(False))

    timings = timed_interleaved({"embed-read": embedded, "joined-read": joined}, repeats, warmup=True)
    (rows, size), (joined_rows, joined_size) = timings["embed-read"][1], timings["joined-read"][1]
    if (rows, size) != (joined_rows, joined_size):
        raise RuntimeError(f"the joined stream gave {joined_rows} rows / {joined_size} B, embed {rows} / {size}")
    notes = {"embed-read": "embed shards, streamed, images undecoded",
             "joined-read": "reference shards + attach_images (indexes cached), undecoded"}
    for name, (seconds, _) in timings.items():
        results.add("join", Measurement(name, seconds, rows, size, notes[name]))
    ratio = results.ratio("join/joined-vs-embed", results.get("join/embed-read").median /
                          results.get("join/joined-read").median, of="joined stream rows/s",
                          over="embed shards rows/s", how="medians, same rows and image bytes, warm page cache")
    results.target(f"joined stream rows/s >= {JOIN_TARGET} of embed shards ({rows} rows)", ratio, JOIN_TARGET)

    tar_bytes = sum(os.path.getsize(path) for path in tar_paths)
    members = sum(len(build_tar_member_index(path).members) for path in tar_paths)

    def index_all(_=None):
        return [build_tar_member_index(path) for path in tar_paths]

    def read_all(_=None):
        return sum(_read_whole(path) for path in tar_paths)

    def cold():
        evict(tar_paths)

    cases = {"index-build-warm": index_all, "tar-read-warm": read_all,
             "index-build-cold": (index_all, cold), "tar-read-cold": (read_all, cold)}
    timings = timed_interleaved(cases, repeats, warmup=True)
    for name, (seconds, _) in timings.items():
        results.add("join", Measurement(name, [s / len(tar_paths) for s in seconds], None, tar_bytes // len(tar_paths),
                                        f"per tar ({members // len(tar_paths)} regular members)"))
    for temperature in ("warm", "cold"):
        ratio = results.ratio(f"join/index-vs-read-{temperature}",
                              results.get(f"join/index-build-{temperature}").median /
                              results.get(f"join/tar-read-{temperature}").median,
                              of="index build per tar", over="one sequential read of the tar",
                              how=f"medians, {temperature} page cache")
        if temperature == "warm":
            results.target(f"index build < {INDEX_TARGET} of one read of the tar (warm)", ratio, INDEX_TARGET,
                           higher_is_better=False)
    read_bytes = sum(_bytes_an_index_reads(path) for path in tar_paths)
    results.ratio("join/index-bytes-vs-tar-bytes", read_bytes / tar_bytes, of="bytes the index pass reads",
                  over="bytes of the tar", how="counted, all tars")
    results.facts["join"] = {
        "tars": len(tar_paths), "members_per_tar": members / len(tar_paths), "mb_per_tar": tar_bytes / len(tar_paths) / 1e6,
        "cold_read_vs_warm_read": results.get("join/tar-read-cold").median / results.get("join/tar-read-warm").median,
    }
