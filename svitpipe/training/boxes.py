"""Conversions between the box forms SVIT's referring text is used in, and rendering a turn in any of them.

A box is ``(x1, y1, x2, y2)``: top-left and bottom-right corners, x along the width, y along the height.

Forms:

* **normalized** (what SVIT stores): floats in 0-1 of the image's own width (x) and height (y).
* **pixels**: ``(x * width, y * height)`` as floats (no rounding).
* **thousandths**: integers 0-1000, ``round(v * 1000)``; the grounding form of InternVL and Qwen-VL.
* **llava_square**: LLaVA-v1.5's form, relative to the image padded (centred) to a square of side
  ``max(width, height)``, rounded to 3 decimals, as LLaVA-v1.5's SVIT data writes it.
* **internvl**: a rendering only (:func:`render_reference`; :func:`render_internvl_referring_text` for short):
  thousandths in InternVL's grounding markup, ``<ref>phrase</ref><box>[[x1, y1, x2, y2], ...]</box>``, every box of
  a phrase in one ``<box>``.

All functions are pure; ``round`` is Python's (ties to even), as upstream's converter used it.

Clipping: every conversion takes ``clip`` (default ``False``). Without it no value is changed silently: a box outside
the image (coordinates below 0 or above 1, as some upstream references have) converts by the same arithmetic to a box
outside the target's range. With ``clip=True`` the result is clamped to the image: normalized coordinates to 0..1
(before converting, for conversions from normalized), pixels to 0..width and 0..height, thousandths to 0..1000, the
padded square to the image's band inside it (within 0..1); nothing else changes, so a box inside the image converts
identically with and without ``clip``.

Normalized inputs are read at float32 precision (:func:`as_written`): the ``boxes`` column is float32, so a stored
``0.95`` comes back as ``0.949999988079071``; taking each value as the shortest decimal with the same float32 gives
back the ``0.95`` upstream wrote, so conversions of stored boxes equal conversions of the upstream text (``0.95 * 50``
is 47.5, a tie that rounds to 48; ``0.949999988079071 * 50`` would round to 47). This moves a float64 input by less
than 6e-8, far below any form's resolution.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from ..svit.referring_regions import Region, scan_references

__all__ = [
    "BOX_FORMS",
    "as_written",
    "format_box",
    "format_number",
    "from_llava_square",
    "from_pixels",
    "from_thousandths",
    "llava_square_error_bound",
    "render_internvl_reference",
    "render_internvl_referring_text",
    "render_reference",
    "render_referring_text",
    "to_llava_square",
    "to_pixels",
    "to_thousandths",
]

BOX_FORMS = ("normalized", "llava_square", "pixels", "thousandths", "internvl")
LLAVA_SQUARE_DECIMALS = 3

Box = Sequence[float]
RegionLike = Union[Region, Mapping[str, Any]]


def _check_box(box: Box) -> tuple:
    box = tuple(box)
    if len(box) != 4:
        raise ValueError(f"a box has 4 values (x1, y1, x2, y2), got {len(box)}: {box!r}")
    return box


def _check_size(width: Any, height: Any) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of pixels, got {value!r}")


def as_written(value: float) -> float:
    """A normalized coordinate read at float32 precision: the shortest decimal whose float32 equals ``value``'s.

    ``as_written(0.949999988079071) == 0.95`` (the float32 of 0.95, widened); ``as_written(0.95) == 0.95``.
    """
    return float(np.format_float_positional(np.float32(value), unique=True))


def _normalized(values: Iterable[float], clip: bool) -> tuple[float, ...]:
    """``values`` as a tuple, each clamped to 0..1 when ``clip``."""
    return tuple(min(1.0, max(0.0, v)) for v in values) if clip else tuple(values)


def _read_normalized(box: Box, clip: bool = False) -> tuple[float, ...]:
    return _normalized((as_written(v) for v in _check_box(box)), clip)


def to_pixels(box: Box, width: int, height: int, *, clip: bool = False) -> tuple[float, ...]:
    """Normalized -> pixels: ``(x1 * width, y1 * height, x2 * width, y2 * height)``, unrounded floats (values read by
    :func:`as_written`); with ``clip``, within 0..width and 0..height."""
    _check_size(width, height)
    x1, y1, x2, y2 = _read_normalized(box, clip)
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def from_pixels(box: Box, width: int, height: int, *, clip: bool = False) -> tuple[float, ...]:
    """Pixels -> normalized: ``(x1 / width, y1 / height, x2 / width, y2 / height)``; inverse of :func:`to_pixels`.
    With ``clip``, within 0..1."""
    _check_size(width, height)
    x1, y1, x2, y2 = _check_box(box)
    return _normalized((float(x1) / width, float(y1) / height, float(x2) / width, float(y2) / height), clip)


def to_thousandths(box: Box, *, clip: bool = False) -> tuple[int, ...]:
    """Normalized -> integers: ``round(v * 1000)`` (values read by :func:`as_written`), 0..1000 for boxes in 0-1.

    Out-of-range values give out-of-range integers (``-0.01`` -> ``-10``) unless ``clip``, which clamps to 0..1000.
    """
    return tuple(round(v * 1000) for v in _read_normalized(box, clip))


def from_thousandths(box: Box, *, clip: bool = False) -> tuple[float, ...]:
    """Integers 0-1000 -> normalized: ``v / 1000`` (with ``clip``, within 0..1). ``from_thousandths(to_thousandths(b))``
    is within 0.0005 of ``b`` for boxes in 0-1."""
    return _normalized((float(v) / 1000 for v in _check_box(box)), clip)


def _square_padding(width: int, height: int) -> tuple[int, int, int]:
    """``(side, x offset, y offset)`` of the image inside LLaVA-v1.5's centred square padding."""
    side = max(width, height)
    return side, (side - width) // 2, (side - height) // 2


