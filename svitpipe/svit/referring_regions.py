"""Region references in SVIT "referring QA" text: a strict parser and a lenient scanner.

SVIT writes a referenced object as a phrase between ``<st>`` and ``<ed>``
followed by one or more bounding boxes::

    The <st>red car<ed> [0.12, 0.40, 0.55, 0.80] is parked next to
    <st>two people<ed> [0.6, 0.3, 0.7, 0.9], [0.72, 0.31, 0.8, 0.95].

Every coordinate is normalised to 0-1 of the image's width (x) or height (y);
a box is ``[x1, y1, x2, y2]`` with (x1, y1) the top-left and (x2, y2) the
bottom-right corner.

:func:`parse_regions` is strict: it raises on anything odd.
:func:`scan_references` reads the same references but never raises; it
returns the regions it can read and a list of issues (see "Scanner" below).
The upstream text is the data and the regions are a view derived from it, so
a problem in them is recorded, not fatal.

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

Scanner
-------
:func:`scan_references` reads the grammar above with two relaxations::

    reference    := "<st>" phrase "<ed>" ws* box ( continuation )*
    number       := [+-]? ( [0-9]+ ( "." [0-9]* )?  |  "." [0-9]+ )

that is, any whitespace (line breaks too) may separate ``<ed>`` from its first
box (continuations keep the blank-only rule), and numbers may be signed (an
exponent is still not a number).  It returns ``(regions, issues)``.
``regions`` are the references that parse, in order, with their boxes as
written, whatever their values.  ``issues`` are :class:`ReferenceIssue` items
sorted by ``start``; ``text[start:end]`` is the offending span and ``kind``
one of (names from :mod:`svitpipe.bad_records`):

``unparsed`` (``REFERENCE_UNPARSED``)
    Text that looks like a reference but is not one; it gives no region.

    * an ``<ed>`` without an open ``<st>``: span = that ``<ed>``;
    * a ``<st>`` without a later ``<ed>``, or followed by another ``<st>``
      before its ``<ed>``: span = that ``<st>`` (so the inner
      ``<st>phrase<ed> [box]`` of ``<st>a <st>b<ed> [box]`` is still read);
    * a whitespace-only phrase, or ``<st>phrase<ed>`` not followed by a box:
      span = ``<st>`` through ``<ed>``;
    * a first or continuation box that does not parse (not 4 numbers, a
      letter, an exponent, a missing ``]``): span = from ``<st>`` to the end
      of the bad box, which is its ``]`` if one closes it before any ``[``,
      ``<st>`` or ``<ed>``, else the end of the token (a run without
      whitespace, brackets, ``,`` or ``<``) where reading stopped.  The
      reference's other boxes are not kept either.

    Scanning goes on after the span, so later references are still read.
``out-of-range`` (``REFERENCE_OUT_OF_RANGE``)
    A box of a region with a coordinate below 0 or above 1; span = the box.
``inverted`` (``REFERENCE_INVERTED``)
    A box of a region with ``x1 > x2`` or ``y1 > y2``; span = the box.  A box
    can have both value issues (two entries).

Whenever :func:`parse_regions` accepts a text, the scanner returns the same
regions and no issues.  The converse fails only for the relaxations: a text
with a ``+`` sign (or ``-0``) or a line break before a box scans cleanly but
is rejected by :func:`parse_regions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from ..bad_records import REFERENCE_INVERTED, REFERENCE_OUT_OF_RANGE, REFERENCE_UNPARSED

__all__ = ["Region", "ReferenceIssue", "ReferenceSyntaxError", "parse_regions", "scan_references"]

Box = tuple[float, float, float, float]
Span = tuple[int, int]

_ST = "<st>"
_ED = "<ed>"
_COORDINATES = ("x1", "y1", "x2", "y2")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_SIGNED_NUMBER = re.compile(r"[+-]?(?:{})".format(_NUMBER.pattern))
_STARTS_LIKE_NUMBER = re.compile(r"[+-]?(?:[0-9]|\.[0-9])|[+-]\.")
_BOX_PATTERN = r"\[\s*({0})\s*,\s*({0})\s*,\s*({0})\s*,\s*({0})\s*\]"
# A whole well-formed box in one match: the grammar's box, with \s being exactly str.isspace(). Anything else goes
# through the step-by-step parser, which says what is wrong.
_WHOLE_BOX = re.compile(_BOX_PATTERN.format(_NUMBER.pattern))
_WHOLE_SIGNED_BOX = re.compile(_BOX_PATTERN.format(_SIGNED_NUMBER.pattern))
_CLOSED_BRACKET = re.compile(r"\[(?:(?!<st>|<ed>)[^\[\]])*\]")
_REST_OF_TOKEN = re.compile(r"[^\s\[\],<]*")
# Runs that ``_skip`` passes over (``\s`` is exactly ``str.isspace()``), and a whole continuation up to the ``[`` of
# its box: blanks, a comma, blanks, ``[``, whitespace, then something that starts like a number.
_BLANK_RUN = re.compile(r"[ \t]*")
_SPACE_RUN = re.compile(r"\s*")
_CONTINUATION = re.compile(r"[ \t]*,[ \t]*(\[)\s*(?:{})".format(_STARTS_LIKE_NUMBER.pattern))
_EXCERPT_RADIUS = 20


@dataclass(frozen=True)
class Region:
    """One ``<st>phrase<ed> [box], ...`` reference; ``text[start:end]`` is all of it."""

    phrase: str
    boxes: tuple[Box, ...]
    start: int
    end: int


@dataclass(frozen=True)
class ReferenceIssue:
    """A problem :func:`scan_references` found: ``text[start:end]`` is the offending span.

    ``kind`` is ``REFERENCE_UNPARSED``, ``REFERENCE_OUT_OF_RANGE`` or ``REFERENCE_INVERTED`` (``svitpipe.bad_records``);
    ``detail`` says what is wrong in a short sentence.
    """

    start: int
    end: int
    kind: str
    detail: str


class ReferenceSyntaxError(ValueError):
    """A malformed reference; ``position`` is the character offset of the problem and ``problem`` what is wrong.

    ``span`` is the ``(start, end)`` of the malformed text, set on every error of :func:`parse_regions`: a stray
    ``<ed>``, an unclosed ``<st>``, a box with bad values, or a reference from its ``<st>`` to the end of its bad
    part; the span :func:`scan_references` reports for the same problem.
    """

    def __init__(self, text: str, position: int, expected: str, span: Span | None = None) -> None:
        self.position = position
        self.problem = expected
        self.span = span
        self.excerpt = _excerpt(text, position)
        super().__init__(f"{expected} (at offset {position}, near {self.excerpt!r})")


@dataclass(frozen=True)
class _Reference:
    """A reference read from the text, with the ``(start, end)`` of each of its boxes' ``[...]``."""

    region: Region
    box_spans: tuple[Span, ...]


