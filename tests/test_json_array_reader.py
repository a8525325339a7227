"""Table-driven tests of svitpipe.svit.json_array_reader.iter_json_array.

Every case is read with every chunk size from 1 byte up to past the input's length (plus the default), and must give
the same elements, offsets and errors each time.
"""

from __future__ import annotations

import io
import json
import random

import pytest

from svitpipe.svit.json_array_reader import ArrayElement, JSONArrayStructureError, iter_json_array

BOM = b"\xef\xbb\xbf"


def chunk_sizes(data: bytes) -> list:
    return list(range(1, len(data) + 2)) + [1 << 20]


def read(data: bytes, chunk_size: int, **kwargs) -> list:
    return [
        (element.index, element.offset, element.value if element.ok else "ERROR")
        for element in iter_json_array(io.BytesIO(data), chunk_size=chunk_size, **kwargs)
    ]


def read_until_error(data: bytes, chunk_size: int, **kwargs):
    """(elements before the error, the error)."""
    seen = []
    with pytest.raises(JSONArrayStructureError) as caught:
        for element in iter_json_array(io.BytesIO(data), chunk_size=chunk_size, **kwargs):
            seen.append((element.index, element.offset, element.value))
    return seen, caught.value


# (id, input, [(offset, value)]): the elements of valid arrays.
VALID = [
    ("empty", b"[]", []),
    ("empty-spaced", b" \n[ \t\r\n] \n", []),
    ("one-number", b"[7]", [(1, 7)]),
    ("scalars", b"[1, -2.5, 1e3, true, false, null, 0]",
     [(1, 1), (4, -2.5), (10, 1000.0), (15, True), (21, False), (28, None), (34, 0)]),
    ("strings-with-brackets", b'["[", "]", "{", "}", "[{]}", "],["]',
     [(1, "["), (6, "]"), (11, "{"), (16, "}"), (21, "[{]}"), (29, "],[")]),
    ("strings-with-quotes-and-escapes", rb'["a\"b", "\\", "\\\"]", "x\\\\\"[", "\n\t\/"]',
     [(1, 'a"b'), (9, "\\"), (15, '\\"]'), (24, 'x\\\\"['), (36, "\n\t/")]),
    ("unicode-escapes-and-raw-utf8", '["\\u00e9\\ud83d\\ude00", "é日本😀", {"k": "ü"}]'.encode(),
     [(1, "é😀"), (23, "é日本😀"), (39, {"k": "ü"})]),
    ("nested-arrays", b"[[1, [2, [3]]], [], [[]], [[], [[]]]]",
     [(1, [1, [2, [3]]]), (16, []), (20, [[]]), (26, [[], [[]]])]),
    ("objects", b'[{"a": [1, {"b": "]}"}]}, {}, {"[": "{"}]',
     [(1, {"a": [1, {"b": "]}"}]}), (26, {}), (30, {"[": "{"})]),
    ("whitespace-everywhere", b"\n\t [ \r\n 1 ,\n\n 2\t, {\"a\" : [ ] }\n ] \n\n",
     [(8, 1), (14, 2), (18, {"a": []})]),
    ("bom", BOM + b'[1, "x"]', [(4, 1), (7, "x")]),
    ("bom-then-whitespace", BOM + b' \n [ {} ]', [(8, {})]),
    ("top-level-strings", b'["", " ", "a,b"]', [(1, ""), (5, " "), (10, "a,b")]),
    ("svit-record",
     b'[{"image_id": 5, "conversations": [{"content": [{"from": "user", "value": "<st>a<ed> [0, 0, 1, 1]"}]}]}]',
     [(1, {"image_id": 5, "conversations": [{"content": [{"from": "user", "value": "<st>a<ed> [0, 0, 1, 1]"}]}]})]),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_arrays_at_every_chunk_size(data, expected):
    assert json.loads(data.decode("utf-8-sig")) == [value for _, value in expected]  # the table is right
    want = [(index, offset, value) for index, (offset, value) in enumerate(expected)]
    for size in chunk_sizes(data):
        assert read(data, size) == want, size


# (id, input, [(offset, value or "ERROR")]): elements that are not valid JSON but leave the array readable.
INVALID_ELEMENTS = [
    ("bad-literal", b"[1, tru, 2]", [(1, 1), (4, "ERROR"), (9, 2)]),
    ("double-comma-in-object", b'[{"a": 1,, "b": 2}, 3]', [(1, "ERROR"), (20, 3)]),
    ("missing-colon", b'[{"a" 1}, {"b": [1,, 2]}, "ok"]', [(1, "ERROR"), (10, "ERROR"), (26, "ok")]),
    ("leading-zero", b"[01, 1]", [(1, "ERROR"), (5, 1)]),
    ("invalid-utf8-in-string", b'["\xff", "fine"]', [(1, "ERROR"), (6, "fine")]),
    ("bad-escape", b'["\\x", 2]', [(1, "ERROR"), (7, 2)]),
    ("trailing-comma-inside-element", b"[[1, 2,], [3]]", [(1, "ERROR"), (10, [3])]),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in INVALID_ELEMENTS],
                         ids=[case[0] for case in INVALID_ELEMENTS])