def to_llava_square(box: Box, width: int, height: int, *, clip: bool = False) -> tuple[float, ...]:
    """Normalized -> LLaVA-v1.5 padded square, exactly as upstream converts SVIT's boxes.

    Pixels ``round(x * width)``, ``round(y * height)``; the image is centred in a square of side
    ``s = max(width, height)``, so ``(s - width) // 2`` is added to x pixels when ``width < height`` and
    ``(s - height) // 2`` to y pixels when ``height < width``; each value is divided by ``s`` and rounded to 3
    decimals. Values are read by :func:`as_written`, so stored float32 boxes convert as upstream's text does.

    With ``clip`` the normalized values are clamped to 0..1 first, so the result lies in the image's band of the
    square (a box reaching into the padding is cut at the image's edge).
    """
    _check_size(width, height)
    x1, y1, x2, y2 = _read_normalized(box, clip)
    side, pad_x, pad_y = _square_padding(width, height)
    pixels = (
        round(x1 * width) + pad_x,
        round(y1 * height) + pad_y,
        round(x2 * width) + pad_x,
        round(y2 * height) + pad_y,
    )
    return tuple(round(p / side, LLAVA_SQUARE_DECIMALS) for p in pixels)


def from_llava_square(box: Box, width: int, height: int, *, clip: bool = False) -> tuple[float, ...]:
    """LLaVA-v1.5 padded square -> normalized: the inverse of :func:`to_llava_square` up to its rounding.

    ``x = (X * s - pad_x) / width`` and ``y = (Y * s - pad_y) / height`` with ``s = max(width, height)``. A box at
    the image's edge can come back a little outside 0-1 (``-0.0005 * s / width``, the rounding); ``clip`` clamps
    to 0-1, which for a box that was in 0-1 only brings it closer.

    Error bound: the 3-decimal rounding moves ``X * s`` by at most ``0.0005 * s`` pixels and the pixel rounding by
    at most 0.5 pixel, so the result is within ``(0.0005 * s + 0.5) / width`` of the original x and
    ``(0.0005 * s + 0.5) / height`` of the original y (:func:`llava_square_error_bound`); e.g. 640x480: 0.00128 in
    x, 0.00171 in y (plus under 6e-8 from reading the input at float32 precision).
    """
    _check_size(width, height)
    bx1, by1, bx2, by2 = _check_box(box)
    side, pad_x, pad_y = _square_padding(width, height)

    def back(value: float, pad: int, size: int) -> float:
        return (float(value) * side - pad) / size

    return _normalized(
        (back(bx1, pad_x, width), back(by1, pad_y, height), back(bx2, pad_x, width), back(by2, pad_y, height)), clip
    )


