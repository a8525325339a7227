"""Export one config as the files a trainer reads: an annotation file plus an image folder.

::

    python -m svitpipe.training.export --format internvl --data build/svit-internvl --config referring --out out/
    svit-internvl export --format llava-onevision --data <org>/<repo> --config sa1b-en-multi --out out/ --streaming

Formats, and the trainer that reads each (``FORMATS``):

* ``llava``: LLaVA-v1.5's ``llava/train/train.py`` (``--data_path OUT/<config>.json --image_folder OUT/images``): a
  JSON array of ``{"id", "image": "<path>", "conversations": [{"from": "human"|"gpt", "value"}]}``, one image per
  record, ``<image>`` once. Its loader joins ``image`` onto the image folder as a string, so multi-image configs are
  refused (use ``llava-onevision``).
* ``llava-onevision``: LLaVA-NeXT's ``llava/train/train.py`` (LLaVA-OneVision), which also reads the ``llava``
  form: the same JSON array, with ``"image": [paths]`` for multi-image configs and one ``<image>`` per image,
  in order, as the upstream captions place them.
* ``internvl``: InternVL's ``internvl_chat`` fine-tuning (``--meta_path OUT/<config>.meta.json``): ``OUT/<config>.jsonl``,
  one line per record, ``{"id", "image": path or [paths], "conversations", "width", "height"}``
  (``"width_list"``/``"height_list"`` for multi-image lines) with one ``<image>`` per image, and the meta JSON
  ``{"<config>": {"root", "annotation", "data_augment", "repeat_time", "length"}}``. Referring boxes are written
  in InternVL's grounding markup, ``<ref>phrase</ref><box>[[x1, y1, x2, y2]]</box>`` in 0-1000
  (:func:`svitpipe.training.boxes.render_internvl_referring_text`).

SVIT rows with several conversations become one record per conversation (ids ``<id>-c{i}``), so nothing is dropped.
Rows are streamed: the annotation file is written one record at a time, under ``<name>.partial``, and renamed when
complete (the meta JSON last), so an interrupted export never leaves a file that looks complete. ``OUT/images/``
holds each image path once, with the original bytes (never re-encoded), each file written under a temporary name
and renamed; an image already there with the same bytes is kept (rows sharing an image, SVIT configs exported into
one folder, or a rerun after an interruption), one with other bytes is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterable, Iterator, Mapping, Optional

import datasets
from datasets.utils import tqdm

from ..features import CONFIGS
from ..sa1b.records import IMAGE_PLACEHOLDER
from .boxes import render_internvl_referring_text
from .chat_format import flatten_svit, to_llava_record

__all__ = [
    "FORMATS",
    "ExportFormat",
    "export",
    "export_llava",
    "iter_undecoded_rows",
    "main",
    "refuse_reference_mode",
    "safe_image_path",
]

_ARROW_BATCH_ROWS = 100
IMAGES_DIR = "images"


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, the trainer that reads it, whether a record may hold several images."""

    name: str
    reader: str
    multi_image: bool


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in [
        ExportFormat("llava", "LLaVA-v1.5's llava/train/train.py", multi_image=False),
        ExportFormat("llava-onevision", "LLaVA-NeXT's llava/train/train.py (LLaVA-OneVision)", multi_image=True),
        ExportFormat("internvl", "InternVL's internvl_chat fine-tuning (--meta_path)", multi_image=True),
    ]
}


def safe_image_path(path: str) -> PurePosixPath:
    """A stored image path as a relative path that stays inside ``images/``; a ``ValueError`` otherwise."""
    relative = PurePosixPath(path)
    if not path or "\\" in path or relative.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"image path {path!r} is not a plain relative path; refusing to write it outside images/")
    return relative


