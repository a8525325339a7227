"""SVIT record ranges -> examples: read one shard's records from the record index, join each with its Visual Genome
image.

The annotation file is read once, by ``record_index``, which also decides which records repeat an earlier
record's ``image_id``; a shard is a contiguous range of records and reads only those.
"""

from __future__ import annotations

from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig

from ..bad_records import CORRUPT_IMAGE, DUPLICATE_ID, MALFORMED_JSON, MISSING_IMAGE, BadRecordLedger, InvalidRecord
from ..image_checks import CorruptImage, ImageCheck, inspect_image
from ..locations import ImageLocation
from .json_array_reader import decode_element
from .record_index import RecordRange, iter_record_range
from .records import read_image_id, svit_conversations
from .vg_images import VGImageReader


def generate_svit_examples(
    *,
    config_name: str,
    record_ranges: list[RecordRange],
    images: tuple[ImageLocation, ...],
    ledger: BadRecordLedger,
    image_check: ImageCheck = "header",
    download_config: Optional[DownloadConfig] = None,
) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(range position, record index, example)`` for the records of the given ranges, in file order."""
    extra_keys = frozenset({"topic"}) if config_name == "conversation" else frozenset()
    with_regions = config_name == "referring"
    with VGImageReader(images, download_config) as image_reader:
        for record_range in record_ranges:
            source = record_range.source
            for record in iter_record_range(record_range):
                ledger.records_read += 1
                location = f"record {record.index} (byte {record.offset})"
                value, error = decode_element(record.raw)
                if error is not None:
                    ledger.bad(source, location, MALFORMED_JSON, error)
                    continue
                try:
                    image_id = read_image_id(value)
                    location = f"record {record.index} (image_id {image_id})"
                    conversations = svit_conversations(
                        value, conversation_extra_keys=extra_keys, with_regions=with_regions
                    )
                except InvalidRecord as err:
                    ledger.bad(source, location, err.reason, err.detail)
                    continue
                if record.duplicate_of >= 0:
                    ledger.bad(
                        source, location, DUPLICATE_ID, f"image_id {image_id} already at record {record.duplicate_of}"
                    )
                    continue
                found = image_reader.read(image_id)
                if found is None:
                    ledger.bad(source, location, MISSING_IMAGE, f"{image_id}.jpg is in neither {image_reader.where()}")
                    continue
                image_path, image_bytes = found
                try:
                    width, height = inspect_image(image_bytes, image_check)
                except CorruptImage as err:
                    ledger.bad(source, location, CORRUPT_IMAGE, f"{image_path}: {err}")
                    continue
                ledger.examples_written += 1
                yield record_range.position, record.index, {
                    "id": str(image_id),
                    "image_id": image_id,
                    "image": {"path": image_path, "bytes": image_bytes},
                    "width": width,
                    "height": height,
                    "conversations": conversations,
                }
