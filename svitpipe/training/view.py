"""One training view of every config, and mixtures of them.

Each config has its own schema (SVIT rows hold one image and several conversations, SA-1B rows one or several images
and one caption conversation), so ``datasets.interleave_datasets`` cannot align them. :func:`training_view` maps a
``Dataset`` or ``IterableDataset`` of any config to the same features, :data:`VIEW_FEATURES`:

* ``messages``: ``[{"role": "user"|"assistant", "content": [{"type": "image"|"text", "text"}]}]``, the chat format of
  ``apply_chat_template`` and TRL (``text`` is null on image parts), one image part per image;
* ``images``: a list of ``Image()``, decoded ``PIL`` images when read, in the order of the image parts;
* ``source``: the config's name; ``id``: the row's id (SVIT: with the piece's ``-c{i}`` or ``-c{i}-q{j}`` suffix).

:func:`mix` interleaves the views of several configs::

    from svitpipe.training import mix

    streams = {name: load_dataset("<org>/<repo>", name, split="train", streaming=True) for name in names}
    mixed = mix(streams, weights={"referring": 2, "sa1b-en-single": 1}, seed=0, box_form="internvl")

Images are never decoded or re-encoded while mapping: they are read as ``{"bytes", "path"}`` and decoded only when a
row is read (``.decode(False)`` on a view gives the original bytes). On an ``IterableDataset`` the view is lazy; on a
``Dataset`` it is ``Dataset.map``, written once to the ``datasets`` cache (image bytes copied as they are).
"""

from __future__ import annotations

from functools import partial
from typing import Mapping

from datasets import Dataset, Features, Image, IterableDataset, List, Value, interleave_datasets

from ..features import CONFIGS
from .boxes import render_referring_text
from .chat_format import FLATTEN_UNITS, chat_messages_features, flatten_svit, map_undecoded, to_chat_messages

__all__ = ["BOX_FORMS", "STOPPING_STRATEGIES", "VIEW_FEATURES", "mix", "training_view", "view_batch"]

# The view's names for the forms of svitpipe.training.boxes; "as-written" keeps the upstream text byte for byte.
BOX_FORMS = {
    "as-written": None,
    "pixels": "pixels",
    "0-1000": "thousandths",
    "llava-square": "llava_square",
    "internvl": "internvl",
}
STOPPING_STRATEGIES = ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement")

VIEW_FEATURES = Features(
    {
        "messages": chat_messages_features()["messages"],
        "images": List(Image()),
        "source": Value("string"),
        "id": Value("string"),
    }
)
_REFERENCE_COLUMNS = ("image_ref", "image_refs")


def _image_column(config: str) -> str:
    facts = CONFIGS[config]
    return "images" if facts.family == "sa1b" and facts.multi_image else "image"


def _check_options(config: str, per: str, box_form: str) -> None:
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {list(CONFIGS)}")
    if per not in FLATTEN_UNITS:
        raise ValueError(f"per must be one of {FLATTEN_UNITS}, got {per!r}")
    if box_form not in BOX_FORMS:
        raise ValueError(f"box_form must be one of {list(BOX_FORMS)}, got {box_form!r}")


def _check_features(features: Features | None, config: str) -> None:
    if features is None:
        raise ValueError(
            f"training_view needs a dataset with known features (config {config!r}); "
            "set them with ds.cast(svitpipe.features.features_for(config))"
        )
    image_column = _image_column(config)
    references = [column for column in _REFERENCE_COLUMNS if column in features]
    if image_column not in features and references:
        raise ValueError(
            f"config {config!r} was given in reference mode (columns {references}, no {image_column!r}): call "
            "svitpipe.sa1b.attach_images(stream, sa1b_images_source) first, so that rows carry their images"
        )
    missing = [column for column in ("id", image_column, "conversations") if column not in features]
    if missing:
        raise ValueError(f"training_view of config {config!r} needs the columns {missing}; got {list(features)}")


def _rendered_conversation(conversation: Mapping, box_form: str, width: int, height: int, options: dict) -> dict:
    """A referring conversation with every turn's boxes rewritten in ``box_form`` (a form of ``boxes``)."""
    content = [
        {**turn, "value": render_referring_text(turn["value"], turn.get("regions") or [], box_form=box_form,
                                                width=width, height=height, **options)}
        for turn in conversation["content"]
    ]
    return {**conversation, "content": content}


def _full_parts(messages: list[dict]) -> list[dict]:
    """Every part with both keys (``text`` null on image parts), so rows hold the same shape however they are read:
    ``datasets`` leaves a streamed list as given when its first item needs no encoding."""
    return [
        {"role": message["role"], "content": [{"type": part["type"], "text": part.get("text")} for part in
                                              message["content"]]}
        for message in messages
    ]


