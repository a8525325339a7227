"""What a unit reads, as one digest: a finished unit is reused only while its sources are what they were.

A unit's files depend on its records and on the image archives or folders it reads. The digest covers:

* SVIT: the bytes of every record of the unit's ranges as the record index holds them (with where each stands in
  the file, and the later records merged into them), and the stamp of both Visual Genome zips or folders (a zip's
  URL, size and modification stamp; a folder's listing with every file's size and modification time).
* SA-1B: the unit's caption lines (its caption-index bucket, with their line numbers), and the stamp of every tar
  or extracted folder the lines' images are in.

The record and caption indexes are themselves keyed by their file's stamp, so an edited annotation or captions file
is indexed again, and then only the units whose records or lines changed (or moved) get another digest: a re-run
rebuilds exactly those, and a unit finished before a kill is never mixed with a changed source.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import _prepare_path_and_storage_options, is_local_path

from ..json_text import decode_json
from ..sa1b.caption_index import iter_bucket
from ..sa1b.records import line_image_refs
from ..sa1b.source import locate_sa1b_tars
from ..source_index_cache import source_stamp
from ..svit.record_index import iter_record_range

_MODIFIED_KEYS = ("mtime", "ETag", "etag", "sha", "blob_id", "last_modified", "LastModified")


def unit_sources_digest(family: str, gen_kwargs: dict) -> str:
    """The digest of what a unit of ``family`` with these ``gen_kwargs`` reads (module docstring)."""
    digest = hashlib.sha256()
    feed = {"svit": _feed_svit, "sa1b": _feed_sa1b}[family]
    for piece in feed(gen_kwargs):
        data = piece if isinstance(piece, bytes) else json.dumps(piece, default=str).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _feed_svit(gen_kwargs: dict) -> Iterable:
    download_config = gen_kwargs.get("download_config")
    for location in gen_kwargs["images"]:
        yield [location.folder, location.kind, location.url, location_stamp(location.kind, location.url, download_config)]
    for record_range in gen_kwargs["record_ranges"]:
        yield [record_range.source, record_range.position, record_range.start, record_range.stop]
        for record in iter_record_range(record_range):
            yield [record.index, record.offset, record.duplicate_of, [piece.index for piece in record.merged]]
            yield record.raw
            for piece in record.merged:
                yield [piece.offset]
                yield piece.raw


def _feed_sa1b(gen_kwargs: dict) -> Iterable:
    download_config = gen_kwargs.get("download_config")
    multi_image = gen_kwargs["multi_image"]
    reference = "tar_locations" not in gen_kwargs  # a reference-mode unit (sa1b.reference): tars are optional
    images_source = gen_kwargs.get("images_source") if reference else None
    locations = gen_kwargs["tar_locations"] if not reference else {}
    yield [gen_kwargs["captions_source"], multi_image, reference, images_source]
    for tar in gen_kwargs["tars"]:
        stem = tar.stem if reference else tar.location.stem
        yield [tar.position, stem] + ([] if reference else [tar.location.kind, tar.location.url])
        bucket_path = tar.bucket
        with open(bucket_path, "rb") as bucket:
            yield bucket.read()
        if reference and images_source is None:
            continue  # the rows come from the caption lines alone
        read = {stem}
        if multi_image:
            read.update(_tars_of_lines(bucket_path, multi_image))
        if reference:
            found, _ = locate_sa1b_tars(images_source, sorted(read), download_config)
            locations = found
        for other in sorted(read):
            location = locations.get(other)
            yield [other, None if location is None else [location.kind, location.url,
                                                         location_stamp(location.kind, location.url, download_config)]]


def _tars_of_lines(bucket_path: str, multi_image: bool) -> set:
    """Every tar the images of a bucket's caption lines are in."""
    tars = set()
    for _, text in iter_bucket(bucket_path):
        value, error = decode_json(text)
        if error is None:
            try:
                tars.update(ref.tar for ref in line_image_refs(value, multi_image))
            except ValueError:
                pass  # a bad line reads no image; its text is in the digest already
    return tars


def location_stamp(kind: str, url: str, download_config: Optional[DownloadConfig] = None) -> list:
    """An archive's stamp (``source_stamp``), or a folder's: every file's name, size and modification time."""
    if kind != "folder":
        return source_stamp(url, download_config)
    if is_local_path(url):
        entries = []
        with os.scandir(url) as listing:
            for entry in listing:
                try:
                    status = entry.stat()  # follows links, as reading does
                except OSError:  # a broken link
                    entries.append([entry.name, None])
                    continue
                entries.append([entry.name, status.st_mode, status.st_size, status.st_mtime_ns])
        return sorted(entries, key=lambda entry: entry[0])
    import fsspec

    path, storage_options = _prepare_path_and_storage_options(url, download_config=download_config)
    fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
    return sorted(
        [entry["name"].rstrip("/").rsplit("/", 1)[-1], entry.get("type"), entry.get("size")]
        + [str(entry[key]) for key in _MODIFIED_KEYS if entry.get(key)]
        for entry in fs.ls(fs_path, detail=True)
    )
