"""Table-driven tests for svitpipe.svit.referring_regions."""

import pytest

from svitpipe.svit.referring_regions import ReferenceSyntaxError, Region, parse_regions

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
