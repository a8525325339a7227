"""Export a config as LLaVA training data: ``OUT/<config>.json`` plus ``OUT/images/<image path>``.

::

    python -m svitpipe.training.llava_export --data build/svit-internvl --config referring --out llava/ --streaming

``<config>.json`` is a JSON array of :func:`svitpipe.training.chat_format.to_llava_record` records, written one record at a
time (memory does not grow with the number of rows); ``images/`` holds each distinct image path once, with the
original bytes (never re-encoded), so LLaVA's ``--image_folder OUT/images`` resolves every record's ``image``.
:func:`export_llava` takes any iterable of rows (a filtered stream, the builder's rows, ...), images as
``{"bytes", "path"}`` dicts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import PurePosixPath
from typing import Any, Iterable, Iterator, Mapping, Optional

import datasets

from ..features import CONFIGS
from .chat_format import flatten_svit, to_llava_record

__all__ = ["export_llava", "iter_undecoded_rows", "main", "safe_image_path"]

_ARROW_BATCH_ROWS = 100


def safe_image_path(path: str) -> PurePosixPath:
    """A stored image path as a relative path that stays inside ``images/``; a ``ValueError`` otherwise."""
    relative = PurePosixPath(path)
    if not path or "\\" in path or relative.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"image path {path!r} is not a plain relative path; refusing to write it outside images/")
    return relative


def _image_bytes(image: Any, where: str) -> bytes:
    if isinstance(image, Mapping) and isinstance(image.get("bytes"), (bytes, bytearray)):
        return bytes(image["bytes"])
    raise ValueError(
        f"{where}: expected an undecoded image ({{'bytes', 'path'}} with bytes), got {type(image).__name__}; "
        "read the dataset with Image(decode=False) (see iter_undecoded_rows)"
    )


def _records(row: Mapping, config_name: str) -> Iterator[tuple[dict, list]]:
    """``(LLaVA record, [(path, image value), ...])`` for one row; an SVIT row with several conversations gives one
    record per conversation (ids ``<id>-c{i}``), so nothing is dropped."""
    if CONFIGS[config_name].family == "svit":
        rows = [row]
        if len(row["conversations"]) > 1:
            flat = flatten_svit({name: [value] for name, value in row.items()}, per="conversation")
            rows = [{name: flat[name][i] for name in flat} for i in range(len(flat["id"]))]
        for piece in rows:
            record = to_llava_record(piece, config_name)
            yield record, [(record["image"], piece["image"])]
    elif CONFIGS[config_name].multi_image:
        record = to_llava_record(row, config_name)
        yield record, list(zip(record["image"], row["images"], strict=True))
    else:
        record = to_llava_record(row, config_name)
        yield record, [(record["image"], row["image"])]


class _ImageFolder:
    """Writes each distinct image path once; the same path with different bytes is an error."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.digests: dict[str, bytes] = {}

    def add(self, path: str, data: bytes) -> bool:
        digest = hashlib.blake2b(data, digest_size=16).digest()
        seen = self.digests.get(path)
        if seen is not None:
            if seen != digest:
                raise ValueError(f"image path {path!r} occurs twice with different bytes")
            return False
        target = os.path.join(self.root, *safe_image_path(path).parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as file:
            file.write(data)
        self.digests[path] = digest
        return True


def export_llava(
    rows_iterable: Iterable[Mapping], out_dir: str, config_name: str, limit: Optional[int] = None
) -> dict[str, int]:
    """Write ``out_dir/<config_name>.json`` and ``out_dir/images/``; return the counts.

    ``rows_iterable``: rows of ``config_name`` with undecoded images (``{"bytes", "path"}``); a ``Dataset`` or
    ``IterableDataset`` is read through :func:`iter_undecoded_rows`, so its images need no cast. SVIT rows with several
    conversations become one record per conversation (``<id>-c{i}``; flatten beforehand for other ids or per-QA
    records). ``limit``: stop after that many records. The JSON is written to ``<config_name>.json.partial`` and
    renamed when complete, so an interrupted export never leaves a truncated ``<config_name>.json``.

    Counts: ``rows`` read, ``records`` written, ``image_refs`` (images the records name) and ``images_written``
    (distinct paths, each written once).
    """
    if config_name not in CONFIGS:
        raise ValueError(f"unknown config {config_name!r}; expected one of {list(CONFIGS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    images = _ImageFolder(os.path.join(out_dir, "images"))
    os.makedirs(images.root, exist_ok=True)
    counts = {"rows": 0, "records": 0, "image_refs": 0, "images_written": 0}
    final = os.path.join(out_dir, f"{config_name}.json")
    partial = final + ".partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write("[")
        for row in iter_undecoded_rows(rows_iterable) if limit != 0 else ():
            counts["rows"] += 1
            for record, row_images in _records(row, config_name):
                where = f"row {record['id']!r}"
                for path, image in row_images:
                    counts["image_refs"] += 1
                    counts["images_written"] += images.add(path, _image_bytes(image, where))
                out.write(",\n" if counts["records"] else "\n")
                out.write(json.dumps(record, ensure_ascii=False))
                counts["records"] += 1
                if counts["records"] == limit:
                    break
            if counts["records"] == limit:
                break
        out.write("\n]\n" if counts["records"] else "]\n")
    os.replace(partial, final)
    return counts


def iter_undecoded_rows(dataset: Any) -> Iterator[dict]:
    """The rows of a ``Dataset`` or ``IterableDataset`` with every image as ``{"bytes", "path"}``, never decoded.

    A ``Dataset`` is read as Arrow batches (no cast, so no copy of the image column); an ``IterableDataset`` with
    ``.decode(False)``; anything else is assumed to yield such rows already.
    """
    if isinstance(dataset, datasets.Dataset):
        for batch in dataset.with_format("arrow").iter(batch_size=_ARROW_BATCH_ROWS):
            yield from batch.to_pylist()
    elif isinstance(dataset, datasets.IterableDataset):
        yield from dataset.decode(False)
    else:
        yield from dataset


def main(argv: Optional[list[str]] = None, prog: str = "python -m svitpipe.training.llava_export") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export one config (a folder built by upload.py, or a Hub repo) as LLaVA JSON plus image files.",
    )
    parser.add_argument("--data", required=True, help="folder built by upload.py, or a Hub dataset repo id")
    parser.add_argument("--config", required=True, choices=list(CONFIGS), help="the config to export")
    parser.add_argument("--out", required=True, help="output folder: <config>.json and images/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many records")
    parser.add_argument("--streaming", action="store_true", help="stream the data instead of preparing a cache")
    args = parser.parse_args(argv)
    dataset = datasets.load_dataset(args.data, args.config, split=args.split, streaming=args.streaming)
    counts = export_llava(iter_undecoded_rows(dataset), args.out, args.config, limit=args.limit)
    print(json.dumps({"config": args.config, "out": args.out, **counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
