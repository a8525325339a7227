"""SA-1B source -> examples: join one tar's caption lines (from the caption index) with the tar's images.

Single-image configs read a tar in one sequential pass and emit rows in tar order (folders: caption-line order);
multi-image configs emit rows in caption-line order and fetch each image by random access, since a line's images can
sit in other tars.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig

from ..bad_records import (
    DAMAGED_TAR,
    DECLARED_SIZE_MISMATCH,
    MISSING_IMAGE,
    NO_SINGLE_CAPTION,
    UPSTREAM_EXTRA_KEYS,
    BadRecordLedger,
    InvalidRecord,
)
from ..image_checks import CorruptImage, ImageCheck, inspect_image
from ..image_files import MAX_IMAGE_BYTES
from ..json_text import decode_json
from ..locations import TarLocation
from .caption_index import iter_bucket
from .records import CaptionLine, declared_sizes_differ, parse_caption_line
from .tar_images import DamagedTar, SA1BImageReader, iter_tar_members


@dataclass(frozen=True)
class TarCaptions:
    """One SA-1B builder shard (one unit of work): a tar and the caption lines whose (first) image it holds.

    Attributes:
        position: its index in the config's list of tars (stable for a given input).
        location: where the tar (or its extracted folder) is.
        bucket: the caption-index bucket file with the tar's lines.
    """

    position: int
    location: TarLocation
    bucket: str

    @property
    def stem(self) -> str:
        return self.location.stem


def generate_sa1b_examples(
    *,
    tars: list[TarCaptions],
    tar_locations: dict[str, TarLocation],
    multi_image: bool,
    captions_source: str,
    ledger: BadRecordLedger,
    image_check: ImageCheck = "header",
    max_image_bytes: int = MAX_IMAGE_BYTES,
    download_config: Optional[DownloadConfig] = None,
) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(tar position, line number, example)`` for every caption line of the given tars."""
    with SA1BImageReader(tar_locations, download_config, max_image_bytes=max_image_bytes) as reader:
        for tar in tars:
            lines = list(_read_bucket(tar, multi_image, captions_source, ledger))
            if multi_image:
                examples = _multi_image_examples(lines, reader, captions_source, ledger, image_check)
            elif tar.location.kind == "tar":
                examples = _single_image_examples_from_tar(
                    tar.location, lines, captions_source, ledger, image_check, download_config, max_image_bytes
                )
            else:
                examples = _single_image_examples_from_reader(lines, reader, captions_source, ledger, image_check)
            for number, example in examples:
                ledger.examples_written += 1
                yield tar.position, number, example


def _read_bucket(tar, multi_image, captions_source, ledger) -> Iterator[tuple[int, CaptionLine]]:
    for number, text in iter_bucket(tar.bucket):
        ledger.records_read += 1
        try:
            yield number, parse_caption_line(decode_json(text)[0], multi_image)
        except InvalidRecord as err:
            ledger.bad(captions_source, f"line {number}", err.reason, err.detail)


def _checked_size(data: bytes, image_check, path, number, captions_source, ledger) -> Optional[tuple[int, int]]:
    try:
        return inspect_image(data, image_check)
    except CorruptImage as err:
        ledger.bad(captions_source, f"line {number}", err.reason, f"{path}: {err}")
        return None


def caption_line_fields(line: CaptionLine, extra: dict) -> dict:
    """The columns every SA-1B row takes from its caption line, whatever holds its images."""
    return {
        "caption": line.caption,
        "conversations": line.conversations,
        "source_id": line.source_id,
        "upstream_extra": json.dumps(extra, ensure_ascii=False) if extra else None,
    }


