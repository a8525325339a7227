"""SA-1B caption lines -> reference-mode examples (``sa1b_images="reference"``): every field of the embed build but
the image bytes, which are replaced by where each image is (``image_ref``: tar, member, path).

The captions alone build it. Sizes are the ones the line declares (when they read as sizes) or, when an
``sa1b_images_source`` is given, the images' real sizes read from their headers in the tars; null otherwise.
Declared sizes that cannot be read as sizes, or that differ from the real ones, go to ``upstream_extra`` as in the
embed build; ``attach_images`` finishes the rows whose sizes were declared, once it has the images.

Rows of one tar are in the order a join reads the tar front to back, which is also the order of the embed build:
single-image rows by their member's position in the tar (known from its member index when the images source is
given; otherwise by member number), lines of one member in file order; multi-image rows (whose images lie in several
tars) and rows joined with extracted folders in caption-line order.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterator, Optional

import PIL.Image
from datasets.download.download_config import DownloadConfig

from ..bad_records import DECLARED_SIZE_MISMATCH, NO_SINGLE_CAPTION, UPSTREAM_EXTRA_KEYS, BadRecordLedger
from ..image_checks import decoded_size
from .examples import _read_bucket, caption_line_fields
from .image_source import ImageNotAvailable, SA1BImageSource
from .records import CaptionLine, declared_sizes_differ

_INT32_MAX = 2**31 - 1
_HEADER_BYTES = 64 << 10  # enough for a JPEG's size in almost every file; the whole image is read otherwise


@dataclass(frozen=True)
class ReferenceTar:
    """One reference-mode builder shard: the caption lines whose (first) image is in tar ``stem``.

    Attributes:
        position: its index in the config's list of tars.
        stem: the tar, ``sa_000123``.
        bucket: the caption-index bucket file with the tar's lines.
    """

    position: int
    stem: str
    bucket: str


def image_ref(ref) -> dict:
    return {"tar": ref.tar, "member": ref.member, "path": ref.path}


def generate_reference_examples(
    *,
    tars: list[ReferenceTar],
    multi_image: bool,
    captions_source: str,
    ledger: BadRecordLedger,
    images_source: Optional[str] = None,
    index_dir: Optional[str] = None,
    download_config: Optional[DownloadConfig] = None,
) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(tar position, line number, example)`` for every caption line of the given tars."""
    source = SA1BImageSource(images_source, index_dir, download_config=download_config) if images_source else None
    try:
        for tar in tars:
            lines = list(_read_bucket(tar, multi_image, captions_source, ledger))
            for number, line in _in_join_order(lines, tar.stem, multi_image, source):
                sizes = _real_sizes(line, source) if source is not None else None
                ledger.examples_written += 1
                yield tar.position, number, reference_example(number, line, sizes, multi_image, captions_source, ledger)
    finally:
        if source is not None:
            source.close()


def _in_join_order(lines: list, stem: str, multi_image: bool, source: Optional[SA1BImageSource]) -> list:
    if multi_image:
        return lines
    index = source.member_index(stem) if source is not None else None
    if source is not None and index is None and source.location(stem) is not None:
        return lines  # an extracted folder: no tar order to follow
    positions = index.positions() if index is not None else {}

    def key(entry):
        number, line = entry
        member = line.images[0].member
        if member in positions:
            return (0, positions[member], number)
        return (1, member_number(member), number)

    return sorted(lines, key=key)


def member_number(member: str) -> int:
    """``sa_4567.jpg`` -> 4567 (members are ``sa_<digits>.jpg``, checked by ``paths``)."""
    return int(member[3:-4])


def _real_sizes(line: CaptionLine, source: SA1BImageSource) -> Optional[list]:
    """Every image's real ``(width, height)``, from its header; None when any image cannot be read."""
    sizes = []
    for ref in line.images:
        try:
            size = _image_size(source.read(ref.tar, ref.member, limit=_HEADER_BYTES))
            if size is None:
                size = _image_size(source.read(ref.tar, ref.member))
        except ImageNotAvailable:
            return None
        if size is None:
            return None
        sizes.append(size)
    return sizes


def _image_size(head: bytes) -> Optional[tuple[int, int]]:
    try:
        with PIL.Image.open(io.BytesIO(head)) as image:
            return decoded_size(image)  # the frame the embed build's sizes are in
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError):
        return None


def _fits(sizes) -> bool:
    return sizes is not None and all(0 < value <= _INT32_MAX for size in sizes for value in size)


def reference_example(
    number: int, line: CaptionLine, real_sizes: Optional[list], multi_image: bool, captions_source: str,
    ledger: BadRecordLedger,
) -> dict:
    """One reference row. With ``real_sizes`` it holds what the embed row holds but the bytes; without, the declared
    sizes (or nulls), declared keys that do not read as sizes kept in ``upstream_extra``."""
    extra = dict(line.upstream_extra)
    location = f"line {number}"
    if real_sizes is not None:
        sizes = real_sizes
        if declared_sizes_differ(line, real_sizes):
            extra.update(line.declared_size_keys)
            declared = ", ".join(f"{key}={value!r}" for key, value in line.declared_size_keys.items())
            ledger.flag(captions_source, location, DECLARED_SIZE_MISMATCH, f"declared {declared}, real sizes {sizes}")
    elif _fits(line.declared_sizes):
        sizes = list(line.declared_sizes)
    else:
        sizes = None
        extra.update(line.declared_size_keys)  # no image to compare with: what does not read as a size is kept
    if line.upstream_extra:
        ledger.flag(captions_source, location, UPSTREAM_EXTRA_KEYS, ", ".join(line.upstream_extra))
    if line.caption is None:
        roles = [turn["from"] for turn in line.conversations]
        ledger.flag(captions_source, location, NO_SINGLE_CAPTION, f"{roles.count('gpt')} 'gpt' turns: caption is null")
    if sizes is None:
        sizes = [(None, None)] * len(line.images)
    common = caption_line_fields(line, extra)
    if multi_image:
        return {
            "id": str(number),
            "image_refs": [image_ref(ref) for ref in line.images],
            "widths": [size[0] for size in sizes],
            "heights": [size[1] for size in sizes],
            **common,
        }
    return {
        "id": str(number),
        "image_ref": image_ref(line.images[0]),
        "width": sizes[0][0],
        "height": sizes[0][1],
        **common,
    }
