"""Image size and integrity from the original bytes, which are stored as they are (never decoded and re-encoded).

What each check guarantees (the README has the same table):

* ``"header"``: the bytes are a JPEG, PNG, GIF, WebP, BMP or TIFF image whose header Pillow parses, whose size is
  not empty and at most ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (Pillow's decompression-bomb limit), and whose
  container is whole: a JPEG has scan data and an end-of-image marker after its last scan; a PNG's chunks run, each
  with its CRC right, from ``IHDR`` through at least one ``IDAT`` to ``IEND``; a GIF's blocks run to its trailer
  with at least one image. The pixel data itself is not decoded.
* ``"decode"``: all of that, and every pixel decodes.

Sizes are those of the image a user gets from ``datasets.Image``, which applies the EXIF orientation: an image
stored 64x32 with orientation 6 (rotate 90 degrees) is 32x64 (``ImageFrame.orientation`` says how it was turned).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import Literal, NamedTuple

import PIL.Image

from .bad_records import CORRUPT_IMAGE, IMAGE_TOO_LARGE

ImageCheck = Literal["header", "decode"]
IMAGE_CHECKS = ("header", "decode")
# The formats an upstream image may be in; anything else Pillow can open (EPS, PDF, ICO...) is not an image a row
# holds.
# (Pillow opens a multi-picture JPEG, format "MPO", through its JPEG opener.)
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP or TIFF"

_JPEG_END = b"\xff\xd9"
_JPEG_START_OF_SCAN = b"\xff\xda"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK = struct.Struct(">I4s")
EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientations 5 to 8 turn the image by 90 degrees: the decoded width is the stored height.
QUARTER_TURNS = (5, 6, 7, 8)


class CorruptImage(ValueError):
    """The bytes are not a readable image (``reason``: the bad-record reason it is counted under)."""

    reason = CORRUPT_IMAGE


class ImageTooLarge(CorruptImage):
    """An image refused by its size (bytes or declared pixels) before it is read whole or decoded."""

    reason = IMAGE_TOO_LARGE


class ImageFrame(NamedTuple):
    """The size of an image as ``datasets.Image`` decodes it, and the EXIF orientation (1: as stored) that turned
    it into that frame."""

    width: int
    height: int
    orientation: int = 1


def inspect_image(data: bytes, check: ImageCheck = "header") -> tuple[int, int]:
    """``(width, height)`` of an encoded image as a user decodes it, or ``CorruptImage`` saying what is wrong."""
    frame = inspect_image_frame(data, check)
    return frame.width, frame.height


def inspect_image_frame(data: bytes, check: ImageCheck = "header") -> ImageFrame:
    """The image's decoded frame (size after the EXIF orientation), checked as ``check`` says (module docstring);
    ``CorruptImage`` (or ``ImageTooLarge``) says what is wrong."""
    if not data:
        raise CorruptImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                size = image.size
                image_format = image.format
                _refuse_bomb(size)
                orientation = exif_orientation(image)
                if check == "decode":
                    image.load()
    except PIL.Image.DecompressionBombError as err:
        raise ImageTooLarge(f"declared size beyond Pillow's decompression-bomb limit ({err})") from None
    except PIL.UnidentifiedImageError:
        raise CorruptImage(f"cannot read image: not a {_FORMAT_NAMES} image ({_first_bytes(data)})") from None
    except (OSError, SyntaxError, ValueError, struct.error) as err:
        if isinstance(err, CorruptImage):
            raise
        raise CorruptImage(f"cannot read image ({type(err).__name__}: {err})") from None
    if size[0] <= 0 or size[1] <= 0:
        raise CorruptImage(f"image has an empty size {size}")
    structure = _STRUCTURE_CHECKS.get(image_format)
    if structure is not None:
        structure(data)
    width, height = size
    if orientation in QUARTER_TURNS:
        width, height = height, width
    return ImageFrame(width, height, orientation)


# A normalised [x1, y1, x2, y2] box of the stored image in the decoded image's frame, for each EXIF orientation;
# a box with its top-left corner first stays so (and an inverted one stays inverted, as the text wrote it).
_ORIENTED_BOX = {
    1: lambda x1, y1, x2, y2: [x1, y1, x2, y2],
    2: lambda x1, y1, x2, y2: [1 - x2, y1, 1 - x1, y2],  # mirrored left-right
    3: lambda x1, y1, x2, y2: [1 - x2, 1 - y2, 1 - x1, 1 - y1],  # turned 180 degrees
    4: lambda x1, y1, x2, y2: [x1, 1 - y2, x2, 1 - y1],  # mirrored top-bottom
    5: lambda x1, y1, x2, y2: [y1, x1, y2, x2],  # transposed
    6: lambda x1, y1, x2, y2: [1 - y2, x1, 1 - y1, x2],  # turned 90 degrees clockwise
    7: lambda x1, y1, x2, y2: [1 - y2, 1 - x2, 1 - y1, 1 - x1],  # transversed
    8: lambda x1, y1, x2, y2: [y1, 1 - x2, y2, 1 - x1],  # turned 90 degrees counter-clockwise
}


def oriented_box(box, orientation: int) -> list:
    """A normalised ``[x1, y1, x2, y2]`` box of the stored image, in the frame of the image as decoded."""
    return _ORIENTED_BOX[orientation](*box)


def _refuse_bomb(size: tuple[int, int]) -> None:
    limit = PIL.Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageTooLarge(
            f"declares {size[0]}x{size[1]} = {size[0] * size[1]} pixels, more than Pillow's decompression-bomb limit "
            f"PIL.Image.MAX_IMAGE_PIXELS = {limit}"
        )


def exif_orientation(image: PIL.Image.Image) -> int:
    """An opened image's EXIF orientation, 1-8 (1, as stored, when it has none or it cannot be read)."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG)
    except Exception:  # an unreadable EXIF block leaves the image as stored, as datasets' decoding does
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decoded_size(image: PIL.Image.Image) -> tuple[int, int]:
    """An opened image's ``(width, height)`` as ``datasets.Image`` decodes it: after its EXIF orientation."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in QUARTER_TURNS else (width, height)


def _first_bytes(data: bytes) -> str:
    return f"starts {data[:8]!r}"


def _check_jpeg(data: bytes) -> None:
    first_scan = data.find(_JPEG_START_OF_SCAN)
    if first_scan == -1:
        raise CorruptImage("JPEG has no scan data (no start-of-scan marker)")
    header_end = first_scan + 2 + int.from_bytes(data[first_scan + 2 : first_scan + 4], "big")
    if data[header_end : header_end + 2] in (_JPEG_END, b"") or header_end >= len(data):
        raise CorruptImage("JPEG has no scan data after its start-of-scan header")
    # A scan after the last end-of-image marker means the file stops inside that scan. Searching forward from the
    # last end marker (at the very end of a complete file) avoids scanning the whole image backwards.
    if data.find(_JPEG_START_OF_SCAN, data.rfind(_JPEG_END) + 1) != -1:
        raise CorruptImage("JPEG is truncated: no end-of-image marker after the last scan")


def _check_png(data: bytes) -> None:
    """Walk the chunks from the signature to ``IEND``, checking each one's CRC (about 1 ms per MB)."""
    position, seen_data, first = len(_PNG_SIGNATURE), False, True
    while True:
        if position + _PNG_CHUNK.size > len(data):
            raise CorruptImage(f"PNG is truncated: it ends at byte {len(data)} before its IEND chunk")
        length, kind = _PNG_CHUNK.unpack_from(data, position)
        end = position + _PNG_CHUNK.size + length + 4
        if end > len(data):
            raise CorruptImage(f"PNG is truncated inside its {kind!r} chunk at byte {position}")
        if first and kind != b"IHDR":
            raise CorruptImage(f"PNG starts with a {kind!r} chunk, not IHDR")
        stored_crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[position + 4 : end - 4]) != stored_crc:
            raise CorruptImage(f"PNG chunk {kind!r} at byte {position} has a wrong CRC")
        seen_data = seen_data or kind == b"IDAT"
        if kind == b"IEND":
            if not seen_data:
                raise CorruptImage("PNG has no IDAT chunk (no pixel data)")
            return
        position, first = end, False


def _skip_gif_sub_blocks(data: bytes, position: int) -> int:
    while True:
        if position >= len(data):
            raise CorruptImage("GIF is truncated inside a data block")
        size = data[position]
        position += 1 + size
        if size == 0:
            return position


def _check_gif(data: bytes) -> None:
    """Walk the blocks after the screen descriptor to the trailer, with at least one image."""
    flags = data[10]
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    images = 0
    while position < len(data):
        block = data[position]
        if block == 0x3B:
            if not images:
                raise CorruptImage("GIF holds no image")
            return
        if block == 0x21:  # extension: label, then data sub-blocks
            position = _skip_gif_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size, data sub-blocks
            if position + 10 > len(data):
                break
            local = data[position + 9]
            position += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            position = _skip_gif_sub_blocks(data, position)
            images += 1
        else:
            raise CorruptImage(f"GIF has an unknown block 0x{block:02x} at byte {position}")
    raise CorruptImage(f"GIF is truncated: it ends at byte {len(data)} before its trailer")


_STRUCTURE_CHECKS = {"JPEG": _check_jpeg, "MPO": _check_jpeg, "PNG": _check_png, "GIF": _check_gif}