def _excerpt(text: str, position: int) -> str:
    lo = max(0, position - _EXCERPT_RADIUS)
    hi = min(len(text), position + _EXCERPT_RADIUS)
    return ("..." if lo > 0 else "") + text[lo:hi] + ("..." if hi < len(text) else "")


def _skip(text: str, i: int, blanks_only: bool) -> int:
    return (_BLANK_RUN if blanks_only else _SPACE_RUN).match(text, i).end()


def _describe(text: str, i: int) -> str:
    return "end of text" if i >= len(text) else repr(text[i])


def _parse_number(text: str, i: int, index: int, signed: bool) -> tuple[float, int]:
    match = (_SIGNED_NUMBER if signed else _NUMBER).match(text, i)
    if match is None:
        if i >= len(text):
            raise ReferenceSyntaxError(text, i, "missing ']': text ends inside a box")
        if not signed and text[i] in "+-":
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


def _parse_box(text: str, i: int, signed: bool) -> tuple[Box, int]:
    """Parse the box whose ``[`` is at ``text[i]``; return its values as written and the offset after ``]``."""
    whole = (_WHOLE_SIGNED_BOX if signed else _WHOLE_BOX).match(text, i)
    if whole is not None:
        x1, y1, x2, y2 = map(float, whole.groups())
        return (x1, y1, x2, y2), whole.end()
    i += 1
    values: list[float] = []
    for index in range(4):
        value, i = _parse_number(text, _skip(text, i, blanks_only=False), index, signed)
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
    x1, y1, x2, y2 = values
    return (x1, y1, x2, y2), i + 1