def refuse_reference_mode(names: Iterable[str], config_name: str) -> None:
    """A ``ValueError`` when rows (their column names) carry SA-1B image references instead of images."""
    names = set(names)
    if {"image_ref", "image_refs"} & names and not {"image", "images"} & names:
        raise ValueError(
            f"{config_name}: the rows hold SA-1B image references (image_ref/image_refs), not images: the config was "
            "built in reference mode. Attach the images first with svitpipe.sa1b.attach_images, then export."
        )


def check_format_holds(format_name: str, config_name: str) -> ExportFormat:
    """The format, or a ``ValueError`` saying why it cannot hold the config (or that either is unknown)."""
    if format_name not in FORMATS:
        raise ValueError(f"unknown format {format_name!r}; expected one of {list(FORMATS)}")
    if config_name not in CONFIGS:
        raise ValueError(f"unknown config {config_name!r}; expected one of {list(CONFIGS)}")
    chosen = FORMATS[format_name]
    if CONFIGS[config_name].multi_image and not chosen.multi_image:
        raise ValueError(
            f"--format {format_name} cannot hold {config_name}: its rows have several images, and {chosen.reader} "
            "reads one image path per record (it joins \"image\" onto --image_folder as a string). Use --format "
            "llava-onevision (LLaVA-NeXT's train.py, which reads \"image\": [...]) or --format internvl."
        )
    return chosen


def _image_bytes(image: Any, where: str) -> bytes:
    if isinstance(image, Mapping) and isinstance(image.get("bytes"), (bytes, bytearray)):
        return bytes(image["bytes"])
    raise ValueError(
        f"{where}: expected an undecoded image ({{'bytes', 'path'}} with bytes), got {type(image).__name__}; "
        "read the dataset with Image(decode=False) (see iter_undecoded_rows)"
    )


def _pieces(row: Mapping, config_name: str) -> list[Mapping]:
    """The rows one record each: an SVIT row with several conversations as one row per conversation."""
    if CONFIGS[config_name].family != "svit" or len(row["conversations"]) <= 1:
        return [row]
    flat = flatten_svit({name: [value] for name, value in row.items()}, per="conversation")
    return [{name: flat[name][i] for name in flat} for i in range(len(flat["id"]))]


def _internvl_boxes(piece: Mapping) -> Mapping:
    """A referring piece with every turn's references in InternVL's markup (regions read from the turn)."""
    conversation = piece["conversations"][0]
    content = [
        {**turn, "value": render_internvl_referring_text(turn["value"], turn.get("regions"))}
        for turn in conversation["content"]
    ]
    return {**piece, "conversations": [{**conversation, "content": content}]}


def _row_images(piece: Mapping, config_name: str) -> tuple[list, list[int], list[int]]:
    """The piece's image values, widths and heights, in order."""
    if CONFIGS[config_name].multi_image:
        return list(piece["images"]), list(piece["widths"]), list(piece["heights"])
    return [piece["image"]], [piece["width"]], [piece["height"]]


def _record(piece: Mapping, config_name: str, export_format: ExportFormat) -> tuple[dict, list]:
    """``(record, [(path, image value), ...])`` for one piece in the chosen format."""
    if export_format.name == "internvl" and config_name == "referring":
        piece = _internvl_boxes(piece)
    record = to_llava_record(piece, config_name)
    images, widths, heights = _row_images(piece, config_name)
    paths = record["image"] if isinstance(record["image"], list) else [record["image"]]
    placeholders = sum(turn["value"].count(IMAGE_PLACEHOLDER) for turn in record["conversations"])
    if placeholders != len(paths):
        raise ValueError(
            f"row {record['id']!r}: {len(paths)} image(s) but {placeholders} {IMAGE_PLACEHOLDER!r} placeholder(s); "
            "trainers pair them one to one"
        )
    if export_format.name == "internvl":
        if isinstance(record["image"], list):
            record["width_list"], record["height_list"] = widths, heights
        else:
            record["width"], record["height"] = widths[0], heights[0]
    return record, list(zip(paths, images, strict=True))


