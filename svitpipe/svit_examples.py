"""SVIT source -> examples: stream one subset's JSON array, join each record with its Visual Genome image.

A subset is split into ``num_shards`` shards by record index (record ``i`` belongs to shard ``i % num_shards``).
Every shard streams the whole array but builds only its own records, so shards need no index of the file and any
number of workers can share a subset; the array is small next to the images each shard reads. Every shard notes the
``image_id`` of every record, so that a repeated ``image_id`` is found the same way however the subset is sharded
(the first record with a valid ``image_id`` keeps it; later ones are duplicates).
"""

from __future__ import annotations

import contextlib
import zipfile
from typing import BinaryIO, Iterator, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils.file_utils import xopen

from .bad_records import CORRUPT_IMAGE, DUPLICATE_ID, MALFORMED_JSON, MISSING_IMAGE, BadRecordLedger, InvalidRecord
from .image_checks import CorruptImage, ImageCheck, inspect_image
from .json_array_reader import JSONArrayStructureError, iter_json_array
from .svit_records import read_image_id, svit_conversations
from .vg_images import ImageLocation, VGImageReader


@contextlib.contextmanager
def open_annotation(url: str, in_zip: bool, download_config: Optional[DownloadConfig] = None):
    """Yield ``(name for messages, binary stream)`` of the JSON array, from a zip (its one ``.json`` member) or not."""
    with xopen(url, "rb", download_config=download_config) as file:
        if not in_zip:
            yield url, file
            return
        with zipfile.ZipFile(file) as archive:
            members = [
                info
                for info in archive.infolist()
                if info.filename.endswith(".json") and not info.is_dir() and "__MACOSX" not in info.filename
            ]
            if len(members) != 1:
                names = [info.filename for info in archive.infolist()]
                raise ValueError(f"{url} should hold exactly one .json file, found {names}")
            with archive.open(members[0]) as stream:
                yield f"{url}::{members[0].filename}", stream


def generate_svit_examples(
    *,
    config_name: str,
    annotation: str,
    annotation_in_zip: bool,
    images: tuple[ImageLocation, ...],
    shard_indices: list[int],
    num_shards: int,
    ledger: BadRecordLedger,
    image_check: ImageCheck = "header",
    download_config: Optional[DownloadConfig] = None,
) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(shard index, record index, example)`` for the records of the given shards, in file order."""
    wanted = set(shard_indices)
    extra_keys = frozenset({"topic"}) if config_name == "conversation" else frozenset()
    with_regions = config_name == "referring"
    seen_ids: dict[int, int] = {}
    with open_annotation(annotation, annotation_in_zip, download_config) as (source, stream), VGImageReader(
        images, download_config
    ) as image_reader:
        elements = _naming_source(iter_json_array(stream), source)
        for element in elements:
            if element.index % num_shards not in wanted:  # another shard's record: only note its image_id
                if element.ok:
                    with contextlib.suppress(InvalidRecord):
                        seen_ids.setdefault(read_image_id(element.value), element.index)
                continue
            ledger.records_read += 1
            location = f"record {element.index} (byte {element.offset})"
            if not element.ok:
                ledger.bad(source, location, MALFORMED_JSON, element.error)
                continue
            try:
                image_id = read_image_id(element.value)
                first_index = seen_ids.setdefault(image_id, element.index)
                location = f"record {element.index} (image_id {image_id})"
                conversations = svit_conversations(
                    element.value, conversation_extra_keys=extra_keys, with_regions=with_regions
                )
            except InvalidRecord as err:
                ledger.bad(source, location, err.reason, err.detail)
                continue
            if first_index != element.index:
                ledger.bad(source, location, DUPLICATE_ID, f"image_id {image_id} already at record {first_index}")
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
            yield element.index % num_shards, element.index, {
                "id": str(image_id),
                "image_id": image_id,
                "image": {"path": image_path, "bytes": image_bytes},
                "width": width,
                "height": height,
                "conversations": conversations,
            }


def _naming_source(elements, source: str):
    """The elements, with a broken array structure reported under the file's name (the reader does not know it)."""
    try:
        yield from elements
    except JSONArrayStructureError as err:
        err.args = (f"{source}: {err.args[0]}",)
        raise