def _bad_box_end(text: str, box_start: int, stopped: int) -> int:
    """End of a box that does not parse: after its ``]`` if one closes it before any ``[``, ``<st>`` or ``<ed>``,
    else the end of the token where reading it stopped (``1e-3`` of ``[1e-3, ...``)."""
    closed = _CLOSED_BRACKET.match(text, box_start)
    if closed is not None:
        return closed.end()
    return _REST_OF_TOKEN.match(text, max(stopped, box_start + 1)).end()


def _outside_unit(box: Box) -> list[tuple[str, float]]:
    """``(name, value)`` of each coordinate of ``box`` below 0 or above 1."""
    return [(name, value) for name, value in zip(_COORDINATES, box) if not 0.0 <= value <= 1.0]


def _inversions(box: Box) -> list[tuple[str, float, str, float]]:
    """``("x1", x1, "x2", x2)`` if ``x1 > x2`` and ``("y1", y1, "y2", y2)`` if ``y1 > y2``."""
    x1, y1, x2, y2 = box
    pairs = (("x1", x1, "x2", x2), ("y1", y1, "y2", y2))
    return [pair for pair in pairs if pair[1] > pair[3]]


def _check_values(text: str, box_start: int, box: Box, end: int) -> None:
    """The strict parser's value rule: raise for the first coordinate outside 0-1, else the first inverted pair."""
    written = text[box_start:end]
    outside = _outside_unit(box)
    if outside:
        name, value = outside[0]
        raise ReferenceSyntaxError(
            text, box_start, f"box {written} has {name}={value}; coordinates must be "
            "between 0 and 1", span=(box_start, end))
    inverted = _inversions(box)
    if inverted:
        low, low_value, high, high_value = inverted[0]
        raise ReferenceSyntaxError(
            text, box_start, f"box {written} has {low}={low_value} > {high}={high_value}; "
            f"expected {low} <= {high}", span=(box_start, end))


def _value_issues(box: Box, span: Span) -> list[ReferenceIssue]:
    """The scanner's value rule: one issue for all coordinates outside 0-1, one for all inverted pairs."""
    x1, y1, x2, y2 = box
    if 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0:  # the usual box, checked at once
        return []
    issues = []
    outside = _outside_unit(box)
    if outside:
        detail = "; ".join(f"{name} {value} {'below 0' if value < 0 else 'above 1'}" for name, value in outside)
        issues.append(ReferenceIssue(*span, REFERENCE_OUT_OF_RANGE, detail))
    inverted = _inversions(box)
    if inverted:
        detail = "; ".join(f"{low} {low_value} > {high} {high_value}" for low, low_value, high, high_value in inverted)
        issues.append(ReferenceIssue(*span, REFERENCE_INVERTED, detail))
    return issues


def _continuation(text: str, i: int) -> int | None:
    """Offset of the ``[`` of a continuation box after offset ``i``, or None."""
    match = _CONTINUATION.match(text, i)
    return match.start(1) if match else None


def _reference_box(text: str, start: int, i: int, lenient: bool) -> tuple[Box, int]:
    """The box at ``text[i]`` of the reference whose ``<st>`` is at ``start``, and the offset after it.

    A box that does not parse is an error spanning from ``start`` to the end of the bad box. Values are checked
    here only by the strict parser (the scanner reports them as issues).
    """
    try:
        box, end = _parse_box(text, i, signed=lenient)
    except ReferenceSyntaxError as err:
        err.span = (start, _bad_box_end(text, i, err.position))
        raise
    if not lenient:
        _check_values(text, i, box, end)
    return box, end