class _ImageFolder:
    """Writes each image path once, under a temporary name then renamed; a file already there with the same bytes
    is kept, one with other bytes is an error. Nothing is remembered per image, so memory does not grow."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def add(self, path: str, data: bytes) -> bool:
        """Write ``data`` at ``path``; ``False`` when the same bytes were there already."""
        target = os.path.join(self.root, *safe_image_path(path).parts)
        if os.path.isfile(target):
            if os.path.getsize(target) == len(data):
                with open(target, "rb") as existing:
                    if existing.read() == data:
                        return False
            raise ValueError(
                f"image path {path!r} occurs twice with different bytes (or {target} is left from another export; "
                "export into an empty folder)"
            )
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.partial"
        with open(partial, "wb") as file:
            file.write(data)
        os.replace(partial, target)
        return True


class _JsonArrayWriter:
    """A JSON array written one element at a time."""

    def __init__(self, file) -> None:
        self.file, self.count = file, 0
        file.write("[")

    def write(self, record: dict) -> int:
        text = (",\n" if self.count else "\n") + json.dumps(record, ensure_ascii=False)
        self.file.write(text)
        self.count += 1
        return len(text.encode("utf-8"))

    def close(self) -> None:
        self.file.write("\n]\n" if self.count else "]\n")


class _JsonLinesWriter:
    """One JSON object per line."""

    def __init__(self, file) -> None:
        self.file = file

    def write(self, record: dict) -> int:
        text = json.dumps(record, ensure_ascii=False) + "\n"
        self.file.write(text)
        return len(text.encode("utf-8"))

    def close(self) -> None:
        pass


def annotation_name(config_name: str, format_name: str) -> str:
    return f"{config_name}.jsonl" if format_name == "internvl" else f"{config_name}.json"


def _total_rows(rows: Any) -> Optional[int]:
    """The row count of a ``Dataset``, or of a stream whose info knows it; ``None`` otherwise."""
    if isinstance(rows, datasets.Dataset):
        return len(rows)
    info = getattr(rows, "info", None)
    splits = getattr(info, "splits", None) or {}
    split = getattr(rows, "split", None)
    if split is not None and str(split) in splits:
        return splits[str(split)].num_examples
    return None


def export(
    rows: Iterable[Mapping],
    out_dir: str,
    config_name: str,
    format_name: str = "llava-onevision",
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``config_name`` in ``format_name`` (``FORMATS``) to ``out_dir``: the annotation file, ``images/``, and
    for ``internvl`` the meta JSON; return the counts.

    ``rows``: rows of ``config_name`` (a ``Dataset``, ``IterableDataset`` or any iterable of rows with undecoded
    images, ``{"bytes", "path"}``; datasets are read through :func:`iter_undecoded_rows`). ``limit``: stop after
    that many records. A format that cannot hold the config, or rows in SA-1B reference mode, are refused before
    anything is written. ``progress``: a progress bar of rows, with the bytes written (off when ``datasets``'
    progress bars are disabled).

    Counts: ``rows`` read, ``records`` written, ``image_refs`` (images the records name), ``images_written``
    (files written; an image already in ``images/`` with the same bytes is not written again).
    """
    export_format = check_format_holds(format_name, config_name)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    features = getattr(rows, "features", None)
    if features is not None:
        refuse_reference_mode(features, config_name)
    os.makedirs(out_dir, exist_ok=True)
    images = _ImageFolder(os.path.join(out_dir, IMAGES_DIR))
    counts = {"rows": 0, "records": 0, "image_refs": 0, "images_written": 0}
    final = os.path.join(out_dir, annotation_name(config_name, format_name))
    partial = final + ".partial"
    bar = tqdm(desc=f"{config_name} -> {format_name}", unit=" rows", total=_total_rows(rows), disable=not progress,
               dynamic_ncols=True)
    written_bytes = 0
    with bar, open(partial, "w", encoding="utf-8") as out:
        writer = _JsonLinesWriter(out) if format_name == "internvl" else _JsonArrayWriter(out)
        for row in iter_undecoded_rows(rows) if limit != 0 else ():
            if counts["rows"] == 0:
                refuse_reference_mode(row.keys(), config_name)
            counts["rows"] += 1
            for piece in _pieces(row, config_name):
                record, row_images = _record(piece, config_name, export_format)
                for path, image in row_images:
                    data = _image_bytes(image, f"row {record['id']!r}")
                    counts["image_refs"] += 1
                    if images.add(path, data):
                        counts["images_written"] += 1
                        written_bytes += len(data)
                written_bytes += writer.write(record)
                counts["records"] += 1
                if counts["records"] == limit:
                    break
            bar.update(1)
            bar.set_postfix_str(tqdm.format_sizeof(written_bytes, "B", 1000), refresh=False)
            if counts["records"] == limit:
                break
        writer.close()
    os.replace(partial, final)
    if format_name == "internvl":
        _write_internvl_meta(out_dir, config_name, final, counts["records"])
    return counts


