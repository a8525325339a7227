"""One SVIT record (an element of ``data/<subset>.json``) -> one typed example, without the image.

Upstream shape: ``{"image_id": int, "conversations": [{"content": [{"from": str, "value": str}, ...]}, ...]}``.
Text and role names are kept byte for byte. The checks here are the ones a training run would otherwise trip over
later; anything unexpected is an ``InvalidRecord`` naming the conversation and turn, never a silent fix.
"""

from __future__ import annotations

from typing import Any

from ..bad_records import INVALID_RECORD, UNPARSEABLE_BOX, InvalidRecord
from .referring_regions import ReferenceSyntaxError, parse_regions

_RECORD_KEYS = {"image_id", "conversations"}
_TURN_KEYS = {"from", "value"}


def read_image_id(record: Any) -> int:
    """The record's ``image_id``, checked: a non-negative integer (booleans are not integers here)."""
    if not isinstance(record, dict):
        raise InvalidRecord(INVALID_RECORD, f"expected a JSON object, got {type(record).__name__}")
    image_id = record.get("image_id")
    if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id < 0:
        raise InvalidRecord(INVALID_RECORD, f"'image_id' must be a non-negative integer, got {image_id!r}")
    return image_id


def svit_conversations(
    record: dict, *, conversation_extra_keys: frozenset = frozenset(), with_regions: bool = False
) -> list[dict]:
    """The record's conversations as typed dicts; ``regions`` parsed on every turn when ``with_regions``.

    ``conversation_extra_keys`` are string-valued keys a conversation may carry next to ``content`` (SVIT's
    ``topic``); an absent one becomes ``None``.
    """
    unknown = set(record) - _RECORD_KEYS
    if unknown:
        raise InvalidRecord(INVALID_RECORD, f"unexpected keys {sorted(unknown)} (known: {sorted(_RECORD_KEYS)})")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise InvalidRecord(INVALID_RECORD, "'conversations' must be a non-empty list")
    typed = []
    for conversation_index, conversation in enumerate(conversations):
        where = f"conversation {conversation_index}"
        if not isinstance(conversation, dict):
            raise InvalidRecord(INVALID_RECORD, f"{where} must be an object, got {type(conversation).__name__}")
        unknown = set(conversation) - {"content"} - conversation_extra_keys
        if unknown:
            raise InvalidRecord(INVALID_RECORD, f"{where} has unexpected keys {sorted(unknown)}")
        content = conversation.get("content")
        if not isinstance(content, list) or not content:
            raise InvalidRecord(INVALID_RECORD, f"{where}: 'content' must be a non-empty list of turns")
        turns = [
            _typed_turn(turn, f"{where} turn {turn_index}", with_regions) for turn_index, turn in enumerate(content)
        ]
        typed_conversation = {"content": turns}
        for key in sorted(conversation_extra_keys):
            value = conversation.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidRecord(INVALID_RECORD, f"{where}: '{key}' must be a string, got {value!r}")
            typed_conversation[key] = value
        typed.append(typed_conversation)
    return typed


def _typed_turn(turn: Any, where: str, with_regions: bool) -> dict:
    if not isinstance(turn, dict) or set(turn) != _TURN_KEYS:
        keys = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
        raise InvalidRecord(INVALID_RECORD, f"{where} must have exactly the keys 'from' and 'value', got {keys}")
    if not isinstance(turn["from"], str) or not isinstance(turn["value"], str):
        raise InvalidRecord(INVALID_RECORD, f"{where}: 'from' and 'value' must be strings")
    typed = {"from": turn["from"], "value": turn["value"]}
    if with_regions:
        try:
            regions = parse_regions(turn["value"])
        except ReferenceSyntaxError as err:
            raise InvalidRecord(UNPARSEABLE_BOX, f"{where}: {err}") from None
        typed["regions"] = [
            {"phrase": region.phrase, "boxes": [list(box) for box in region.boxes], "start": region.start,
             "end": region.end}
            for region in regions
        ]
    return typed