def _parse_reference(text: str, start: int, lenient: bool) -> _Reference:
    """The reference whose ``<st>`` is at ``text[start]``, read strictly or (``lenient``) as the scanner reads it.

    Raises :class:`ReferenceSyntaxError` with its ``span`` set.
    """
    phrase_start = start + len(_ST)
    marker = (start, phrase_start)
    ed = text.find(_ED, phrase_start)
    if ed < 0:
        raise ReferenceSyntaxError(text, start, "'<st>' has no matching '<ed>'", span=marker)
    nested = text.find(_ST, phrase_start, ed)
    if nested >= 0:
        raise ReferenceSyntaxError(
            text, nested, f"nested '<st>': the '<st>' at offset {start} is not closed "
            "by '<ed>' yet", span=marker)
    marked = (start, ed + len(_ED))
    phrase = text[phrase_start:ed]
    if not phrase.strip():
        raise ReferenceSyntaxError(text, start, "empty phrase between '<st>' and '<ed>'", span=marked)
    i = _skip(text, ed + len(_ED), blanks_only=not lenient)
    if i >= len(text) or text[i] != "[":
        hint = ("; only spaces/tabs may separate '<ed>' from its box"
                if i < len(text) and text[i].isspace() else "")
        raise ReferenceSyntaxError(
            text, i, f"'<st>phrase<ed>' must be followed by a box '[x1, y1, x2, y2]', "
            f"found {_describe(text, i)}{hint}", span=marked)
    boxes = []
    box_spans = []
    while i is not None:
        box, end = _reference_box(text, start, i, lenient)
        boxes.append(box)
        box_spans.append((i, end))
        i = _continuation(text, end)
    return _Reference(Region(phrase=phrase, boxes=tuple(boxes), start=start, end=end), tuple(box_spans))


def _references(text: str, lenient: bool) -> Iterator[_Reference | ReferenceSyntaxError]:
    """Each reference of ``text`` in order, or in its place the error of a malformed one or of a stray ``<ed>``.

    After an error, reading goes on at the end of its span.
    """
    pos = 0
    while True:
        st = text.find(_ST, pos)
        before_st = len(text) if st < 0 else st
        stray = text.find(_ED, pos, before_st)
        while stray >= 0:
            yield ReferenceSyntaxError(
                text, stray, "'<ed>' without an open '<st>'", span=(stray, stray + len(_ED)))
            stray = text.find(_ED, stray + len(_ED), before_st)
        if st < 0:
            return
        try:
            found: _Reference | ReferenceSyntaxError = _parse_reference(text, st, lenient)
        except ReferenceSyntaxError as err:
            found = err
        yield found
        pos = found.span[1] if isinstance(found, ReferenceSyntaxError) else found.region.end


def parse_regions(text: str) -> list[Region]:
    """Return every ``<st>phrase<ed> [box], ...`` reference in ``text``, in order.

    Raises :class:`ReferenceSyntaxError` on the first malformed reference.
    """
    regions = []
    for found in _references(text, lenient=False):
        if isinstance(found, ReferenceSyntaxError):
            raise found
        regions.append(found.region)
    return regions


def scan_references(text: str) -> tuple[list[Region], list[ReferenceIssue]]:
    """Return the references of ``text`` that parse and the issues found, sorted by start; never raises.

    The scanner's grammar and the issue kinds are in the module docstring. For a text :func:`parse_regions`
    accepts, the regions are the same and there are no issues.
    """
    regions = []
    issues = []
    for found in _references(text, lenient=True):
        if isinstance(found, ReferenceSyntaxError):
            issues.append(ReferenceIssue(*found.span, REFERENCE_UNPARSED, found.problem))
            continue
        regions.append(found.region)
        for box, span in zip(found.region.boxes, found.box_spans):
            issues.extend(_value_issues(box, span))
    return regions, sorted(issues, key=lambda issue: issue.start)
