"""One InternVL-SA-1B-Caption jsonl line -> the fields of one example, without the images.

Single-image line: ``{"image": "sa_000123/sa_4567.jpg", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": caption}]}``; a multi-image line has ``"image": [path, ...]`` and one ``<image>`` placeholder
per image. The text is the data: every turn is kept in order (``caption`` is the ``gpt`` turn when there is exactly
one, else null), ``id`` is kept as ``source_id``, and every key the schema does not declare goes to
``upstream_extra``. Declared ``width``/``height`` (``width_list``/``height_list``) are checked against the real
images when they are read: a row keeps the real sizes, and declared ones that differ (or cannot be read as sizes) go
to ``upstream_extra``.

Only a line whose images cannot be known (no usable ``image``), whose turns are not ``{from: str, value: str}``, or
whose ``<image>`` placeholders do not match its images is an ``InvalidRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..bad_records import INVALID_RECORD, InvalidRecord
from .paths import SA1BImageRef, parse_sa1b_image_path

IMAGE_PLACEHOLDER = "<image>"
CAPTION_ROLE = "gpt"
_SIZE_KEYS = {False: ("width", "height"), True: ("width_list", "height_list")}
_DECLARED_KEYS = {"image", "conversations", "id"}


@dataclass(frozen=True)
class CaptionLine:
    """A checked caption line.

    Attributes:
        images: the line's images, in upstream order.
        conversations: the turns, byte for byte.
        caption: the value of the one ``gpt`` turn, or None when there is not exactly one.
        source_id: upstream ``id`` as a string, or None.
        declared_sizes: upstream ``(width, height)`` per image, or None when the line gives none that read as sizes.
        declared_size_keys: the line's size keys as written (empty when it has none).
        upstream_extra: undeclared keys, path -> value.
    """

    images: tuple[SA1BImageRef, ...]
    conversations: list
    caption: Optional[str]
    source_id: Optional[str]
    declared_sizes: Optional[tuple[tuple[int, int], ...]]
    declared_size_keys: dict
    upstream_extra: dict


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
    size_keys = _SIZE_KEYS[multi_image]
    extra = {key: value for key, value in line.items() if key not in _DECLARED_KEYS and key not in size_keys}
    conversations = line.get("conversations")
    if not isinstance(conversations, list):
        raise InvalidRecord(INVALID_RECORD, f"'conversations' must be a list, got {type(conversations).__name__}")
    for index, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not all(isinstance(turn.get(key), str) for key in ("from", "value")):
            raise InvalidRecord(INVALID_RECORD, f"turn {index} must have string 'from' and 'value', got {turn!r}")
        for key, value in turn.items():
            if key not in ("from", "value"):
                extra[f"conversations[{index}].{key}"] = value
    placeholders = sum(turn["value"].count(IMAGE_PLACEHOLDER) for turn in conversations if turn["from"] != CAPTION_ROLE)
    if placeholders != len(images):
        raise InvalidRecord(
            INVALID_RECORD, f"{len(images)} image(s) but {placeholders} '{IMAGE_PLACEHOLDER}' placeholder(s)"
        )
    captions = [turn["value"] for turn in conversations if turn["from"] == CAPTION_ROLE]
    source_id = line.get("id")
    if source_id is not None and (isinstance(source_id, bool) or not isinstance(source_id, (str, int))):
        extra["id"] = source_id  # not an id the schema can type: kept as written
        source_id = None
    declared = {key: line[key] for key in size_keys if key in line}
    return CaptionLine(
        images=images,
        conversations=[{"from": turn["from"], "value": turn["value"]} for turn in conversations],
        caption=captions[0] if len(captions) == 1 else None,
        source_id=None if source_id is None else str(source_id),
        declared_sizes=_declared_sizes(declared, size_keys, multi_image, len(images)),
        declared_size_keys=declared,
        upstream_extra=extra,
    )


def _declared_sizes(declared: dict, size_keys: tuple, multi_image: bool, count: int):
    """``(width, height)`` per image as the line declares them, or None where it declares none that read as sizes."""
    if not declared:
        return None
    widths, heights = (declared.get(key) for key in size_keys)
    if not multi_image:
        widths, heights = [widths], [heights]
    if not (isinstance(widths, list) and isinstance(heights, list) and len(widths) == len(heights) == count) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in widths + heights
    ):
        return None
    return tuple(zip(widths, heights))


def declared_sizes_differ(line: CaptionLine, sizes: list[tuple[int, int]]) -> bool:
    """Whether the line declares sizes (any size key) that are not the images' real sizes."""
    return bool(line.declared_size_keys) and line.declared_sizes != tuple(sizes)
