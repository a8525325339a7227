"""Rows of every config -> the shapes training code reads: flattened SVIT rows, chat messages, LLaVA records.

All functions are pure and never decode an image: image values (PIL images, or ``{"bytes", "path"}`` dicts when the
``Image`` feature has ``decode=False``) are passed through as given. They are meant for ``Dataset.map`` and
``IterableDataset.map``::

    from .chat_format import flatten_svit_dataset, to_chat_messages_fn

    ds = load_dataset("<org>/<repo>", "conversation", split="train", streaming=True)
    ds = flatten_svit_dataset(ds, per="conversation")           # one row per conversation, images untouched
    chat = ds.map(to_chat_messages_fn("conversation"), remove_columns=ds.column_names)

Roles: upstream ``user`` and ``human`` are the user, ``gpt`` the assistant; any other role is an error.

SVIT rows hold several conversations (``conversation`` config: about three per image). :func:`to_chat_messages` and
:func:`to_llava_record` read ``conversations[0]`` only, so flatten such rows first (:func:`flatten_svit_dataset`),
which gives every conversation (or QA pair) a row of its own.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

from datasets import Dataset, Features, Image, IterableDataset, List, Value

from ..features import CONFIGS
from ..sa1b.records import IMAGE_PLACEHOLDER

__all__ = [
    "FLATTEN_UNITS",
    "chat_messages_features",
    "chat_role",
    "flatten_svit",
    "flatten_svit_dataset",
    "image_parts",
    "map_undecoded",
    "qa_pairs",
    "to_chat_messages",
    "to_chat_messages_fn",
    "to_llava_record",
    "undecoded_images",
]

FLATTEN_UNITS = ("conversation", "qa")
USER, ASSISTANT = "user", "assistant"
_CHAT_ROLES = {"user": USER, "human": USER, "gpt": ASSISTANT}
_LLAVA_ROLES = {USER: "human", ASSISTANT: "gpt"}


def chat_role(upstream_role: str) -> str:
    """``"user"``/``"human"`` -> ``"user"``, ``"gpt"`` -> ``"assistant"``; a ``ValueError`` for anything else."""
    try:
        return _CHAT_ROLES[upstream_role]
    except (KeyError, TypeError):
        raise ValueError(f"unknown role {upstream_role!r}; expected one of {sorted(_CHAT_ROLES)}") from None


def _turn_role(turn: Mapping, where: str) -> str:
    """:func:`chat_role` of a turn, its error naming ``where``."""
    try:
        return chat_role(turn["from"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _is_svit(config_name: str) -> bool:
    if config_name not in CONFIGS:
        raise ValueError(f"unknown config {config_name!r}; expected one of {list(CONFIGS)}")
    return CONFIGS[config_name].family == "svit"


# --------------------------------------------------------------------------
# Flattening SVIT rows
# --------------------------------------------------------------------------


def qa_pairs(content: list[Mapping], where: str = "conversation") -> list[tuple[Mapping, Mapping]]:
    """A conversation's turns as ``(user turn, gpt turn)`` pairs: turns must alternate user, gpt, user, gpt, ...

    Anything else (a gpt turn first, two user turns in a row, a trailing user turn) is a ``ValueError`` naming
    ``where`` and the turn, since a QA pair could not be formed without guessing.
    """
    def role(index: int) -> str:
        return _turn_role(content[index], f"{where} turn {index}")

    pairs = []
    for index in range(0, len(content), 2):
        question = content[index]
        if role(index) != USER:
            raise ValueError(f"{where} turn {index}: expected a user turn, got role {question['from']!r}")
        if index + 1 >= len(content):
            raise ValueError(f"{where} turn {index}: user turn has no gpt answer after it")
        answer = content[index + 1]
        if role(index + 1) != ASSISTANT:
            raise ValueError(f"{where} turn {index + 1}: expected a gpt turn, got role {answer['from']!r}")
        pairs.append((question, answer))
    return pairs


def _pieces(row_id: str, conversations: list[Mapping], per: str) -> list[tuple[str, dict]]:
    """``(id suffix, conversation)`` for every piece of one row."""
    pieces = []
    for c, conversation in enumerate(conversations):
        if per == "conversation":
            pieces.append((f"-c{c}", dict(conversation)))
            continue
        where = f"row {row_id!r} conversation {c}"
        for q, (question, answer) in enumerate(qa_pairs(conversation["content"], where)):
            pieces.append((f"-c{c}-q{q}", {**conversation, "content": [question, answer]}))
    return pieces


def flatten_svit(batch: Mapping[str, list], per: str = "conversation") -> dict[str, list]:
    """For ``.map(batched=True)``: SVIT rows (one per image) -> one row per conversation or per QA pair.

    Every output row has all of the input's columns: ``id`` gets the suffix ``-c{i}`` (``per="conversation"``) or
    ``-c{i}-q{j}`` (``per="qa"``, a user turn with the gpt turn that answers it), 0-based; ``conversations`` is a
    one-element list holding that piece, typed like the input (a QA piece keeps its conversation's other keys, such
    as ``topic``, and each turn's ``regions``); every other column (``image_id``, ``image``, ``width``, ``height``, and
    any a user added) is repeated as is. So the output schema is the input schema. Images are not touched: with an
    ``Image(decode=False)`` column the ``{"bytes", "path"}`` dicts pass through unchanged (use
    :func:`flatten_svit_dataset`, which arranges that).
    """
    if per not in FLATTEN_UNITS:
        raise ValueError(f"per must be one of {FLATTEN_UNITS}, got {per!r}")
    for needed in ("id", "conversations"):
        if needed not in batch:
            raise KeyError(f"flatten_svit needs an SVIT batch with an {needed!r} column; got {list(batch.keys())}")
    columns = {name: batch[name] for name in batch.keys()}
    flat: dict[str, list] = {name: [] for name in columns}
    for row in range(len(columns["id"])):
        row_id = columns["id"][row]
        for suffix, conversation in _pieces(row_id, columns["conversations"][row], per):
            for name, values in columns.items():
                if name == "id":
                    flat[name].append(f"{row_id}{suffix}")
                elif name == "conversations":
                    flat[name].append([conversation])
                else:
                    flat[name].append(values[row])
    return flat


def undecoded_images(ds: Dataset | IterableDataset, columns: list[str]) -> Dataset | IterableDataset:
    """``ds`` reading ``columns`` (``Image`` or lists of ``Image``) as ``{"bytes", "path"}`` dicts, a metadata change.

    On an ``IterableDataset`` this is ``decode(False)``, which also drops a threaded decoding step ``load_dataset``
    may have added (casting the column alone would leave that step decoding).
    """
    if isinstance(ds, IterableDataset):
        return ds.decode(False)
    for column in columns:
        feature = ds.features[column]
        ds = ds.cast_column(column, List(Image(decode=False)) if isinstance(feature, List) else Image(decode=False))
    return ds


def map_undecoded(ds: Dataset | IterableDataset, function: Callable, image_columns: list[str], features: Features,
                  **map_kwargs) -> Dataset | IterableDataset:
    """``ds.map(function, batched=True)`` over undecoded images, giving a dataset of ``features`` whose rows hold what
    ``features`` says (images decoded on access where it says ``Image(decode=True)``).

    ``function`` maps a batch whose ``image_columns`` hold ``{"bytes", "path"}`` dicts to a batch of ``features``'
    columns. On a ``Dataset`` the output is written with ``features``. On an ``IterableDataset`` the map is left
    untyped and ``features`` are set with ``cast``: ``datasets`` applies (encodes, then decodes) the features of a
    stream only on rows of an untyped step, so a map typed with ``features`` would hand out its function's
    ``{"bytes", "path"}`` dicts as they are, whatever a later ``cast`` declares. Left untyped, rows are decoded
    when read, and ``.decode(False)`` or ``.decode(num_threads=...)`` on the result work as on any stream.
    """
    undecoded = undecoded_images(ds, image_columns)
    remove = list(undecoded.features)
    if isinstance(undecoded, IterableDataset):
        mapped = undecoded.map(function, batched=True, remove_columns=remove, **map_kwargs)
        return mapped.cast(features)
    return undecoded.map(function, batched=True, remove_columns=remove, features=features, **map_kwargs)


def flatten_svit_dataset(ds: Dataset | IterableDataset, per: str = "conversation", **map_kwargs):
    """:func:`flatten_svit` over a whole ``Dataset`` or ``IterableDataset`` of an SVIT config, images undecoded.

    The ``image`` column is read as ``{"bytes", "path"}`` while mapping (``batched=True``; ``map_kwargs``, e.g.
    ``batch_size`` or ``num_proc``, are passed on), so no image is decoded or re-encoded; the result has the input's
    features, and its rows hold what they say: with the input's ``Image()``, a decoded ``PIL.Image`` of the original
    bytes (on a stream too); ``.decode(False)`` on the result gives the bytes.
    """
    if per not in FLATTEN_UNITS:
        raise ValueError(f"per must be one of {FLATTEN_UNITS}, got {per!r}")
    features = ds.features
    if features is None or "image" not in features or "conversations" not in features:
        raise ValueError(
            "flatten_svit_dataset needs an SVIT dataset with known features, including 'image' and 'conversations'; "
            f"got features {features}"
        )
    return map_undecoded(ds, partial(flatten_svit, per=per), ["image"], features, **map_kwargs)


# --------------------------------------------------------------------------
# Chat messages (transformers' apply_chat_template, TRL's vision SFT)
# --------------------------------------------------------------------------


def image_parts(text: str) -> list[dict]:
    """A turn's text -> content parts, each ``<image>`` becoming ``{"type": "image"}`` at its position.

    The text between placeholders becomes ``{"type": "text", "text": ...}`` byte for byte, except that the single
    ``"\\n"`` right after a placeholder that opens the turn (LLaVA's ``<image>\\n``) is dropped, and empty text parts
    are left out. ``"Image-1: <image>\\nImage-2: <image>\\nDescribe."`` -> text ``"Image-1: "``, image,
    text ``"\\nImage-2: "``, image, text ``"\\nDescribe."``.
    """
    pieces = text.split(IMAGE_PLACEHOLDER)
    parts: list[dict] = []
    for index, piece in enumerate(pieces):
        if index > 0:
            parts.append({"type": "image"})
            if index == 1 and pieces[0] == "" and piece.startswith("\n"):
                piece = piece[1:]
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def _first_conversation(row: Mapping, where: str) -> list[Mapping]:
    conversations = row["conversations"]
    if not conversations:
        raise ValueError(f"{where} has no conversations")
    return conversations[0]["content"]


def _no_placeholder(text: str, where: str) -> None:
    if IMAGE_PLACEHOLDER in text:
        raise ValueError(
            f"{where}: SVIT text contains {IMAGE_PLACEHOLDER!r}, which would be read as an image placeholder"
        )


def _row_images(row: Mapping, config_name: str) -> list:
    if _is_svit(config_name) or not CONFIGS[config_name].multi_image:
        return [row["image"]]
    return list(row["images"])


def to_chat_messages(row: Mapping, config_name: str) -> dict:
    """One row -> ``{"messages": [...], "images": [...]}``, the input of processors' ``apply_chat_template`` and of
    TRL's vision SFT.

    ``messages`` is ``[{"role": "user"|"assistant", "content": [parts]}]`` with parts ``{"type": "text", "text"}``
    and ``{"type": "image"}``, one image part per image. SA-1B rows: each ``<image>`` placeholder of a user turn
    becomes an image part at its position (:func:`image_parts`); assistant text is kept as is; the count of
    placeholders must equal the count of images. SVIT rows (no placeholders upstream): the image part goes first in
    the first user turn, the text is kept byte for byte (referring text keeps its ``<st>``/``<ed>`` boxes: rewrite
    it with :func:`svitpipe.training.boxes.render_referring_text` first for another form); only ``conversations[0]`` is
    used, so flatten multi-conversation rows first. ``images`` holds the row's image values as given (PIL images or
    ``{"bytes", "path"}`` dicts), in order.
    """
    where = f"row {row.get('id')!r}"
    images = _row_images(row, config_name)
    messages = []
    if _is_svit(config_name):
        placed = False
        for index, turn in enumerate(_first_conversation(row, where)):
            role = _turn_role(turn, f"{where} turn {index}")
            _no_placeholder(turn["value"], where)
            parts = [{"type": "text", "text": turn["value"]}] if turn["value"] else []
            if role == USER and not placed:
                parts.insert(0, {"type": "image"})
                placed = True
            messages.append({"role": role, "content": parts})
        if not placed:
            raise ValueError(f"{where}: no user turn to put the image in")
    else:
        placeholders = 0
        for index, turn in enumerate(row["conversations"]):
            role = _turn_role(turn, f"{where} turn {index}")
            if role == USER:
                parts = image_parts(turn["value"])
                placeholders += sum(part["type"] == "image" for part in parts)
            else:
                parts = [{"type": "text", "text": turn["value"]}] if turn["value"] else []
            messages.append({"role": role, "content": parts})
        if placeholders != len(images):
            raise ValueError(f"{where}: {len(images)} image(s) but {placeholders} {IMAGE_PLACEHOLDER!r} placeholder(s)")
    return {"messages": messages, "images": images}


def to_chat_messages_fn(config_name: str) -> Callable[[Mapping], dict]:
    """``to_chat_messages`` bound to a config, for ``ds.map(fn, remove_columns=ds.column_names)`` (picklable)."""
    _is_svit(config_name)
    return partial(to_chat_messages, config_name=config_name)


def chat_messages_features(decode: bool = True) -> Features:
    """Features of :func:`to_chat_messages` rows, to pass as ``map(..., features=...)`` so that ``images`` stays a
    list of ``Image`` (``decode=False`` keeps the bytes undecoded when reading)."""
    part = {"type": Value("string"), "text": Value("string")}
    return Features(
        {
            "messages": List({"role": Value("string"), "content": List(part)}),
            "images": List(Image(decode=decode)),
        }
    )


# --------------------------------------------------------------------------
# LLaVA records
# --------------------------------------------------------------------------


def _stored_path(image: Any, where: str) -> str:
    if isinstance(image, Mapping) and isinstance(image.get("path"), str) and image["path"]:
        return image["path"]
    raise ValueError(
        f"{where}: the image has no stored path (got {type(image).__name__}); read the dataset with "
        "Image(decode=False) so that images are {'bytes', 'path'} dicts"
    )


def to_llava_record(row: Mapping, config_name: str) -> dict:
    """One row -> ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}`` (LLaVA's training JSON).

    SVIT: ``conversations[0]`` only (flatten first), with ``"<image>\\n"`` put at the start of the first human turn,
    so exactly one placeholder; ``image`` is the stored image path (``image["path"]``, e.g. ``VG_100K/1.jpg``), so
    rows must be read with ``Image(decode=False)``. SA-1B: the turns keep their placeholders; ``image`` is
    ``image_path``, or the list ``image_paths`` for multi-image configs. Roles become ``human``/``gpt``.
    """
    where = f"row {row.get('id')!r}"
    if _is_svit(config_name):
        turns, image = _first_conversation(row, where), _stored_path(row["image"], where)
    elif CONFIGS[config_name].multi_image:
        turns, image = row["conversations"], list(row["image_paths"])
    else:
        turns, image = row["conversations"], row["image_path"]
    svit = _is_svit(config_name)
    conversations = []
    placed = not svit
    for index, turn in enumerate(turns):
        role = _LLAVA_ROLES[_turn_role(turn, f"{where} turn {index}")]
        value = turn["value"]
        if svit:
            _no_placeholder(value, where)
            if not placed and role == "human":
                value = f"{IMAGE_PLACEHOLDER}\n{value}"
                placed = True
        conversations.append({"from": role, "value": value})
    if not placed:
        raise ValueError(f"{where}: no human turn to put the image in")
    return {"id": str(row["id"]), "image": image, "conversations": conversations}
