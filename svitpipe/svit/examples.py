"""SVIT record ranges -> examples: read one builder shard's records from the record index, join each with its Visual
Genome image.

The annotation file is read once, by ``record_index``, which also decides which records repeat an earlier record's
``image_id``: those are merged into the first one's row (conversations in file order, counted as
``merged-duplicate``), so one row per image holds everything upstream wrote about it. A range is a contiguous run of
records and reads only those (and the later records merged into them).

Sizes and regions describe the image as ``datasets.Image`` decodes it, with its EXIF orientation applied (upstream
normalised boxes to the image as stored; such rows are counted as ``exif-oriented``).

Problems in derived views are flagged on the row and counted in the ledger (``flag``): an ``image_id`` written as
digits, undeclared keys (``upstream_extra``), references that do not parse or boxes out of range (``referring``).
"""

from __future__ import annotations

import json
from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig

from ..bad_records import (
    DAMAGED_ZIP,
    EMPTY_CONVERSATION,
    EXIF_ORIENTED,
    IMAGE_ID_AS_STRING,
    MALFORMED_JSON,
    MERGED_DUPLICATE,
    MISSING_IMAGE,
    UPSTREAM_EXTRA_KEYS,
    BadRecordLedger,
    InvalidRecord,
)
from ..image_checks import CorruptImage, ImageCheck, inspect_image_frame, oriented_box
from ..image_files import MAX_IMAGE_BYTES
from ..locations import ImageLocation
from .json_array_reader import decode_element
from .record_index import IndexedRecord, RecordRange, iter_record_range
from .records import parse_svit_record
from .vg_images import DamagedZip, VGImageReader


def generate_svit_examples(
    *,
    config_name: str,
    record_ranges: list[RecordRange],
    images: tuple[ImageLocation, ...],
    ledger: BadRecordLedger,
    image_check: ImageCheck = "header",
    max_image_bytes: int = MAX_IMAGE_BYTES,
    download_config: Optional[DownloadConfig] = None,
) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(range position, record index, example)`` for the records of the given ranges, in file order."""
    conversation_keys = ("topic",) if config_name == "conversation" else ()
    with_regions = config_name == "referring"
    with VGImageReader(images, download_config, max_image_bytes) as image_reader:
        for record_range in record_ranges:
            source = record_range.source
            for record in iter_record_range(record_range):
                if record.duplicate_of >= 0:
                    continue  # merged into the row of record.duplicate_of, read and counted there
                pieces = [record, *record.merged]
                ledger.read(len(pieces))
                parsed = [
                    (piece, view)
                    for piece in pieces
                    if (view := _parse(piece, source, ledger, conversation_keys, with_regions)) is not None
                ]
                if not parsed:
                    continue
                first_piece, first = parsed[0]
                image_id = first.image_id
                location = f"record {first_piece.index} (image_id {image_id})"
                try:
                    found = image_reader.read(image_id)
                except DamagedZip as err:
                    ledger.bad(source, location, DAMAGED_ZIP, str(err), count=len(parsed))
                    continue
                except CorruptImage as err:  # refused before reading: too large, or not a regular file
                    ledger.bad(source, location, err.reason, str(err), count=len(parsed))
                    continue
                if found is None:
                    ledger.bad(source, location, MISSING_IMAGE, f"{image_id}.jpg is in neither {image_reader.where()}",
                               count=len(parsed))
                    continue
                image_path, image_bytes = found
                try:
                    frame = inspect_image_frame(image_bytes, image_check)
                except CorruptImage as err:
                    ledger.bad(source, location, err.reason, f"{image_path}: {err}", count=len(parsed))
                    continue
                conversations = [conversation for _, view in parsed for conversation in view.conversations]
                if frame.orientation != 1:
                    conversations = _regions_in_frame(conversations, frame.orientation)
                    ledger.flag(source, location, EXIF_ORIENTED,
                                f"{image_path} has EXIF orientation {frame.orientation}: width, height and regions are "
                                f"those of the decoded {frame.width}x{frame.height} image; the text's boxes are as written")
                example = {
                    "id": str(image_id),
                    "image_id": image_id,
                    "image": {"path": image_path, "bytes": image_bytes},
                    "width": frame.width,
                    "height": frame.height,
                    "conversations": conversations,
                    "upstream_extra": _merged_extra(parsed),
                }
                _flag_views(parsed, example["conversations"], source, location, ledger)
                ledger.examples_written += 1
                yield record_range.position, first_piece.index, example


def _regions_in_frame(conversations: list, orientation: int) -> list:
    """The conversations with every region's boxes moved into the decoded image's frame (upstream normalised them
    to the image as stored)."""
    if not any("regions" in turn for conversation in conversations for turn in conversation["content"]):
        return conversations
    return [
        {
            **conversation,
            "content": [
                {**turn, "regions": [
                    {**region, "boxes": [oriented_box(box, orientation) for box in region["boxes"]]}
                    for region in turn["regions"]
                ]} if "regions" in turn else turn
                for turn in conversation["content"]
            ],
        }
        for conversation in conversations
    ]


def _parse(piece: IndexedRecord, source: str, ledger: BadRecordLedger, conversation_keys, with_regions):
    """The record's typed view, or None when it cannot become (part of) a row (reported to ``ledger``)."""
    location = f"record {piece.index} (byte {piece.offset})"
    value, error = decode_element(piece.raw)
    if error is not None:
        ledger.bad(source, location, MALFORMED_JSON, error)
        return None
    try:
        return parse_svit_record(value, conversation_keys=conversation_keys, with_regions=with_regions)
    except InvalidRecord as err:
        ledger.bad(source, location, err.reason, err.detail)
        return None