def view_batch(
    batch: Mapping[str, list],
    *,
    config: str,
    per: str = "conversation",
    box_form: str = "as-written",
    markers: bool = True,
    clip: bool = False,
    decimals: int | None = None,
) -> dict[str, list]:
    """For ``.map(batched=True)``: rows of ``config`` -> rows of :data:`VIEW_FEATURES` (options: :func:`training_view`).

    Image values are passed through as given (``{"bytes", "path"}`` dicts when the input is read undecoded).
    """
    _check_options(config, per, box_form)
    out: dict[str, list] = {name: [] for name in VIEW_FEATURES}
    if CONFIGS[config].family == "svit":
        batch = flatten_svit(batch, per=per)
        columns = ("id", "image", "width", "height", "conversations")
    else:
        columns = ("id", _image_column(config), "conversations")
    form = BOX_FORMS[box_form] if config == "referring" else None
    options = {"markers": markers, "clip": clip, "decimals": decimals}
    for index in range(len(batch["id"])):
        row = {name: batch[name][index] for name in columns}
        if form is not None:
            [conversation] = row["conversations"]
            row["conversations"] = [_rendered_conversation(conversation, form, row["width"], row["height"], options)]
        chat = to_chat_messages(row, config)
        out["messages"].append(_full_parts(chat["messages"]))
        out["images"].append(chat["images"])
        out["source"].append(config)
        out["id"].append(str(row["id"]))
    return out


def training_view(
    data: Dataset | IterableDataset,
    config: str,
    *,
    per: str = "conversation",
    box_form: str = "as-written",
    markers: bool = True,
    clip: bool = False,
    decimals: int | None = None,
    **map_kwargs,
) -> Dataset | IterableDataset:
    """``data`` (a ``Dataset`` or ``IterableDataset`` of ``config``) as rows of :data:`VIEW_FEATURES`.

    Options:

    * ``per``: SVIT rows become one row per conversation (``"conversation"``) or per QA pair (``"qa"``), as
      :func:`svitpipe.training.chat_format.flatten_svit`; SA-1B rows are one QA pair already and map one to one.
    * ``box_form`` (``referring`` only; the others have no boxes): ``"as-written"`` keeps SVIT's
      ``<st>phrase<ed> [x1, y1, x2, y2]`` text byte for byte; ``"pixels"``, ``"0-1000"``, ``"llava-square"``
      rewrite the boxes of every parsed reference (``svitpipe.training.boxes.render_referring_text``, with
      ``markers``, ``clip`` and ``decimals`` as there); ``"internvl"`` writes InternVL's
      ``<ref>phrase</ref><box>[[x1, y1, x2, y2]]</box>`` in 0-1000. A reference that did not parse (a flag on the
      row) is kept as written.
    * ``map_kwargs`` (``batch_size``, ``num_proc`` on a ``Dataset``, ...) go to ``map``.

    A ``sa1b-*`` stream in reference mode (``image_ref``/``image_refs`` columns, no images) is refused: call
    ``svitpipe.sa1b.attach_images(stream, sa1b_images_source)`` first.
    """
    _check_options(config, per, box_form)
    _check_features(data.features, config)
    function = partial(view_batch, config=config, per=per, box_form=box_form, markers=markers, clip=clip,
                       decimals=decimals)
    return map_undecoded(data, function, [_image_column(config)], VIEW_FEATURES, **map_kwargs)


def _probabilities(configs: list[str], weights: Mapping[str, float] | None) -> list[float] | None:
    if weights is None:
        return None
    unknown = sorted(set(weights) - set(configs))
    missing = [config for config in configs if config not in weights]
    if unknown or missing:
        raise ValueError(f"weights must name exactly the mixed configs {configs}; unknown {unknown}, missing {missing}")
    values = [weights[config] for config in configs]
    # A zero weight would never draw its config, so "all_exhausted" strategies would never end: leave it out instead.
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 for v in values):
        raise ValueError(
            f"weights must be positive numbers (leave a config out rather than weigh it 0), got {dict(weights)}"
        )
    total = float(sum(values))
    return [value / total for value in values]


def mix(
    datasets_by_config: Mapping[str, Dataset | IterableDataset],
    weights: Mapping[str, float] | None = None,
    seed: int | None = None,
    stopping_strategy: str = "first_exhausted",
    **view_options,
) -> Dataset | IterableDataset:
    """:func:`training_view` of every ``{config: dataset}`` (all ``Dataset`` or all ``IterableDataset``), interleaved
    with ``datasets.interleave_datasets``.

    ``weights`` (``{config: weight}`` for every config, normalised to probabilities) draws each row's source at
    random with ``seed``; ``None`` takes the sources in turn. ``stopping_strategy`` is ``datasets``':
    ``"first_exhausted"`` stops when one source ends, ``"all_exhausted"`` restarts ended sources until all have
    ended (rows repeat), ``"all_exhausted_without_replacement"`` gives every row of every source exactly once (an
    epoch of the mixture; also per DataLoader worker, each reading its share of every source's shards).
    ``view_options`` (``per``, ``box_form``, ``markers``, ``clip``, ``decimals``) go to every view.
    """
    if not datasets_by_config:
        raise ValueError("mix needs at least one {config: dataset}")
    if stopping_strategy not in STOPPING_STRATEGIES:
        raise ValueError(f"stopping_strategy must be one of {STOPPING_STRATEGIES}, got {stopping_strategy!r}")
    configs = list(datasets_by_config)
    probabilities = _probabilities(configs, weights)
    views = [training_view(datasets_by_config[config], config, **view_options) for config in configs]
    return interleave_datasets(views, probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy)