def _example(number: int, line: CaptionLine, images: list[bytes], sizes: list[tuple[int, int]], multi_image: bool,
             extra: dict):
    common = caption_line_fields(line, extra)
    if multi_image:
        return {
            "id": str(number),
            "images": [{"path": ref.path, "bytes": data} for ref, data in zip(line.images, images)],
            "image_paths": [ref.path for ref in line.images],
            "widths": [size[0] for size in sizes],
            "heights": [size[1] for size in sizes],
            **common,
        }
    ref = line.images[0]
    return {
        "id": str(number),
        "image": {"path": ref.path, "bytes": images[0]},
        "image_path": ref.path,
        "width": sizes[0][0],
        "height": sizes[0][1],
        **common,
    }


def _finish(number, line, images, sizes, multi_image, captions_source, ledger):
    """The line's example with the real image sizes; declared sizes that differ go to ``upstream_extra``."""
    extra = dict(line.upstream_extra)
    location = f"line {number}"
    if declared_sizes_differ(line, sizes):
        extra.update(line.declared_size_keys)
        declared = ", ".join(f"{key}={value!r}" for key, value in line.declared_size_keys.items())
        ledger.flag(captions_source, location, DECLARED_SIZE_MISMATCH, f"declared {declared}, real sizes {sizes}")
    if line.upstream_extra:
        ledger.flag(captions_source, location, UPSTREAM_EXTRA_KEYS, ", ".join(line.upstream_extra))
    if line.caption is None:
        roles = [turn["from"] for turn in line.conversations]
        ledger.flag(captions_source, location, NO_SINGLE_CAPTION, f"{roles.count('gpt')} 'gpt' turns: caption is null")
    return _example(number, line, images, sizes, multi_image, extra)


def _single_image_examples_from_tar(location, lines, captions_source, ledger, image_check, download_config,
                                    max_image_bytes=MAX_IMAGE_BYTES):
    pending = defaultdict(list)
    for number, line in lines:
        pending[line.images[0].member].append((number, line))
    try:
        for member, data in iter_tar_members(location, frozenset(pending), download_config, max_image_bytes):
            entries = pending.pop(member, None)
            if not entries:
                continue
            if isinstance(data, CorruptImage):
                for number, _ in entries:
                    ledger.bad(captions_source, f"line {number}", data.reason, str(data))
                continue
            try:
                size = inspect_image(data, image_check)
            except CorruptImage as err:
                for number, _ in entries:
                    ledger.bad(captions_source, f"line {number}", err.reason, f"{location.url}::{member}: {err}")
                continue
            for number, line in entries:
                example = _finish(number, line, [data], [size], False, captions_source, ledger)
                if example is not None:
                    yield number, example
    except DamagedTar as damage:
        reason, detail = DAMAGED_TAR, damage.lost
    else:
        reason, detail = MISSING_IMAGE, lambda member: f"{member} is not in {location.url}"
    for member, entries in sorted(pending.items(), key=lambda item: item[1][0][0]):
        for number, _ in entries:
            ledger.bad(captions_source, f"line {number}", reason, detail(member))


def _single_image_examples_from_reader(lines, reader, captions_source, ledger, image_check):
    return _multi_image_examples(lines, reader, captions_source, ledger, image_check, multi_image=False)


def _multi_image_examples(lines, reader, captions_source, ledger, image_check, multi_image=True):
    for number, line in lines:
        images, sizes = [], []
        for ref in line.images:
            try:
                data = reader.read(ref.tar, ref.member)
            except DamagedTar as damage:
                ledger.bad(captions_source, f"line {number}", DAMAGED_TAR, damage.lost(ref.member))
                break
            except CorruptImage as refused:  # refused before reading: too large, or not a regular file
                ledger.bad(captions_source, f"line {number}", refused.reason, str(refused))
                break
            if data is None:
                where = reader.locations[ref.tar].url if ref.tar in reader.locations else f"{ref.tar} (no such tar)"
                ledger.bad(captions_source, f"line {number}", MISSING_IMAGE, f"{ref.member} is not in {where}")
                break
            size = _checked_size(data, image_check, ref.path, number, captions_source, ledger)
            if size is None:
                break
            images.append(data)
            sizes.append(size)
        else:
            example = _finish(number, line, images, sizes, multi_image, captions_source, ledger)
            if example is not None:
                yield number, example
