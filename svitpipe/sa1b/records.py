"""One InternVL-SA-1B-Caption jsonl line -> the fields of one example, without the images.

Single-image line: ``{"image": "sa_000123/sa_4567.jpg", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": caption}]}``; a multi-image line has ``"image": [path, ...]`` and one ``<image>`` placeholder
per image. Optional upstream keys are kept: ``id`` (as ``source_id``), and ``width``/``height`` or
``width_list``/``height_list``, which are checked against the images' real sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..bad_records import INVALID_RECORD, InvalidRecord
from .paths import SA1BImageRef, parse_sa1b_image_path

IMAGE_PLACEHOLDER = "<image>"
CAPTION_ROLE = "gpt"
_SINGLE_KEYS = {"image", "conversations", "id", "width", "height"}
_MULTI_KEYS = {"image", "conversations", "id", "width_list", "height_list"}


@dataclass(frozen=True)
class CaptionLine:
    """A checked caption line.

    Attributes:
        images: the line's images, in upstream order.
        conversations: the turns, byte for byte.
        caption: the value of the one ``gpt`` turn.
        source_id: upstream ``id`` as a string, or None.
        declared_sizes: upstream ``(width, height)`` per image, or None when the line does not give them.
    """

    images: tuple[SA1BImageRef, ...]
    conversations: list
    caption: str
    source_id: Optional[str]
    declared_sizes: Optional[tuple[tuple[int, int], ...]]


def line_image_refs(line: Any, multi_image: bool) -> tuple[SA1BImageRef, ...]:
    """Only the images of a line (what the caption index needs), checked."""
    if not isinstance(line, dict):
        raise InvalidRecord(INVALID_RECORD, f"expected a JSON object, got {type(line).__name__}")
    image = line.get("image")
    if multi_image:
        if not isinstance(image, list) or not image:
            raise InvalidRecord(INVALID_RECORD, f"'image' must be a non-empty list of paths, got {image!r}")
        paths = image
    else:
        if not isinstance(image, str):
            raise InvalidRecord(INVALID_RECORD, f"'image' must be one path, got {image!r}")
        paths = [image]
    try:
        return tuple(parse_sa1b_image_path(path) for path in paths)
    except ValueError as err:
        raise InvalidRecord(INVALID_RECORD, str(err)) from None


def parse_caption_line(line: Any, multi_image: bool) -> CaptionLine:
    images = line_image_refs(line, multi_image)
    allowed = _MULTI_KEYS if multi_image else _SINGLE_KEYS
    unknown = set(line) - allowed
    if unknown:
        raise InvalidRecord(INVALID_RECORD, f"unexpected keys {sorted(unknown)} (known: {sorted(allowed)})")
    conversations = line.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise InvalidRecord(INVALID_RECORD, "'conversations' must be a non-empty list")
    for index, turn in enumerate(conversations):
        if (
            not isinstance(turn, dict)
            or set(turn) != {"from", "value"}
            or not isinstance(turn["from"], str)
            or not isinstance(turn["value"], str)
        ):
            raise InvalidRecord(INVALID_RECORD, f"turn {index} must be {{'from': str, 'value': str}}, got {turn!r}")
    captions = [turn["value"] for turn in conversations if turn["from"] == CAPTION_ROLE]
    if len(captions) != 1:
        raise InvalidRecord(INVALID_RECORD, f"expected exactly one '{CAPTION_ROLE}' turn, found {len(captions)}")
    placeholders = sum(turn["value"].count(IMAGE_PLACEHOLDER) for turn in conversations if turn["from"] != CAPTION_ROLE)
    if placeholders != len(images):
        raise InvalidRecord(
            INVALID_RECORD, f"{len(images)} image(s) but {placeholders} '{IMAGE_PLACEHOLDER}' placeholder(s)"
        )
    source_id = line.get("id")
    if source_id is not None:
        if isinstance(source_id, bool) or not isinstance(source_id, (str, int)):
            raise InvalidRecord(INVALID_RECORD, f"'id' must be a string or an integer, got {source_id!r}")
        source_id = str(source_id)
    return CaptionLine(
        images=images,
        conversations=[{"from": turn["from"], "value": turn["value"]} for turn in conversations],
        caption=captions[0],
        source_id=source_id,
        declared_sizes=_declared_sizes(line, multi_image, len(images)),
    )


def _declared_sizes(line: dict, multi_image: bool, count: int) -> Optional[tuple[tuple[int, int], ...]]:
    width_key, height_key = ("width_list", "height_list") if multi_image else ("width", "height")
    if width_key not in line and height_key not in line:
        return None
    widths, heights = line.get(width_key), line.get(height_key)
    if not multi_image:
        widths, heights = [widths], [heights]
    if not (isinstance(widths, list) and isinstance(heights, list) and len(widths) == len(heights) == count) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in widths + heights
    ):
        raise InvalidRecord(
            INVALID_RECORD, f"'{width_key}'/'{height_key}' must be positive integers, one per image"
        )
    return tuple(zip(widths, heights))


def check_declared_sizes(line: CaptionLine, sizes: list[tuple[int, int]]) -> None:
    """Fail when upstream's declared sizes disagree with the images' real sizes."""
    if line.declared_sizes is not None and tuple(sizes) != line.declared_sizes:
        raise InvalidRecord(
            INVALID_RECORD, f"declared image sizes {list(line.declared_sizes)} differ from the real sizes {sizes}"
        )
