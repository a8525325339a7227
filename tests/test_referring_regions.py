"""Table-driven tests for svitpipe.svit.referring_regions."""

import dataclasses
import random

import pytest

from svitpipe.bad_records import REFERENCE_INVERTED, REFERENCE_OUT_OF_RANGE, REFERENCE_UNPARSED
from svitpipe.svit.referring_regions import (
    ReferenceIssue,
    ReferenceSyntaxError,
    Region,
    parse_regions,
    scan_references,
)

B = (0.1, 0.2, 0.3, 0.4)
B2 = (0.5, 0.6, 0.7, 0.8)

# (id, text, expected [(phrase, boxes, reference text)])
VALID = [
    ("single-box", "A <st>dog<ed> [0.1, 0.2, 0.3, 0.4] runs.",
     [("dog", (B,), "<st>dog<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("two-boxes-comma-space", "<st>cats<ed> [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8].",
     [("cats", (B, B2), "<st>cats<ed> [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]")]),
    ("two-boxes-comma-only", "<st>cats<ed> [0.1,0.2,0.3,0.4],[0.5,0.6,0.7,0.8] x",
     [("cats", (B, B2), "<st>cats<ed> [0.1,0.2,0.3,0.4],[0.5,0.6,0.7,0.8]")]),
    ("two-boxes-spaced-comma", "<st>cats<ed> [0.1, 0.2, 0.3, 0.4] ,  [0.5, 0.6, 0.7, 0.8]",
     [("cats", (B, B2), "<st>cats<ed> [0.1, 0.2, 0.3, 0.4] ,  [0.5, 0.6, 0.7, 0.8]")]),
    ("three-boxes-tabs", "<st>x<ed>\t[0.1, 0.2, 0.3, 0.4],\t[0.5, 0.6, 0.7, 0.8], [0, 0, 1, 1]",
     [("x", (B, B2, (0.0, 0.0, 1.0, 1.0)),
       "<st>x<ed>\t[0.1, 0.2, 0.3, 0.4],\t[0.5, 0.6, 0.7, 0.8], [0, 0, 1, 1]")]),
    ("integer-coordinates", "<st>image<ed> [0, 0, 1, 1]",
     [("image", ((0.0, 0.0, 1.0, 1.0),), "<st>image<ed> [0, 0, 1, 1]")]),
    ("number-forms", "<st>n<ed> [.5, 0.50, 1., 1.000]",
     [("n", ((0.5, 0.5, 1.0, 1.0),), "<st>n<ed> [.5, 0.50, 1., 1.000]")]),
    ("degenerate-box", "<st>line<ed> [0.3, 0.2, 0.3, 0.2]",
     [("line", ((0.3, 0.2, 0.3, 0.2),), "<st>line<ed> [0.3, 0.2, 0.3, 0.2]")]),
    ("odd-spacing-inside-box", "<st>a<ed> [ 0.1 ,0.2,  0.3 , 0.4 ]!",
     [("a", (B,), "<st>a<ed> [ 0.1 ,0.2,  0.3 , 0.4 ]")]),
    ("newlines-inside-box", "<st>a<ed> [\n0.1,\n0.2,\n0.3,\n0.4\n]",
     [("a", (B,), "<st>a<ed> [\n0.1,\n0.2,\n0.3,\n0.4\n]")]),
    ("phrase-with-commas", "Use <st>salt, pepper, and oil<ed> [0.1, 0.2, 0.3, 0.4].",
     [("salt, pepper, and oil", (B,), "<st>salt, pepper, and oil<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("phrase-with-brackets", "<st>sign [OPEN] (left)<ed> [0.1, 0.2, 0.3, 0.4]",
     [("sign [OPEN] (left)", (B,), "<st>sign [OPEN] (left)<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("phrase-with-box-like-brackets", "<st>a [0.9, 0.9, 0.9, 0.9] b<ed> [0.1, 0.2, 0.3, 0.4]",
     [("a [0.9, 0.9, 0.9, 0.9] b", (B,),
       "<st>a [0.9, 0.9, 0.9, 0.9] b<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("phrase-with-digits", "<st>3 apples and 2 pears<ed> [0.1, 0.2, 0.3, 0.4]",
     [("3 apples and 2 pears", (B,), "<st>3 apples and 2 pears<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("phrase-chinese", "图中<st>红色的汽车<ed> [0.1, 0.2, 0.3, 0.4]停着。",
     [("红色的汽车", (B,), "<st>红色的汽车<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("phrase-kept-verbatim", "<st> the\nman <ed> [0.1, 0.2, 0.3, 0.4]",
     [(" the\nman ", (B,), "<st> the\nman <ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("no-space-after-ed", "<st>a<ed>[0.1, 0.2, 0.3, 0.4]",
     [("a", (B,), "<st>a<ed>[0.1, 0.2, 0.3, 0.4]")]),
    ("two-references", "The <st>dog<ed> [0.1, 0.2, 0.3, 0.4] chases the <st>cat<ed> "
     "[0.5, 0.6, 0.7, 0.8], then rests.",
     [("dog", (B,), "<st>dog<ed> [0.1, 0.2, 0.3, 0.4]"),
      ("cat", (B2,), "<st>cat<ed> [0.5, 0.6, 0.7, 0.8]")]),
    ("adjacent-references", "<st>a<ed>[0.1,0.2,0.3,0.4]<st>b<ed>[0.5,0.6,0.7,0.8]",
     [("a", (B,), "<st>a<ed>[0.1,0.2,0.3,0.4]"), ("b", (B2,), "<st>b<ed>[0.5,0.6,0.7,0.8]")]),
    ("no-references", "Just a caption.", []),
    ("empty-text", "", []),
    ("bracket-word-ignored", "The sign reads [OPEN] near <st>door<ed> [0.1, 0.2, 0.3, 0.4]",
     [("door", (B,), "<st>door<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("sic-ignored", "He sed [sic] so.", []),
    ("bare-box-ignored", "A box [0.1, 0.2, 0.3, 0.4] without a phrase.", []),
    ("bad-bare-box-ignored", "Ordinary [1.5, 2, x] and [0.1, 0.2] text.", []),
    ("box-after-reference-text-ignored",
     "<st>a<ed> [0.1, 0.2, 0.3, 0.4] and [0.5, 0.6, 0.7, 0.8]",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("blank-separated-box-not-continuation",
     "<st>a<ed> [0.1, 0.2, 0.3, 0.4] [0.5, 0.6, 0.7, 0.8]",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("newline-before-comma-not-continuation",
     "<st>a<ed> [0.1, 0.2, 0.3, 0.4]\n, [0.5, 0.6, 0.7, 0.8]",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("comma-then-non-box-ends-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [see above]",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("comma-then-ellipsis-ends-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [...] etc",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
    ("comma-then-text-ends-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], and more",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")]),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_parse_valid(text, expected):
    regions = parse_regions(text)
    assert [(r.phrase, r.boxes, text[r.start:r.end]) for r in regions] == expected
    for region in regions:
        assert isinstance(region, Region)
        assert text.startswith("<st>", region.start)
        assert text[region.end - 1] == "]"
        for box in region.boxes:
            assert all(type(v) is float for v in box)


def test_exact_offsets():
    text = "ab <st>x<ed> [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4] cd <st>y<ed>[1,1,1,1]"
    regions = parse_regions(text)
    assert len(text) == 69 and text.index("<st>y") == 51 and text.index("] cd") == 46
    assert [(r.start, r.end) for r in regions] == [(3, 47), (51, 69)]
    assert regions[1] == Region("y", ((1.0, 1.0, 1.0, 1.0),), 51, 69)


# (id, text, offset of the problem, substring expected in the message)
ERRORS = [
    ("missing-ed", "see <st>dog [0.1, 0.2, 0.3, 0.4]", 4, "no matching '<ed>'"),
    ("stray-ed", "see dog<ed> [0.1, 0.2, 0.3, 0.4]", 7, "without an open '<st>'"),
    ("stray-ed-after-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4] b<ed>", 32, "without an open"),
    ("nested-st", "<st>a <st>b<ed> [0.1, 0.2, 0.3, 0.4]", 6, "nested '<st>'"),
    ("empty-phrase", "x <st><ed> [0.1, 0.2, 0.3, 0.4]", 2, "empty phrase"),
    ("blank-phrase", "x <st>  <ed> [0.1, 0.2, 0.3, 0.4]", 2, "empty phrase"),
    ("no-box-after-ed", "the <st>dog<ed> runs", 16, "must be followed by a box"),
    ("no-box-at-end", "the <st>dog<ed>", 15, "must be followed by a box"),
    ("newline-before-box", "<st>dog<ed>\n[0.1, 0.2, 0.3, 0.4]", 11, "only spaces/tabs"),
    ("three-numbers", "<st>a<ed> [0.1, 0.2, 0.3]", 24, "box has 3 numbers"),
    ("five-numbers", "<st>a<ed> [0.1, 0.2, 0.3, 0.4, 0.5]", 29, "more than 4 numbers"),
    ("empty-box", "<st>a<ed> []", 11, "box has 0 numbers"),
    ("non-numeric-box", "<st>a<ed> [see note]", 11, "expected box number 1"),
    ("non-numeric-second", "<st>a<ed> [0.1, x, 0.3, 0.4]", 16, "expected box number 2"),
    ("missing-close-bracket", "<st>a<ed> [0.1, 0.2, 0.3, 0.4 and then", 30, "expected ']'"),
    ("missing-close-at-end", "<st>a<ed> [0.1, 0.2, 0.3, 0.4", 29, "missing ']'"),
    ("missing-comma", "<st>a<ed> [0.1 0.2, 0.3, 0.4]", 15, "expected ','"),
    ("out-of-range", "<st>a<ed> [0.1, 0.2, 1.2, 0.4]", 10, "x2=1.2"),
    ("negative", "<st>a<ed> [-0.1, 0.2, 0.3, 0.4]", 11, "signed"),
    ("plus-sign", "<st>a<ed> [+0.1, 0.2, 0.3, 0.4]", 11, "signed"),
    ("x1-greater-than-x2", "<st>a<ed> [0.5, 0.2, 0.3, 0.4]", 10, "x1=0.5 > x2=0.3"),
    ("y1-greater-than-y2", "<st>a<ed> [0.1, 0.5, 0.3, 0.4]", 10, "y1=0.5 > y2=0.4"),
    ("exponent", "<st>a<ed> [1e-3, 0.2, 0.3, 0.4]", 11, "exponent"),
    ("exponent-upper", "<st>a<ed> [0.1, 0.2, 0.3, 4E-1]", 26, "exponent"),
    ("double-dot", "<st>a<ed> [0.1.2, 0.2, 0.3, 0.4]", 14, "expected ','"),
    ("non-ascii-digit", "<st>a<ed> [٠, 0.2, 0.3, 0.4]", 11, "expected box number 1"),
    ("malformed-continuation", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [0.1, 0.2]", 41, "box has 2"),
    ("negative-continuation", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [-0.1, 0, 1, 1]", 33, "signed"),
    ("out-of-range-continuation", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [0, 0, 2, 1]", 32,
     "[0, 0, 2, 1]"),
    ("error-in-second-reference", "<st>a<ed> [0, 0, 1, 1] and <st>b<ed> [0, 0, 1]", 45,
     "box has 3"),
]


@pytest.mark.parametrize("text, position, fragment", [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_parse_errors(text, position, fragment):
    with pytest.raises(ReferenceSyntaxError) as info:
        parse_regions(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.position == position
    message = str(error)
    assert fragment in message
    assert f"offset {position}" in message
    # the excerpt quotes the text around the problem
    around = text[max(0, position - 5):position + 5]
    assert around in error.excerpt
    assert repr(error.excerpt) in message


def test_excerpt_is_short_for_long_text():
    text = "x" * 500 + "<st>a<ed> [0.1, 0.2]" + "y" * 500
    with pytest.raises(ReferenceSyntaxError) as info:
        parse_regions(text)
    assert len(info.value.excerpt) <= 46
    assert "0.2]" in info.value.excerpt


# --------------------------------------------------------------------------
# The lenient scanner
# --------------------------------------------------------------------------

UNPARSED, OUT_OF_RANGE, INVERTED = REFERENCE_UNPARSED, REFERENCE_OUT_OF_RANGE, REFERENCE_INVERTED
SAW = "<st>a<ed> [0.1, 0.2, 0.3]"  # a bad reference, 25 characters

# (id, text, expected [(phrase, boxes, reference text)], expected issues [(kind, start, text[start:end], detail part)])
SCAN = [
    ("no-box-after-ed", "the <st>dog<ed> runs", [],
     [(UNPARSED, 4, "<st>dog<ed>", "must be followed by a box")]),
    ("no-box-at-end", "the <st>dog<ed>", [], [(UNPARSED, 4, "<st>dog<ed>", "found end of text")]),
    ("bracket-word-after-ed", "<st>sign<ed> [OPEN] here", [],
     [(UNPARSED, 0, "<st>sign<ed> [OPEN]", "expected box number 1")]),
    ("unclosed-st", "see <st>dog [0.1, 0.2, 0.3, 0.4]", [], [(UNPARSED, 4, "<st>", "no matching '<ed>'")]),
    ("nested-st", "<st>a <st>b<ed> [0.1, 0.2, 0.3, 0.4]", [("b", (B,), "<st>b<ed> [0.1, 0.2, 0.3, 0.4]")],
     [(UNPARSED, 0, "<st>", "nested '<st>'")]),
    ("stray-ed", "see dog<ed> [0.1, 0.2, 0.3, 0.4]", [], [(UNPARSED, 7, "<ed>", "without an open '<st>'")]),
    ("stray-ed-after-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4] b<ed>",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")],
     [(UNPARSED, 32, "<ed>", "without an open")]),
    ("two-stray-eds", "<ed><ed> x", [], [(UNPARSED, 0, "<ed>", "without"), (UNPARSED, 4, "<ed>", "without")]),
    ("empty-phrase", "x <st><ed> [0.1, 0.2, 0.3, 0.4]", [], [(UNPARSED, 2, "<st><ed>", "empty phrase")]),
    ("whitespace-phrase", "x <st> \n\t<ed> [0.1, 0.2, 0.3, 0.4]", [], [(UNPARSED, 2, "<st> \n\t<ed>", "empty phrase")]),
    ("three-numbers", SAW + " ok", [], [(UNPARSED, 0, SAW, "box has 3 numbers")]),
    ("five-numbers", "<st>a<ed> [0.1, 0.2, 0.3, 0.4, 0.5] ok", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2, 0.3, 0.4, 0.5]", "more than 4 numbers")]),
    ("empty-box", "<st>a<ed> [] ok", [], [(UNPARSED, 0, "<st>a<ed> []", "box has 0 numbers")]),
    ("letters-in-box", "<st>a<ed> [0.1, x, 0.3, 0.4] ok", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, x, 0.3, 0.4]", "expected box number 2")]),
    ("exponent", "<st>a<ed> [1e-3, 0.2, 0.3, 0.4] ok", [],
     [(UNPARSED, 0, "<st>a<ed> [1e-3, 0.2, 0.3, 0.4]", "exponent")]),
    ("exponent-unclosed", "<st>a<ed> [1e-3, 0.2 and", [], [(UNPARSED, 0, "<st>a<ed> [1e-3", "exponent")]),
    ("missing-close-bracket", "<st>a<ed> [0.1, 0.2, 0.3, 0.4 and then", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2, 0.3, 0.4 and", "expected ']'")]),
    ("missing-close-at-end", "<st>a<ed> [0.1, 0.2, 0.3, 0.4", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2, 0.3, 0.4", "missing ']'")]),
    ("bad-box-stops-at-bracket", "<st>a<ed> [0.1, 0.2 [OPEN]", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2 ", "expected ','")]),
    ("bad-box-stops-at-next-reference", "<st>a<ed> [0.1, 0.2 <st>b<ed> [0.5, 0.6, 0.7, 0.8]",
     [("b", (B2,), "<st>b<ed> [0.5, 0.6, 0.7, 0.8]")], [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2 ", "expected ','")]),
    ("bad-continuation", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [0.1, 0.2] ok", [],
     [(UNPARSED, 0, "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [0.1, 0.2]", "box has 2")]),
    ("good-after-bad", SAW + " and <st>b<ed> [0, 0, 1, 1]", [("b", ((0.0, 0.0, 1.0, 1.0),), "<st>b<ed> [0, 0, 1, 1]")],
     [(UNPARSED, 0, SAW, "box has 3")]),
    ("out-of-range", "<st>a<ed> [0.1, 0.2, 1.2, 0.4]",
     [("a", ((0.1, 0.2, 1.2, 0.4),), "<st>a<ed> [0.1, 0.2, 1.2, 0.4]")],
     [(OUT_OF_RANGE, 10, "[0.1, 0.2, 1.2, 0.4]", "x2 1.2 above 1")]),
    ("negative", "<st>a<ed> [-0.1, 0.2, 0.3, 0.4]",
     [("a", ((-0.1, 0.2, 0.3, 0.4),), "<st>a<ed> [-0.1, 0.2, 0.3, 0.4]")],
     [(OUT_OF_RANGE, 10, "[-0.1, 0.2, 0.3, 0.4]", "x1 -0.1 below 0")]),
    ("negative-continuation", "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [-0.1, 0, 1, 1]",
     [("a", (B, (-0.1, 0.0, 1.0, 1.0)), "<st>a<ed> [0.1, 0.2, 0.3, 0.4], [-0.1, 0, 1, 1]")],
     [(OUT_OF_RANGE, 32, "[-0.1, 0, 1, 1]", "x1 -0.1 below 0")]),
    ("signs-in-range", "<st>a<ed> [+0.1, -0, +.2, 1.]",
     [("a", ((0.1, -0.0, 0.2, 1.0),), "<st>a<ed> [+0.1, -0, +.2, 1.]")], []),
    ("signed-inverted", "<st>a<ed> [+0.1, +.2, -0, 1.]",
     [("a", ((0.1, 0.2, -0.0, 1.0),), "<st>a<ed> [+0.1, +.2, -0, 1.]")],
     [(INVERTED, 10, "[+0.1, +.2, -0, 1.]", "x1 0.1 > x2 -0.0")]),
    ("inverted-x", "<st>a<ed> [0.8, 0.2, 0.2, 0.4]", [("a", ((0.8, 0.2, 0.2, 0.4),), "<st>a<ed> [0.8, 0.2, 0.2, 0.4]")],
     [(INVERTED, 10, "[0.8, 0.2, 0.2, 0.4]", "x1 0.8 > x2 0.2")]),
    ("inverted-y", "<st>a<ed> [0.1, 0.5, 0.3, 0.4]", [("a", ((0.1, 0.5, 0.3, 0.4),), "<st>a<ed> [0.1, 0.5, 0.3, 0.4]")],
     [(INVERTED, 10, "[0.1, 0.5, 0.3, 0.4]", "y1 0.5 > y2 0.4")]),
    ("inverted-both", "<st>a<ed> [0.8, 0.9, 0.2, 0.1]",
     [("a", ((0.8, 0.9, 0.2, 0.1),), "<st>a<ed> [0.8, 0.9, 0.2, 0.1]")],
     [(INVERTED, 10, "[0.8, 0.9, 0.2, 0.1]", "x1 0.8 > x2 0.2; y1 0.9 > y2 0.1")]),
    ("out-of-range-and-inverted", "<st>a<ed> [1.5, 0.2, -0.5, 0.4]",
     [("a", ((1.5, 0.2, -0.5, 0.4),), "<st>a<ed> [1.5, 0.2, -0.5, 0.4]")],
     [(OUT_OF_RANGE, 10, "[1.5, 0.2, -0.5, 0.4]", "x1 1.5 above 1; x2 -0.5 below 0"),
      (INVERTED, 10, "[1.5, 0.2, -0.5, 0.4]", "x1 1.5 > x2 -0.5")]),
    ("degenerate-is-fine", "<st>line<ed> [0.3, 0.2, 0.3, 0.2]",
     [("line", ((0.3, 0.2, 0.3, 0.2),), "<st>line<ed> [0.3, 0.2, 0.3, 0.2]")], []),
    ("newline-before-box", "<st>dog<ed>\n[0.1, 0.2, 0.3, 0.4]",
     [("dog", (B,), "<st>dog<ed>\n[0.1, 0.2, 0.3, 0.4]")], []),
    ("blank-lines-before-box", "<st>dog<ed> \r\n\n\t[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]",
     [("dog", (B, B2), "<st>dog<ed> \r\n\n\t[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]")], []),
    ("newline-before-continuation-comma-ends-reference", "<st>a<ed> [0.1, 0.2, 0.3, 0.4]\n, [0.5, 0.6, 0.7, 0.8]",
     [("a", (B,), "<st>a<ed> [0.1, 0.2, 0.3, 0.4]")], []),
    ("ordinary-brackets-and-bare-boxes", "[OPEN] a box [0.1, 0.2, 0.3, 0.4], [-1, 5, x] [sic] [1e9]", [], []),
    ("several", "x<ed> " + SAW + " <st>b<ed> [0, 0, 1, 2] <st>c <st>d<ed>\n[0.1, 0.2, 0.3, 0.4]. <st>e",
     [("b", ((0.0, 0.0, 1.0, 2.0),), "<st>b<ed> [0, 0, 1, 2]"), ("d", (B,), "<st>d<ed>\n[0.1, 0.2, 0.3, 0.4]")],
     [(UNPARSED, 1, "<ed>", "without an open"), (UNPARSED, 6, SAW, "box has 3"),
      (OUT_OF_RANGE, 42, "[0, 0, 1, 2]", "y2 2.0 above 1"), (UNPARSED, 55, "<st>", "nested"),
      (UNPARSED, 93, "<st>", "no matching '<ed>'")]),
]


@pytest.mark.parametrize("text, expected, issues", [c[1:] for c in SCAN], ids=[c[0] for c in SCAN])
def test_scan(text, expected, issues):
    regions, found = scan_references(text)
    assert [(r.phrase, r.boxes, text[r.start:r.end]) for r in regions] == expected
    assert [(issue.kind, issue.start, text[issue.start:issue.end]) for issue in found] == [
        (kind, start, span) for kind, start, span, _ in issues]
    for issue, (_, _, _, detail) in zip(found, issues):
        assert detail in issue.detail
    for region in regions:
        for box in region.boxes:
            assert all(type(v) is float for v in box)


@pytest.mark.parametrize("text", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_scan_of_a_clean_text_is_parse_regions(text):
    assert scan_references(text) == (parse_regions(text), [])


# The scanner's grammar admits these: clean, or a negative value reported on its box.
RELAXED = {
    "plus-sign": [], "newline-before-box": [], "negative": [OUT_OF_RANGE], "negative-continuation": [OUT_OF_RANGE],
}


@pytest.mark.parametrize("name, text, position", [c[:3] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_scan_reports_each_strict_error_with_the_same_span(name, text, position):
    with pytest.raises(ReferenceSyntaxError) as info:
        parse_regions(text)
    regions, issues = scan_references(text)
    if name in RELAXED:
        assert [issue.kind for issue in issues] == RELAXED[name] and len(regions) == 1
        assert all(issue.start < position < issue.end for issue in issues)
        return
    assert (issues[0].start, issues[0].end) == info.value.span
    assert issues[0].start <= position


def test_issue_offsets_and_types():
    text = "ab <ed> <st>x<ed> [0, 0, 1.5, 1]"
    regions, issues = scan_references(text)
    assert regions == [Region("x", ((0.0, 0.0, 1.5, 1.0),), 8, 32)]
    assert issues == [
        ReferenceIssue(3, 7, "unparsed", "'<ed>' without an open '<st>'"),
        ReferenceIssue(18, 32, "out-of-range", "x2 1.5 above 1"),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        issues[0].kind = "inverted"


_TOKENS = [
    "<st>", "<ed>", "<st>", "<ed>", "[", "]", ",", ", ", " ", "\n", "\t", "0", "1", ".", "0.5", "-0.2", "+.3", "1.5",
    "1e-3", "E", "-", "+", "x", "dog", "<", ">", "st", "ed", "[0.1, 0.2, 0.3, 0.4]", "[0.5,0.2,0.3,0.4]",
    "[0, 0, 1]", "[1.5, 0, 1, 1]", "[-0.1,0,1,1.2]", "[0.9, 0.1, 0.2, 0.8]", "[OPEN]", "图", "\u2028", "\x1c",
    "99999999999999999999999", "9" * 400,
]


def _garbage(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "".join(rng.choice("<>[],.-+0123456789 \nsted") for _ in range(rng.randrange(40)))
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randrange(25)))


def test_scan_never_raises_on_garbage():
    rng = random.Random(20240229)
    kinds = {REFERENCE_UNPARSED, REFERENCE_OUT_OF_RANGE, REFERENCE_INVERTED}
    seen = set()
    for _ in range(5000):
        text = _garbage(rng)
        regions, issues = scan_references(text)
        assert [issue.start for issue in issues] == sorted(issue.start for issue in issues)
        for issue in issues:
            assert 0 <= issue.start < issue.end <= len(text)
            assert issue.kind in kinds and issue.detail
            seen.add(issue.kind)
            inside = [r for r in regions if r.start <= issue.start and issue.end <= r.end]
            overlapping = [r for r in regions if issue.start < r.end and r.start < issue.end]
            assert bool(inside) == (issue.kind != REFERENCE_UNPARSED)
            assert issue.kind != REFERENCE_UNPARSED or not overlapping
        end = 0
        for region in regions:
            assert end <= region.start < region.end <= len(text)
            assert text.startswith(f"<st>{region.phrase}<ed>", region.start) and text[region.end - 1] == "]"
            assert region.boxes and all(len(box) == 4 for box in region.boxes)
            end = region.end
        try:
            strict = parse_regions(text)
        except ReferenceSyntaxError as err:
            assert issues or "signed" in str(err) or "only spaces/tabs" in str(err)
        else:
            assert (regions, issues) == (strict, [])
    assert seen == kinds


@pytest.mark.parametrize("text", [
    "", "<st>", "<ed>", "<st><ed>", "<st>a<ed>", "<st>a<ed>[", "<st>a<ed>[1", "<st>a<ed>[1,", "<st>a<ed>[1,2,3,4",
    "<st>a<ed>[1,2,3,4],", "<st>a<ed>[1,2,3,4], [", "<st>a<ed>[1,2,3,4], [-", "<st>a<ed>[-", "<st>a<ed>[+.",
    "<st>a<ed>[1e", "<st>a<ed> [" + "9" * 5000 + ", 0, 1, 1]", "<st>" * 50, "<ed>" * 50, "[" * 50,
])
def test_scan_never_raises_on_truncated_references(text):
    regions, issues = scan_references(text)
    assert all(0 <= issue.start < issue.end <= len(text) for issue in issues)


@pytest.mark.parametrize(
    "text, boxes",
    [
        # Only spaces and tabs join a continuation; any whitespace (str.isspace) may open a box and, for the scanner,
        # separate '<ed>' from its first box.
        ("<st>a<ed> [0, 0, 1, 1],\u3000[0.1, 0.1, 0.2, 0.2]", [(0.0, 0.0, 1.0, 1.0)]),
        ("<st>a<ed> [0, 0, 1, 1]\u00a0, [0, 0, 1, 1]", [(0.0, 0.0, 1.0, 1.0)]),
        ("<st>a<ed> [0, 0, 1, 1] ,\t[\u3000\u2028.5, 0, 1, 1]", [(0.0, 0.0, 1.0, 1.0), (0.5, 0.0, 1.0, 1.0)]),
        ("<st>a<ed>\u2028\u3000[0, 0, 1, 1]", [(0.0, 0.0, 1.0, 1.0)]),
        ("<st>a<ed> [0, 0, 1, 1], [see note]", [(0.0, 0.0, 1.0, 1.0)]),
    ],
)
def test_which_whitespace_separates_what(text, boxes):
    regions, issues = scan_references(text)
    assert [list(region.boxes) for region in regions] == [boxes] and issues == []