def test_invalid_elements_are_reported_and_reading_goes_on(data, expected):
    want = [(index, offset, value) for index, (offset, value) in enumerate(expected)]
    for size in chunk_sizes(data):
        assert read(data, size) == want, size
    errors = [element for element in iter_json_array(io.BytesIO(data)) if not element.ok]
    assert errors and all(element.error.startswith("invalid JSON") and element.value is None for element in errors)


# (id, input, offset, element index, phrase in the message, elements read before the error)
STRUCTURE_ERRORS = [
    ("empty-input", b"", 0, 0, "empty input", []),
    ("only-whitespace", b" \n ", 3, 0, "empty input", []),
    ("not-an-array", b'{"a": [1]}', 0, 0, "expected '['", []),
    ("scalar-document", b" 5", 1, 0, "expected '['", []),
    ("ends-after-open", b"[", 1, 0, "file ends inside the array", []),
    ("ends-after-open-spaces", b"[ \n ", 4, 0, "file ends inside the array", []),
    ("ends-after-comma", b"[1,", 3, 1, "file ends inside the array", [(0, 1, 1)]),
    ("ends-after-element", b"[1", 2, 1, "file ends inside the array", [(0, 1, 1)]),
    ("ends-after-object", b'[{"a": 1}', 9, 1, "file ends inside the array", [(0, 1, {"a": 1})]),
    ("ends-inside-element", b'[{"a": [1, 2]', 1, 0, "file ends inside an element", []),
    ("unterminated-string", b'[1, "abc', 4, 1, "unterminated string", [(0, 1, 1)]),
    ("unterminated-escaped-quote", b'["abc\\"]', 1, 0, "unterminated string", []),
    ("trailing-comma", b"[1,]", 3, 1, "expected a value", [(0, 1, 1)]),
    ("leading-comma", b"[,1]", 1, 0, "expected a value", []),
    ("missing-comma", b"[1 2]", 3, 1, "expected ',' or ']'", [(0, 1, 1)]),
    ("objects-without-comma", b'[{} {}]', 4, 1, "expected ',' or ']'", [(0, 1, {})]),
    ("mismatched-bracket", b"[{]}]", 2, 0, "mismatched ']'", []),
    ("mismatched-brace", b'[1, {"a": [1}]', 12, 1, "mismatched '}'", [(0, 1, 1)]),
    ("mismatched-later", b'[{"ok": 1}, [[]}, 3]', 15, 1, "mismatched '}'", [(0, 1, {"ok": 1})]),
    ("data-after-close", b"[1]]", 3, 1, "unexpected data after the closing ']'", [(0, 1, 1)]),
    ("text-after-close", b"[1] x", 4, 1, "unexpected data after the closing ']'", [(0, 1, 1)]),
    ("second-array", b"[] []", 3, 0, "unexpected data after the closing ']'", []),
]


@pytest.mark.parametrize("data, offset, index, phrase, before", [case[1:] for case in STRUCTURE_ERRORS],
                         ids=[case[0] for case in STRUCTURE_ERRORS])
def test_structure_errors_stop_with_their_offset(data, offset, index, phrase, before):
    for size in chunk_sizes(data):
        seen, error = read_until_error(data, size)
        assert seen == before, size
        assert (error.offset, error.index) == (offset, index), size
        assert phrase in str(error), size
        assert f"byte offset {offset}" in str(error)
        assert isinstance(error, ValueError)


