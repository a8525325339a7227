"""Image size and integrity from the original bytes, which are stored as they are (never decoded and re-encoded)."""

from __future__ import annotations

import io
from typing import Literal

import PIL.Image

ImageCheck = Literal["header", "decode"]
IMAGE_CHECKS = ("header", "decode")

_JPEG_END = b"\xff\xd9"
_JPEG_START_OF_SCAN = b"\xff\xda"


class CorruptImage(ValueError):
    """The bytes are not a readable image."""


def inspect_image(data: bytes, check: ImageCheck = "header") -> tuple[int, int]:
    """Return ``(width, height)`` of an encoded image, or raise ``CorruptImage`` saying what is wrong.

    ``check="header"`` parses the header and, for JPEG, requires an end-of-image marker after the last scan, which
    catches truncated files at almost no cost. ``check="decode"`` also decodes every pixel (about 3 ms for a
    500x375 JPEG, 30 ms for SA-1B's 1500x2250 ones).
    """
    if not data:
        raise CorruptImage("empty file")
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            size = image.size
            image_format = image.format
            if check == "decode":
                image.load()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise CorruptImage(f"cannot read image ({type(err).__name__}: {err})") from None
    # A scan after the last end-of-image marker means the file stops inside that scan. Searching forward from the
    # last end marker (at the very end of a complete file) avoids scanning the whole image backwards.
    if image_format == "JPEG" and data.find(_JPEG_START_OF_SCAN, data.rfind(_JPEG_END) + 1) != -1:
        raise CorruptImage("JPEG is truncated: no end-of-image marker after the last scan")
    if size[0] <= 0 or size[1] <= 0:
        raise CorruptImage(f"image has an empty size {size}")
    return size
