"""Small JPEG thumbnails of the sampled images, written beside the page."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

__all__ = ["THUMBNAIL_SIDE", "Thumbnail", "thumbnail_size", "write_thumbnail"]

THUMBNAIL_SIDE = 224  # the longer side of every thumbnail, in CSS pixels (the page shows them at their own size)
_JPEG_QUALITY = 82


@dataclass(frozen=True)
class Thumbnail:
    """A written thumbnail: its path relative to the page, its size, and the original image's size."""

    src: str
    width: int
    height: int
    image_width: int
    image_height: int


def thumbnail_size(width: int, height: int, side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """The size that fits ``width`` x ``height`` into ``side`` x ``side``, aspect kept, each at least 1 pixel."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_thumbnail(data: bytes, out_dir: str, relative_path: str) -> Thumbnail | None:
    """Decode ``data``, scale it to :func:`thumbnail_size` and write ``out_dir/relative_path`` as JPEG; ``None``
    when the bytes do not decode (the page then says so)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_width, image_height = image.size
            size = thumbnail_size(image_width, image_height)
            image.draft("RGB", size)  # JPEG: decode at a reduced scale first
            small = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    target = os.path.join(out_dir, *relative_path.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    small.save(target, "JPEG", quality=_JPEG_QUALITY, optimize=True)
    return Thumbnail(relative_path, size[0], size[1], image_width, image_height)