def test_structure_error_offsets_count_from_the_start_of_a_large_file():
    elements = [{"n": i, "text": "x" * (i % 7)} for i in range(300)]
    good = json.dumps(elements).encode()
    broken = good[:-1] + b', {"n": [}]'  # a broken element after 300 good ones
    for size in (1, 3, 64, 1000, 1 << 20):
        seen, error = read_until_error(broken, size)
        assert [value for _, _, value in seen] == elements
        assert (error.offset, error.index) == (len(good) - 1 + len(b', {"n": ['), 300)


# --------------------------------------------------------------------------
# select=
# --------------------------------------------------------------------------


def test_select_yields_only_chosen_elements_with_their_index_and_offset():
    data = b'[10, "a[b", {"c": [1]}, [2, 3], null, 15]'
    everything = read(data, 1 << 20)
    for size in chunk_sizes(data):
        for modulus in (1, 2, 3):
            for remainder in range(modulus):
                chosen = read(data, size, select=lambda i: i % modulus == remainder)
                assert chosen == [item for item in everything if item[0] % modulus == remainder]
    assert read(data, 4, select=lambda i: False) == []


def test_select_does_not_decode_rejected_elements():
    data = b'[1, {"a": 1,, "b"}, 3, tru]'
    assert read(data, 5) == [(0, 1, 1), (1, 4, "ERROR"), (2, 20, 3), (3, 23, "ERROR")]
    assert read(data, 5, select=lambda i: i % 2 == 0) == [(0, 1, 1), (2, 20, 3)]
    calls = []
    assert read(data, 5, select=lambda i: calls.append(i) or i == 2) == [(2, 20, 3)]
    assert calls == [0, 1, 2, 3]


def test_select_still_stops_at_a_broken_structure_in_a_rejected_element():
    seen, error = read_until_error(b'[1, 2, {"a": [}, 4]', 3, select=lambda i: i != 2)
    assert seen == [(0, 1, 1), (1, 4, 2)]
    assert (error.offset, error.index) == (14, 2)


# --------------------------------------------------------------------------
# Limits and a generated stress case
# --------------------------------------------------------------------------


def test_max_element_bytes_applies_at_every_chunk_size():
    data = b'[1, "' + b"y" * 40 + b'", 2]'
    for size in chunk_sizes(data):
        seen, error = read_until_error(data, size, max_element_bytes=20)
        assert seen == [(0, 1, 1)]
        assert (error.offset, error.index) == (4, 1)
        assert "larger than" in str(error)
        assert read(data, size, max_element_bytes=42) == [(0, 1, 1), (1, 4, "y" * 40), (2, 48, 2)]


def tricky_string(rng: random.Random) -> str:
    alphabet = ['"', "\\", "[", "]", "{", "}", ",", " ", "\n", "\t", "a", "Z", "0", "é", "日", "😀", "<st>", "<ed>"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))


def tricky_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.randrange(-10**6, 10**6)
    if kind == 1:
        return rng.choice([True, False, None, 0.5, -1.25e-3])
    if kind in (2, 3):
        return tricky_string(rng)
    if kind == 4:
        return [tricky_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {tricky_string(rng): tricky_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_generated_arrays_match_json_loads(ensure_ascii):
    rng = random.Random(1234)
    values = [tricky_value(rng) for _ in range(150)]
    text = json.dumps(values, ensure_ascii=ensure_ascii, indent=rng.choice([None, 1]))
    data = text.encode("utf-8")
    reference = None
    for size in (1, 2, 3, 5, 8, 13, 64, 257, 4096, 1 << 20):
        elements = list(iter_json_array(io.BytesIO(data), chunk_size=size))
        assert all(isinstance(element, ArrayElement) and element.ok for element in elements)
        assert [element.value for element in elements] == values
        assert [element.index for element in elements] == list(range(len(values)))
        offsets = [element.offset for element in elements]
        if reference is None:
            reference = offsets
            # Each offset is where the element's text starts in the file.
            decoder = json.JSONDecoder()
            for element in elements:
                assert decoder.raw_decode(data[element.offset :].decode("utf-8"))[0] == element.value
        assert offsets == reference