def llava_square_error_bound(width: int, height: int) -> tuple[float, float]:
    """``(x bound, y bound)``: the most ``from_llava_square(to_llava_square(b))`` can differ from ``b`` per axis."""
    _check_size(width, height)
    side = max(width, height)
    slack = 0.5 * 10 ** -LLAVA_SQUARE_DECIMALS * side + 0.5
    return slack / width, slack / height


def format_number(value: Any, decimals: int | None = None) -> str:
    """One coordinate as text, never in exponent notation (``referring_regions`` does not read exponents).

    Integers (``int``, NumPy integers) are written as integers. Floats with ``decimals=None`` are written as the
    shortest decimal that reads back as the same float32 (the ``boxes`` column is float32, so stored values come
    back exactly, and float32 noise such as ``0.6200000047683716`` is written ``0.62``); a whole float keeps its
    ``.0``. With ``decimals=N``, floats are rounded to N decimals first and written in the shortest form of that
    (``round(0.5, 3)`` -> ``0.5``).
    """
    if isinstance(value, bool):
        raise TypeError(f"a box coordinate must be a number, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not isinstance(value, (float, np.floating)):
        raise TypeError(f"a box coordinate must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"a box coordinate must be finite, got {value!r}")
    if decimals is None:
        text = np.format_float_positional(np.float32(value), unique=True, trim="0")
    else:
        text = np.format_float_positional(round(float(value), decimals), unique=True, trim="0")
    return "0.0" if text == "-0.0" else text


def format_box(box: Box, decimals: int | None = None) -> str:
    """``[x1, y1, x2, y2]`` with ", " separators, each value by :func:`format_number`: ``"[0.12, 0.4, 0.55, 0.8]"``,
    ``"[120, 400, 550, 800]"``. For normalized boxes the text reads back (``referring_regions``: ``parse_regions``
    for boxes in 0-1, ``scan_references`` for any) to the same float32 values when ``decimals`` is None."""
    return "[" + ", ".join(format_number(v, decimals) for v in _check_box(box)) + "]"


def _region_fields(region: RegionLike) -> tuple[str, list, int, int]:
    if isinstance(region, Region):
        return region.phrase, list(region.boxes), region.start, region.end
    return region["phrase"], list(region["boxes"]), region["start"], region["end"]


def _converted(box: Box, box_form: str, width: int | None, height: int | None, clip: bool) -> tuple:
    if box_form == "normalized":
        return _normalized(_check_box(box), clip)
    if box_form in ("thousandths", "internvl"):
        return to_thousandths(box, clip=clip)
    if width is None or height is None:
        raise ValueError(f"box_form={box_form!r} needs the image's width and height")
    if box_form == "pixels":
        return to_pixels(box, width, height, clip=clip)
    return to_llava_square(box, width, height, clip=clip)


def render_reference(
    phrase: str,
    boxes: Iterable[Box],
    *,
    box_form: str = "normalized",
    markers: bool = True,
    width: int | None = None,
    height: int | None = None,
    decimals: int | None = None,
    clip: bool = False,
) -> str:
    """One reference: ``<st>phrase<ed> [..], [..]`` (``markers``) or ``phrase [..], [..]``, boxes in ``box_form``
    (clamped to the image with ``clip``, also for ``"normalized"``). ``box_form="internvl"`` writes
    ``<ref>phrase</ref><box>[[..], [..]]</box>`` in thousandths, whatever ``markers`` says (its tags mark it)."""
    if box_form not in BOX_FORMS:
        raise ValueError(f"box_form must be one of {BOX_FORMS}, got {box_form!r}")
    written = ", ".join(format_box(_converted(box, box_form, width, height, clip), decimals) for box in boxes)
    if not written:
        raise ValueError(f"reference {phrase!r} has no boxes")
    if box_form == "internvl":
        return f"<ref>{phrase}</ref><box>[{written}]</box>"
    return (f"<st>{phrase}<ed>" if markers else phrase) + " " + written


def render_referring_text(
    text: str,
    regions: Iterable[RegionLike] | None = None,
    *,
    box_form: str = "normalized",
    markers: bool = True,
    width: int | None = None,
    height: int | None = None,
    decimals: int | None = None,
    clip: bool = False,
) -> str:
    """``text`` with every region's ``text[start:end]`` rewritten by :func:`render_reference`; all else unchanged.

    ``regions`` are those of ``text`` (as stored in a row's ``regions``, or :class:`Region` objects from
    ``scan_references(text)[0]`` or ``parse_regions(text)``), in order and not overlapping; each must start with
    ``<st>phrase<ed>`` at its ``start`` (a ``ValueError`` otherwise: regions of another text). ``None`` (the
    default) reads them with ``scan_references(text)``. Text that is not a region, including a malformed reference
    the scanner reports as an issue, is kept as written, so a turn with one bad reference still renders its good
    ones. ``box_form`` is ``"normalized"`` (as stored), ``"llava_square"`` or ``"pixels"`` (both need ``width`` and
    ``height``: the row's), ``"thousandths"`` or ``"internvl"`` (InternVL's ``<ref>``/``<box>`` markup); ``clip``
    clamps the boxes to the image (module docstring), else boxes outside it are rendered outside it.
    A reference becomes the phrase (in ``<st>``/``<ed>`` when ``markers``), one space, then its boxes joined by
    ", ". With ``box_form="normalized"``, ``markers=True``, ``decimals=None`` and no ``clip`` the result scans to
    the same phrases and (float32) boxes, only the spacing inside references normalised, so offsets may shift.
    """
    if box_form not in BOX_FORMS:
        raise ValueError(f"box_form must be one of {BOX_FORMS}, got {box_form!r}")

    def render(phrase: str, boxes: list) -> str:
        return render_reference(
            phrase, boxes, box_form=box_form, markers=markers, width=width, height=height, decimals=decimals,
            clip=clip,
        )

    return _rewrite_references(text, regions, render)


def render_internvl_reference(phrase: str, boxes: Iterable[Box], *, clip: bool = False) -> str:
    """One reference in InternVL's grounding markup: :func:`render_reference` with ``box_form="internvl"``,
    ``<ref>phrase</ref><box>[[x1, y1, x2, y2], [x1, y1, x2, y2]]</box>`` in 0-1000 integers."""
    return render_reference(phrase, boxes, box_form="internvl", clip=clip)


def render_internvl_referring_text(text: str, regions: Iterable[RegionLike] | None = None, *, clip: bool = False) -> str:
    """``text`` in InternVL's grounding markup: :func:`render_referring_text` with ``box_form="internvl"``
    (everything that is not a region, malformed references included, kept as written)."""
    return render_referring_text(text, regions, box_form="internvl", clip=clip)


def _rewrite_references(text: str, regions: Iterable[RegionLike] | None, render) -> str:
    """``text`` with each region's ``text[start:end]`` replaced by ``render(phrase, boxes)``; regions must be
    ``text``'s own, in order (``None``: ``scan_references(text)``)."""
    if regions is None:
        regions = scan_references(text)[0]
    pieces = []
    position = 0
    for region in regions:
        phrase, boxes, start, end = _region_fields(region)
        if not position <= start < end <= len(text):
            raise ValueError(
                f"region {phrase!r} at {start}:{end} is out of order, overlapping or outside the text "
                f"(length {len(text)}, previous region ends at {position})"
            )
        if not text.startswith(f"<st>{phrase}<ed>", start):
            raise ValueError(f"text[{start}:{end}] = {text[start:end]!r} is not the reference to {phrase!r}")
        pieces.append(text[position:start])
        pieces.append(render(phrase, boxes))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)