def internvl_meta(out_dir: str, config_name: str, annotation: str, length: int) -> dict:
    """InternVL's meta JSON for one export: absolute ``root`` and ``annotation``, no augmentation, used once."""
    return {
        config_name: {
            "root": os.path.abspath(os.path.join(out_dir, IMAGES_DIR)) + os.sep,
            "annotation": os.path.abspath(annotation),
            "data_augment": False,
            "repeat_time": 1,
            "length": length,
        }
    }


def _write_internvl_meta(out_dir: str, config_name: str, annotation: str, length: int) -> None:
    path = os.path.join(out_dir, f"{config_name}.meta.json")
    with open(path + ".partial", "w", encoding="utf-8") as file:
        json.dump(internvl_meta(out_dir, config_name, annotation, length), file, indent=2)
        file.write("\n")
    os.replace(path + ".partial", path)


def export_llava(
    rows_iterable: Iterable[Mapping], out_dir: str, config_name: str, limit: Optional[int] = None
) -> dict[str, int]:
    """:func:`export` in the ``llava-onevision`` form (single-image configs: the same as ``llava``), no progress bar:
    ``out_dir/<config_name>.json`` and ``out_dir/images/``."""
    return export(rows_iterable, out_dir, config_name, "llava-onevision", limit=limit, progress=False)


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


def _format_help() -> str:
    return "; ".join(f"{f.name}: read by {f.reader}" for f in FORMATS.values())


def main(argv: Optional[list[str]] = None, prog: str = "python -m svitpipe.training.export") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export one config (a folder built by upload.py, or a Hub repo) as a trainer's annotation file "
        "plus an image folder. Formats: " + _format_help() + ". --format llava refuses multi-image configs.",
    )
    parser.add_argument("--format", required=True, choices=list(FORMATS), dest="format_name",
                        help="llava: OUT/<config>.json for LLaVA-v1.5; llava-onevision: the same, with image lists "
                        "for multi-image configs, for LLaVA-NeXT/OneVision; internvl: OUT/<config>.jsonl and "
                        "OUT/<config>.meta.json (--meta_path) for InternVL's chat fine-tuning")
    parser.add_argument("--data", required=True, help="folder built by upload.py, or a Hub dataset repo id")
    parser.add_argument("--config", required=True, choices=list(CONFIGS), help="the config to export")
    parser.add_argument("--out", required=True, help="output folder: the annotation file and images/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many records")
    parser.add_argument("--streaming", action="store_true", help="stream the data instead of preparing a cache")
    args = parser.parse_args(argv)
    try:
        check_format_holds(args.format_name, args.config)
    except ValueError as err:
        parser.error(str(err))
    dataset = datasets.load_dataset(args.data, args.config, split=args.split, streaming=args.streaming)
    try:
        counts = export(dataset, args.out, args.config, args.format_name, limit=args.limit)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"config": args.config, "format": args.format_name, "out": args.out, **counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
