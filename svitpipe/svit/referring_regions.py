"""Strict parser for the region references in SVIT "referring QA" text.

SVIT writes a referenced object as a phrase between ``<st>`` and ``<ed>``
followed by one or more bounding boxes::

    The <st>red car<ed> [0.12, 0.40, 0.55, 0.80] is parked next to
    <st>two people<ed> [0.6, 0.3, 0.7, 0.9], [0.72, 0.31, 0.8, 0.95].

Every coordinate is normalised to 0-1 of the image's width (x) or height (y);
a box is ``[x1, y1, x2, y2]`` with (x1, y1) the top-left and (x2, y2) the
bottom-right corner.

Grammar
-------
Offsets are Python ``str`` indices (code points).  "Blank" means a space or a
tab; "whitespace" means any character for which ``str.isspace()`` is true
(including newlines).  The markers ``<st>`` and ``<ed>`` are matched exactly
(lower case)::

    reference    := "<st>" phrase "<ed>" blank* box ( continuation )*
    phrase       := one or more characters, none of which starts "<st>" or
                    "<ed>"; it must not consist of whitespace only.  It is
                    returned exactly as written (commas, brackets, digits,
                    newlines, any script, surrounding spaces: all kept).
    box          := "[" ws* number ws* "," ws* number ws* "," ws* number ws*
                    "," ws* number ws* "]"
    number       := [0-9]+ ( "." [0-9]* )?  |  "." [0-9]+
                    (ASCII digits only; no sign, no exponent: "0", "1",
                    "0.25", ".5" and "1." are accepted; "-0.1", "+0.1" and
                    "1e-3" are errors)
    continuation := blank* "," blank* box

Rules that decide where a reference ends:

* After ``<ed>`` only blanks (or nothing) may precede the first box; a line
  break there is an error, and so is anything other than ``[``.  Once a ``[``
  follows ``<ed>`` it must be a complete, valid box.
* After a box, the text ``blank* "," blank* "["`` followed by ``ws*`` and
  something that *starts like a number* (a digit, ``.`` + digit, or a sign
  ``+``/``-`` followed by a digit or ``.``) is another box of the same
  reference and must parse completely, otherwise it is an error.  Signs are
  included in the look-ahead so that a negative box is reported rather than
  silently dropped.  If the bracket content does not start like a number
  (e.g. ``, [see note]`` or ``, [...]``) the reference ends at the end of the
  previous box and the comma belongs to the ordinary text.
* Boxes of one reference are separated by a comma only; boxes separated by
  blanks or line breaks alone are not continuations (the second one is
  ordinary text).

Anything in square brackets that does not directly follow ``<ed>`` or a box
continuation comma is ordinary text and ignored - including ``[OPEN]``,
``[sic]`` and even a bare ``[0.1, 0.2, 0.3, 0.4]``: a box without a
``<st>phrase<ed>`` has no phrase, so it is not a region.

Values must satisfy ``0 <= v <= 1``, ``x1 <= x2`` and ``y1 <= y2`` (equal
values, i.e. degenerate boxes, are allowed).

Every violation raises :class:`ReferenceSyntaxError`; nothing is skipped or
repaired.  A ``<st>`` without a later ``<ed>``, a second ``<st>`` before the
``<ed>`` and an ``<ed>`` without an open ``<st>`` are errors too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Region", "ReferenceSyntaxError", "parse_regions"]

Box = tuple[float, float, float, float]

_ST = "<st>"
_ED = "<ed>"
_BLANKS = " \t"
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_STARTS_LIKE_NUMBER = re.compile(r"[+-]?(?:[0-9]|\.[0-9])|[+-]\.")
# A whole well-formed box in one match: the grammar's box, with \s being exactly str.isspace(). Anything else goes
# through the step-by-step parser, which says what is wrong.
_WHOLE_BOX = re.compile(r"\[\s*({0})\s*,\s*({0})\s*,\s*({0})\s*,\s*({0})\s*\]".format(_NUMBER.pattern))
_EXCERPT_RADIUS = 20


@dataclass(frozen=True)
class Region:
    """One ``<st>phrase<ed> [box], ...`` reference; ``text[start:end]`` is all of it."""

    phrase: str
    boxes: tuple[Box, ...]
    start: int
    end: int


class ReferenceSyntaxError(ValueError):
    """A malformed reference; ``position`` is the character offset of the problem."""

    def __init__(self, text: str, position: int, expected: str) -> None:
        self.position = position
        self.excerpt = _excerpt(text, position)
        super().__init__(f"{expected} (at offset {position}, near {self.excerpt!r})")


def _excerpt(text: str, position: int) -> str:
    lo = max(0, position - _EXCERPT_RADIUS)
    hi = min(len(text), position + _EXCERPT_RADIUS)
    return ("..." if lo > 0 else "") + text[lo:hi] + ("..." if hi < len(text) else "")


def _skip(text: str, i: int, blanks_only: bool) -> int:
    while i < len(text) and (text[i] in _BLANKS if blanks_only else text[i].isspace()):
        i += 1
    return i


def _describe(text: str, i: int) -> str:
    return "end of text" if i >= len(text) else repr(text[i])


def _parse_number(text: str, i: int, index: int) -> tuple[float, int]:
    match = _NUMBER.match(text, i)
    if match is None:
        if i >= len(text):
            raise ReferenceSyntaxError(text, i, "missing ']': text ends inside a box")
        if text[i] in "+-":
            raise ReferenceSyntaxError(
                text, i, f"box number {index + 1} is signed; expected a non-negative "
                "number such as 0, 1, 0.25 or .5")
        if text[i] == "]":
            raise ReferenceSyntaxError(
                text, i, f"box has {index} numbers; expected exactly 4 (x1, y1, x2, y2)")
        raise ReferenceSyntaxError(
            text, i, f"expected box number {index + 1} of 4 (digits, e.g. 0.25), "
            f"found {_describe(text, i)}")
    end = match.end()
    if end < len(text) and text[end] in "eE":
        raise ReferenceSyntaxError(
            text, i, "exponent notation is not allowed in a box; write a plain "
            "decimal such as 0.001")
    return float(match.group()), end


def _parse_box(text: str, i: int) -> tuple[Box, int]:
    """Parse the box whose ``[`` is at ``text[i]``; return it and the offset after ``]``."""
    box_start = i
    whole = _WHOLE_BOX.match(text, i)
    if whole is not None:
        return _checked_box(text, box_start, [float(value) for value in whole.groups()], whole.end())
    i += 1
    values: list[float] = []
    for index in range(4):
        value, i = _parse_number(text, _skip(text, i, blanks_only=False), index)
        values.append(value)
        i = _skip(text, i, blanks_only=False)
        if index < 3:
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            if i < len(text) and text[i] == "]":
                raise ReferenceSyntaxError(
                    text, i, f"box has {index + 1} numbers; expected exactly 4 "
                    "(x1, y1, x2, y2)")
            if i >= len(text):
                raise ReferenceSyntaxError(text, i, "missing ']': text ends inside a box")
            raise ReferenceSyntaxError(
                text, i, f"expected ',' after box number {index + 1}, found {_describe(text, i)}")
    if i >= len(text):
        raise ReferenceSyntaxError(text, i, "missing ']': text ends inside a box")
    if text[i] == ",":
        raise ReferenceSyntaxError(
            text, i, "box has more than 4 numbers; expected exactly 4 (x1, y1, x2, y2)")
    if text[i] != "]":
        raise ReferenceSyntaxError(
            text, i, f"expected ']' after the 4th box number, found {_describe(text, i)}")
    return _checked_box(text, box_start, values, i + 1)


def _checked_box(text: str, box_start: int, values: list[float], end: int) -> tuple[Box, int]:
    x1, y1, x2, y2 = values
    if 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0:
        return (x1, y1, x2, y2), end
    written = text[box_start:end]
    for name, value in zip(("x1", "y1", "x2", "y2"), values):
        if not 0.0 <= value <= 1.0:
            raise ReferenceSyntaxError(
                text, box_start, f"box {written} has {name}={value}; coordinates must be "
                "between 0 and 1")
    if x1 > x2:
        raise ReferenceSyntaxError(
            text, box_start, f"box {written} has x1={x1} > x2={x2}; expected x1 <= x2")
    if y1 > y2:
        raise ReferenceSyntaxError(
            text, box_start, f"box {written} has y1={y1} > y2={y2}; expected y1 <= y2")
    return (x1, y1, x2, y2), end


def _continuation(text: str, i: int) -> int | None:
    """Offset of the ``[`` of a continuation box after offset ``i``, or None."""
    j = _skip(text, i, blanks_only=True)
    if j >= len(text) or text[j] != ",":
        return None
    j = _skip(text, j + 1, blanks_only=True)
    if j >= len(text) or text[j] != "[":
        return None
    k = _skip(text, j + 1, blanks_only=False)
    return j if _STARTS_LIKE_NUMBER.match(text, k) else None


def _parse_reference(text: str, start: int) -> Region:
    phrase_start = start + len(_ST)
    ed = text.find(_ED, phrase_start)
    if ed < 0:
        raise ReferenceSyntaxError(text, start, "'<st>' has no matching '<ed>'")
    nested = text.find(_ST, phrase_start, ed)
    if nested >= 0:
        raise ReferenceSyntaxError(
            text, nested, f"nested '<st>': the '<st>' at offset {start} is not closed "
            "by '<ed>' yet")
    phrase = text[phrase_start:ed]
    if not phrase.strip():
        raise ReferenceSyntaxError(text, start, "empty phrase between '<st>' and '<ed>'")
    i = _skip(text, ed + len(_ED), blanks_only=True)
    if i >= len(text) or text[i] != "[":
        hint = ("; only spaces/tabs may separate '<ed>' from its box"
                if i < len(text) and text[i].isspace() else "")
        raise ReferenceSyntaxError(
            text, i, f"'<st>phrase<ed>' must be followed by a box '[x1, y1, x2, y2]', "
            f"found {_describe(text, i)}{hint}")
    boxes = []
    while i is not None:
        box, end = _parse_box(text, i)
        boxes.append(box)
        i = _continuation(text, end)
    return Region(phrase=phrase, boxes=tuple(boxes), start=start, end=end)


def parse_regions(text: str) -> list[Region]:
    """Return every ``<st>phrase<ed> [box], ...`` reference in ``text``, in order.

    Raises :class:`ReferenceSyntaxError` on the first malformed reference.
    """
    regions: list[Region] = []
    pos = 0
    while True:
        st = text.find(_ST, pos)
        stray = text.find(_ED, pos, len(text) if st < 0 else st)
        if stray >= 0:
            raise ReferenceSyntaxError(text, stray, "'<ed>' without an open '<st>'")
        if st < 0:
            return regions
        region = _parse_reference(text, st)
        regions.append(region)
        pos = region.end