def _merged_extra(parsed: list) -> Optional[str]:
    """``upstream_extra`` of a row: the first record's undeclared keys by path; a merged record's under
    ``merged[<record index>].<path>``, its conversations' paths counted from where they stand in the row. Null
    when there are none."""
    extra = {}
    offset = 0
    for position, (piece, view) in enumerate(parsed):
        for path, value in view.upstream_extra.items():
            if path.startswith("conversations["):
                index, _, rest = path[len("conversations["):].partition("]")
                path = f"conversations[{int(index) + offset}]{rest}"
            elif position:
                path = f"merged[{piece.index}].{path}"
            extra[path] = value
        offset += len(view.conversations)
    return json.dumps(extra, ensure_ascii=False) if extra else None


def _flag_views(parsed: list, conversations: list, source: str, location: str, ledger: BadRecordLedger) -> None:
    """Count what the row (whose merged ``conversations`` are given) carries about its derived views."""
    if len(parsed) > 1:
        merged = ", ".join(str(piece.index) for piece, _ in parsed[1:])
        ledger.flag(source, location, MERGED_DUPLICATE, f"records {merged} merged into this row", count=len(parsed) - 1)
    for piece, view in parsed:
        if view.image_id_was_string:
            ledger.flag(source, f"record {piece.index}", IMAGE_ID_AS_STRING, f"'image_id' {str(view.image_id)!r}")
        if view.upstream_extra:
            ledger.flag(source, f"record {piece.index}", UPSTREAM_EXTRA_KEYS, ", ".join(view.upstream_extra))
        empty = [f"conversations[{c}]" for c, conversation in enumerate(view.conversations) if not conversation["content"]]
        if not view.conversations or empty:
            ledger.flag(source, f"record {piece.index}", EMPTY_CONVERSATION,
                        f"empty {', '.join(empty) or 'conversations'}")
    for c, conversation in enumerate(conversations):
        for t, turn in enumerate(conversation["content"]):
            for issue in turn.get("reference_issues", ()):
                excerpt = turn["value"][issue["start"]:issue["end"]][:60]
                ledger.flag(source, f"{location} conversations[{c}].content[{t}]", issue["kind"],
                            f"{issue['detail']}: {excerpt!r}")
