"""Read the elements of a top-level JSON array one at a time, from a byte stream of any size.

SVIT ships each subset as one JSON array of several GB. ``json.load`` would hold all of it in memory; a streaming
event parser cannot skip a broken element. This reader finds element boundaries with a small bracket-and-string
scanner (regular expressions do the per-character work), then hands each element's bytes to ``json.loads``. So:

* memory is bounded by the chunk size plus the largest element, whatever the file size;
* time is linear in the input: the window grows in place and a scan cut by the window's end resumes where it
  stopped (inside a string too), so a 20 MB string costs what 20 strings of 1 MB cost;
* every element comes with its index and byte offset, so an error can say exactly where the problem is;
* an element that is not valid JSON but has balanced brackets is reported on its own and the reader can go on
  (the caller decides whether that is fatal); only a broken array structure (mismatched brackets, a missing comma,
  an unterminated string at the end of the file) stops the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Optional

from ..json_text import decode_json

_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_STRUCTURAL = re.compile(rb'[\[\]{}"]')
# The inside of a JSON string, as far as it goes: stops at the closing quote, or before a backslash with nothing
# after it yet (the window ends there), or at the window's end.
_STRING_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)
_SCALAR = re.compile(rb"[^,\]\s]+")


def _nested_values(depth: int) -> bytes:
    """A pattern for the inside of a container: non-structural bytes, whole strings, and containers nested at most
    ``depth`` levels deeper, each closed by its own kind of bracket. Possessive, so a failed match never backtracks."""
    string = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
    inner = rb'(?:[^\[\]{}"]++|' + string + rb")*+"
    for _ in range(depth):
        inner = rb'(?:[^\[\]{}"]++|' + string + rb"|\{" + inner + rb"\}|\[" + inner + rb"\])*+"
    return inner


# A whole object or array in one match (SVIT records nest 5 levels). It skips strings and brackets as the scanner in
# _scan_element does, so where it matches it ends where the scanner would end; where it does not (the element runs
# past the window, nests deeper, has a mismatched bracket or an unterminated string) the scanner takes over.
_CONTAINER = re.compile(rb"\{" + _nested_values(6) + rb"\}|\[" + _nested_values(6) + rb"\]", re.DOTALL)
_CLOSERS = {ord("]"): ord("["), ord("}"): ord("{")}
_UTF8_BOM = b"\xef\xbb\xbf"
# Larger than any real record (SVIT's are a few KB) by far; a config field (``max_element_bytes``) can change it.
MAX_ELEMENT_BYTES = 256 << 20


class JSONArrayStructureError(ValueError):
    """The array itself is broken, so no later element can be located: reading cannot go on."""

    def __init__(self, message: str, offset: int, index: int):
        super().__init__(f"{message} (byte offset {offset}, array element {index})")
        self.offset = offset
        self.index = index


class JSONElementTooLarge(JSONArrayStructureError):
    """An element longer than ``max_element_bytes``: reading stops rather than hold it in memory."""


@dataclass(frozen=True)
class ArrayElement:
    """One element of the array: where it is, and either its decoded value or why it could not be decoded."""

    index: int
    offset: int
    value: Any = None
    error: Optional[str] = None
    raw: bytes = field(default=b"", repr=False)  # the element's bytes as they are in the file

    @property
    def ok(self) -> bool:
        return self.error is None


class _Buffer:
    """A sliding window over the stream: ``data[i]`` is byte ``base + i`` of the file.

    A ``bytearray`` grown in place: appending a chunk costs the chunk, not the window (a long element is not copied
    again at every chunk)."""

    def __init__(self, stream: BinaryIO, chunk_size: int):
        self.stream = stream
        self.chunk_size = chunk_size
        self.data = bytearray()
        self.base = 0
        self.eof = False

    def refill(self, keep_from: int) -> int:
        """Drop bytes before ``keep_from``, read one more chunk; return how far positions shifted left."""
        if self.eof:
            return 0
        chunk = self.stream.read(self.chunk_size)
        if not chunk:
            self.eof = True
        del self.data[:keep_from]
        self.data += chunk
        self.base += keep_from
        return keep_from


def decode_element(raw: bytes) -> tuple[Any, Optional[str]]:
    """``(value, None)`` for an element's bytes, or ``(None, why)`` when they are not a JSON value a row can hold
    (``json_text.decode_json``)."""
    return decode_json(raw)


def iter_json_array(
    stream: BinaryIO,
    *,
    chunk_size: int = 1 << 20,
    max_element_bytes: int = MAX_ELEMENT_BYTES,
    select=None,
) -> Iterator[ArrayElement]:
    """Yield every element of the JSON array in ``stream`` (a binary file object), in order.

    Args:
        stream: UTF-8 encoded JSON whose top-level value is an array.
        chunk_size: bytes read at a time.
        max_element_bytes: an element larger than this stops the reader (``JSONElementTooLarge``) before it is held
            whole in memory.
        select: optional ``callable(index) -> bool``; elements it rejects are located but not decoded (cheap
            skipping, used to split one array into shards). Rejected elements are not yielded.

    Raises:
        JSONArrayStructureError: the array structure is broken; the message gives the byte offset.
        JSONElementTooLarge: an element is longer than ``max_element_bytes``.
    """
    buf = _Buffer(stream, chunk_size)
    pos = _skip_whitespace(buf, 0)
    while len(buf.data) - pos < len(_UTF8_BOM) and not buf.eof:  # a BOM may straddle chunks
        pos -= buf.refill(pos)
    if buf.data[pos : pos + 3] == _UTF8_BOM:
        pos = _skip_whitespace(buf, pos + 3)
    if pos >= len(buf.data):
        raise JSONArrayStructureError("empty input: expected a JSON array", buf.base + pos, 0)
    if buf.data[pos] != ord("["):
        raise JSONArrayStructureError(
            f"expected '[' to open the top-level array, found {buf.data[pos:pos + 20]!r}", buf.base + pos, 0
        )
    pos = _skip_whitespace(buf, pos + 1)
    index = 0
    if pos < len(buf.data) and buf.data[pos] == ord("]"):
        _expect_end(buf, pos + 1, index)
        return
    while True:
        if pos >= len(buf.data):
            raise JSONArrayStructureError("file ends inside the array: expected a value", buf.base + pos, index)
        start, end = _scan_element(buf, pos, index, max_element_bytes)
        if end - start > max_element_bytes:
            raise _too_large(buf.base + start, index, max_element_bytes)
        if select is None or select(index):
            raw = bytes(buf.data[start:end])
            value, error = decode_element(raw)
            yield ArrayElement(index, buf.base + start, value=value, error=error, raw=raw)
        index += 1
        pos = _skip_whitespace(buf, end)
        if pos >= len(buf.data):
            raise JSONArrayStructureError("file ends inside the array: expected ',' or ']'", buf.base + pos, index)
        separator = buf.data[pos]
        if separator == ord("]"):
            _expect_end(buf, pos + 1, index)
            return
        if separator != ord(","):
            raise JSONArrayStructureError(
                f"expected ',' or ']' after an element, found {buf.data[pos:pos + 20]!r}", buf.base + pos, index
            )
        pos = _skip_whitespace(buf, pos + 1)


def _skip_whitespace(buf: _Buffer, pos: int) -> int:
    """Position of the next non-whitespace byte at or after ``pos``, refilling as needed (may equal len at EOF)."""
    while True:
        pos = _WHITESPACE.match(buf.data, pos).end()
        if pos < len(buf.data) or buf.eof:
            return pos
        pos -= buf.refill(pos)


def _expect_end(buf: _Buffer, pos: int, index: int) -> None:
    pos = _skip_whitespace(buf, pos)
    if pos < len(buf.data):
        raise JSONArrayStructureError(
            f"unexpected data after the closing ']': {buf.data[pos:pos + 20]!r}", buf.base + pos, index
        )


def _scan_element(buf: _Buffer, start: int, index: int, max_element_bytes: int) -> tuple[int, int]:
    """Find the end of the element starting at ``start``; return (start, end) positions in the current window.

    The window may be refilled (which shifts positions), so the returned start is the element's current position.
    """
    first = buf.data[start]
    stack = []
    pos = start
    if first == ord('"'):
        pass
    elif first in (ord("{"), ord("[")):
        whole = _CONTAINER.match(buf.data, start)
        if whole is not None:
            return start, whole.end()
        stack = [first]
        pos = start + 1
    else:
        # A bare scalar (number, true, false, null): up to the next separator.
        while True:
            match = _SCALAR.match(buf.data, pos)
            end = match.end() if match else pos
            if end == start:
                raise JSONArrayStructureError("expected a value", buf.base + start, index)
            if end < len(buf.data) or buf.eof:
                return start, end
            if end - start > max_element_bytes:
                raise _too_large(buf.base + start, index, max_element_bytes)
            shift = buf.refill(start)  # the scalar runs to the window's end: read on, resuming there
            start -= shift
            pos = end - shift
    in_string = first == ord('"')
    string_start = start
    if in_string:
        pos = start + 1
    while True:
        if pos - start > max_element_bytes:
            raise _too_large(buf.base + start, index, max_element_bytes)
        if in_string:
            pos = _STRING_BODY.match(buf.data, pos).end()
            if pos < len(buf.data) and buf.data[pos] == ord('"'):
                in_string = False
                pos += 1
                if not stack:
                    return start, pos
                continue
            # The window ends inside the string (or just after a backslash): read on, resuming here.
            if buf.eof:
                raise JSONArrayStructureError("unterminated string", buf.base + string_start, index)
            shift = buf.refill(start)
            start -= shift
            string_start -= shift
            pos -= shift
            continue
        match = _STRUCTURAL.search(buf.data, pos)
        if match is None:
            if buf.eof:
                raise JSONArrayStructureError("file ends inside an element", buf.base + start, index)
            scanned_to = len(buf.data)  # nothing structural before here
            shift = buf.refill(start)
            start -= shift
            pos = scanned_to - shift
            continue
        char = buf.data[match.start()]
        pos = match.end()
        if char == ord('"'):
            in_string, string_start = True, match.start()
        elif char in (ord("{"), ord("[")):
            stack.append(char)
        else:
            if not stack or stack[-1] != _CLOSERS[char]:
                raise JSONArrayStructureError(
                    f"mismatched {chr(char)!r}", buf.base + match.start(), index
                )
            stack.pop()
            if not stack:
                return start, pos


def _too_large(offset: int, index: int, max_element_bytes: int) -> JSONElementTooLarge:
    return JSONElementTooLarge(
        f"element {index} is larger than max_element_bytes={max_element_bytes} (a config field: raise it if the "
        "file is right)",
        offset,
        index,
    )
