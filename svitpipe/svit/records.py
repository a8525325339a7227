"""One SVIT record (an element of ``data/<subset>.json``) -> its typed fields, without the image.

Upstream shape: ``{"image_id": int, "conversations": [{"content": [{"from": str, "value": str}, ...]}, ...]}``.
The text is the data: roles and values are kept byte for byte, and so is everything else upstream wrote. A key the
schema does not declare (at record, conversation or turn level) is kept in ``upstream_extra``, a mapping from its
path (``"topic"``, ``"conversations[2].source"``, ``"conversations[0].content[3].lang"``) to its value; empty
conversations and empty content are kept as they are. What the project derives (``regions``) is a view: a
reference that does not parse, or a box out of range or inverted, is recorded on its turn as ``reference_issues``.

Only a record whose declared structure is unreadable (not an object, no usable ``image_id``, ``conversations`` or
``content`` that are not lists, turns without string ``from``/``value``) is an ``InvalidRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..bad_records import INVALID_RECORD, InvalidRecord
from .referring_regions import scan_references

_RECORD_KEYS = ("image_id", "conversations")
_TURN_KEYS = ("from", "value")


@dataclass(frozen=True)
class SVITRecord:
    """The typed fields of one record.

    Attributes:
        image_id: the Visual Genome id.
        image_id_was_string: upstream wrote it as a string of digits.
        conversations: typed conversations, in upstream order.
        upstream_extra: undeclared keys, path -> value (empty when there are none).
    """

    image_id: int
    image_id_was_string: bool
    conversations: list
    upstream_extra: dict


def read_image_id(record: Any) -> tuple[int, bool]:
    """``(image_id, written as a string)``: a non-negative integer, or a string of ASCII digits that spells one
    (booleans are not integers here)."""
    if not isinstance(record, dict):
        raise InvalidRecord(INVALID_RECORD, f"expected a JSON object, got {type(record).__name__}")
    image_id = record.get("image_id")
    if isinstance(image_id, str) and image_id.isascii() and image_id.isdigit():
        return _within_int64(int(image_id)), True
    if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id < 0:
        raise InvalidRecord(
            INVALID_RECORD, f"'image_id' must be a non-negative integer or a string of digits, got {image_id!r}"
        )
    return _within_int64(image_id), False


_INT64_MAX = 2**63 - 1


def _within_int64(image_id: int) -> int:
    if image_id > _INT64_MAX:
        raise InvalidRecord(INVALID_RECORD, f"'image_id' {image_id} does not fit the int64 column")
    return image_id


def parse_svit_record(
    record: Any, *, conversation_keys: tuple = (), with_regions: bool = False
) -> SVITRecord:
    """The record's typed fields. ``conversation_keys``: string-valued keys the config declares on a conversation
    next to ``content`` (SVIT's ``topic`` in ``conversation``; an absent one becomes None). ``with_regions``: parse
    every turn's references into ``regions`` and ``reference_issues``."""
    image_id, was_string = read_image_id(record)
    extra = {key: value for key, value in record.items() if key not in _RECORD_KEYS}
    conversations = record.get("conversations")
    if not isinstance(conversations, list):
        raise InvalidRecord(INVALID_RECORD, f"'conversations' must be a list, got {type(conversations).__name__}")
    typed = [
        _typed_conversation(conversation, index, conversation_keys, with_regions, extra)
        for index, conversation in enumerate(conversations)
    ]
    return SVITRecord(image_id, was_string, typed, extra)


def _typed_conversation(conversation: Any, index: int, declared: tuple, with_regions: bool, extra: dict) -> dict:
    where = f"conversations[{index}]"
    if not isinstance(conversation, dict):
        raise InvalidRecord(INVALID_RECORD, f"{where} must be an object, got {type(conversation).__name__}")
    content = conversation.get("content")
    if not isinstance(content, list):
        raise InvalidRecord(INVALID_RECORD, f"{where}: 'content' must be a list of turns, got {content!r}")
    typed = {"content": [_typed_turn(turn, f"{where}.content[{i}]", with_regions, extra) for i, turn in enumerate(content)]}
    for key in declared:
        value = conversation.get(key)
        if value is not None and not isinstance(value, str):
            extra[f"{where}.{key}"] = value  # declared as a string: another type is kept as written, not typed
            value = None
        typed[key] = value
    for key, value in conversation.items():
        if key != "content" and key not in declared:
            extra[f"{where}.{key}"] = value
    return typed


def _typed_turn(turn: Any, where: str, with_regions: bool, extra: dict) -> dict:
    if not isinstance(turn, dict) or not all(isinstance(turn.get(key), str) for key in _TURN_KEYS):
        shown = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
        raise InvalidRecord(INVALID_RECORD, f"{where} must have string 'from' and 'value', got {shown}")
    for key, value in turn.items():
        if key not in _TURN_KEYS:
            extra[f"{where}.{key}"] = value
    typed = {"from": turn["from"], "value": turn["value"]}
    if with_regions:
        regions, issues = scan_references(turn["value"])
        typed["regions"] = [
            {"phrase": region.phrase, "boxes": [list(box) for box in region.boxes], "start": region.start,
             "end": region.end}
            for region in regions
        ]
        typed["reference_issues"] = [
            {"start": issue.start, "end": issue.end, "kind": issue.kind, "detail": issue.detail} for issue in issues
        ]
    return typed
