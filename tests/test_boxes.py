"""Table-driven tests for svitpipe.training.boxes: box-form conversions, box text, and rendering referring turns."""

import random

import numpy as np
import pytest

from conftest import as_float32, new_builder
from svitpipe.svit.referring_regions import Region, parse_regions, scan_references
from svitpipe.training.boxes import (
    as_written,
    format_box,
    format_number,
    from_llava_square,
    from_pixels,
    from_thousandths,
    llava_square_error_bound,
    render_reference,
    render_referring_text,
    to_llava_square,
    to_pixels,
    to_thousandths,
)

# Image sizes: landscape, portrait, square, odd sizes (odd padding), extreme aspect ratios, SA-1B-like.
SIZES = [(640, 480), (480, 640), (500, 500), (333, 517), (517, 333), (101, 50), (7, 3), (1, 1), (1500, 2250),
         (2250, 1500), (4000, 30)]
BOXES = [
    (0.0, 0.0, 1.0, 1.0),
    (0.1, 0.2, 0.5, 0.6),
    (0.62, 0.18, 0.8, 0.3),
    (0.333, 0.667, 0.999, 1.0),
    (0.5, 0.5, 0.5, 0.5),
    (0.0004, 0.0006, 0.9994, 0.9996),
    tuple(float(np.float32(v)) for v in (0.12, 0.4, 0.55, 0.8)),  # as read back from the float32 column
]


def f32(values):
    return tuple(float(np.float32(v)) for v in values)


# --------------------------------------------------------------------------
# pixels
# --------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("box", BOXES)
def test_pixels_round_trip(box, width, height):
    pixels = to_pixels(box, width, height)
    assert all(isinstance(v, float) for v in pixels)
    assert from_pixels(pixels, width, height) == pytest.approx(box, abs=1e-7)  # inputs read at float32 precision


@pytest.mark.parametrize("box,width,height,expected", [
    ((0.1, 0.2, 0.5, 0.6), 640, 480, (64.0, 96.0, 320.0, 288.0)),
    ((0.1, 0.2, 0.5, 0.6), 480, 640, (48.0, 128.0, 240.0, 384.0)),
    ((0.25, 0.1, 0.75, 0.9), 333, 517, (83.25, 51.7, 249.75, 465.3)),  # not rounded
    ((0.0, 0.0, 1.0, 1.0), 7, 3, (0.0, 0.0, 7.0, 3.0)),
])
def test_to_pixels_values(box, width, height, expected):
    assert to_pixels(box, width, height) == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------
# thousandths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("box,expected", [
    ((0.62, 0.18, 0.8, 0.3), (620, 180, 800, 300)),
    ((0.0, 0.0, 1.0, 1.0), (0, 0, 1000, 1000)),
    ((0.0004, 0.0006, 0.9994, 0.9996), (0, 1, 999, 1000)),
    (f32((0.12, 0.4, 0.55, 0.8)), (120, 400, 550, 800)),      # float32 noise does not leak into the integers
    ((-0.01, 0.0, 1.2, 1.0), (-10, 0, 1200, 1000)),            # not clamped (clip=True clamps)
])
def test_to_thousandths_values(box, expected):
    result = to_thousandths(box)
    assert result == expected
    assert all(type(v) is int for v in result)


@pytest.mark.parametrize("box", BOXES)
def test_thousandths_round_trip_within_half_a_thousandth(box):
    assert from_thousandths(to_thousandths(box)) == pytest.approx(box, abs=0.0005 + 1e-12)


def test_from_thousandths_values():
    assert from_thousandths((620, 180, 800, 300)) == pytest.approx((0.62, 0.18, 0.8, 0.3), abs=1e-15)


# --------------------------------------------------------------------------
# LLaVA-v1.5 padded square
# --------------------------------------------------------------------------

LLAVA_SQUARE_EXAMPLES = [
    # 640x480, landscape: s = 640, pad y by (640 - 480) // 2 = 80.
    # pixels round(0.1*640)=64, round(0.2*480)=96, round(0.5*640)=320, round(0.6*480)=288
    # y + 80: 176, 368 -> 64/640=0.1, 176/640=0.275, 320/640=0.5, 368/640=0.575
    ((0.1, 0.2, 0.5, 0.6), 640, 480, (0.1, 0.275, 0.5, 0.575)),
    # 480x640, portrait: s = 640, pad x by 80.
    # pixels 48, 128, 240, 384; x + 80: 128, 320 -> 128/640=0.2, 128/640=0.2, 320/640=0.5, 384/640=0.6
    ((0.1, 0.2, 0.5, 0.6), 480, 640, (0.2, 0.2, 0.5, 0.6)),
    # 500x500, square: no padding. pixels round(61.7)=62, 250, round(388.85)=389, 500
    # -> 62/500=0.124, 0.5, 389/500=0.778, 1.0
    ((0.1234, 0.5, 0.7777, 1.0), 500, 500, (0.124, 0.5, 0.778, 1.0)),
    # 333x517, odd portrait: s = 517, pad x by (517 - 333) // 2 = 92.
    # pixels round(83.25)=83, round(51.7)=52, round(249.75)=250, round(465.3)=465; x + 92: 175, 342
    # -> 175/517=0.33849 -> 0.338, 52/517=0.10058 -> 0.101, 342/517=0.66151 -> 0.662, 465/517=0.89942 -> 0.899
    ((0.25, 0.1, 0.75, 0.9), 333, 517, (0.338, 0.101, 0.662, 0.899)),
    # 101x50, odd difference: s = 101, pad y by (101 - 50) // 2 = 25 (floor of 25.5).
    # pixels 0, 0, 101, 50; y + 25: 25, 75 -> 0, 25/101=0.24752 -> 0.248, 1.0, 75/101=0.74257 -> 0.743
    ((0.0, 0.0, 1.0, 1.0), 101, 50, (0.0, 0.248, 1.0, 0.743)),
    # 200x150 (a sample image), the sign of the sample's first referring turn: s = 200, pad y by 25.
    # pixels 124, 27, 160, 45; y + 25: 52, 70 -> 0.62, 0.26, 0.8, 0.35
    ((0.62, 0.18, 0.8, 0.3), 200, 150, (0.62, 0.26, 0.8, 0.35)),
]


@pytest.mark.parametrize("box,width,height,expected", LLAVA_SQUARE_EXAMPLES)
def test_to_llava_square_hand_computed(box, width, height, expected):
    assert to_llava_square(box, width, height) == expected


def test_llava_square_documented_bound_for_640x480():
    # (0.0005 * 640 + 0.5) / 640 and / 480
    assert llava_square_error_bound(640, 480) == pytest.approx((0.00128125, 0.0017083333))


def _random_boxes(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        x1, x2 = sorted(rng.random() for _ in range(2))
        y1, y2 = sorted(rng.random() for _ in range(2))
        yield (x1, y1, x2, y2)


@pytest.mark.parametrize("clip", [False, True], ids=["unclipped", "clipped"])
@pytest.mark.parametrize("width,height", SIZES)
def test_llava_square_round_trip_within_documented_bound(width, height, clip):
    bound_x, bound_y = llava_square_error_bound(width, height)
    worst_x = worst_y = 0.0
    for box in [*BOXES, *_random_boxes(width * 7919 + height, 300)]:
        back = from_llava_square(to_llava_square(box, width, height), width, height, clip=clip)
        assert all(0.0 <= v <= 1.0 for v in back) or not clip
        worst_x = max(worst_x, abs(back[0] - box[0]), abs(back[2] - box[2]))
        worst_y = max(worst_y, abs(back[1] - box[1]), abs(back[3] - box[3]))
    assert worst_x <= bound_x + 6e-8  # + reading the input at float32 precision
    assert worst_y <= bound_y + 6e-8


def test_llava_square_bound_is_not_slack():
    # the bound is reached to within a few percent on a large portrait image: its error terms are real
    width, height = 1500, 2250
    bound_x, _ = llava_square_error_bound(width, height)
    worst = max(
        abs(from_llava_square(to_llava_square(box, width, height), width, height)[0] - box[0])
        for box in _random_boxes(1, 3000)
    )
    assert worst > 0.9 * bound_x


@pytest.mark.parametrize("value,expected", [
    (float(np.float32(0.95)), 0.95),
    (0.95, 0.95),
    (float(np.float32(0.0125)), 0.0125),
    (1.0, 1.0),
    (0, 0.0),
    (float(np.float32(1 / 3)), 0.33333334),
])
def test_as_written(value, expected):
    assert as_written(value) == expected


# Stored (float32) boxes convert exactly like the decimals upstream wrote, also at rounding ties.
@pytest.mark.parametrize("convert", [
    lambda box: to_llava_square(box, 100, 50),   # 0.31 * 50 = 15.5 and 0.95 * 50 = 47.5: ties
    lambda box: to_thousandths(box),            # 0.0125 * 1000 = 12.5: a tie
    lambda box: to_pixels(box, 200, 150),       # 0.18 * 150 = 27.0, not 27.000001
], ids=["llava-square", "thousandths", "pixels"])
@pytest.mark.parametrize("box", [(0.72, 0.31, 0.8, 0.95), (0.0125, 0.18, 0.5, 0.6)])
def test_stored_float32_boxes_convert_like_upstream_text(convert, box):
    assert convert(f32(box)) == convert(box)


def test_stored_float32_tie_example():
    # 100x50: pad y 25. y pixels round(15.5)=16 and round(47.5)=48 (ties to even) -> (16+25)/100, (48+25)/100
    assert to_llava_square(f32((0.72, 0.31, 0.8, 0.95)), 100, 50) == (0.72, 0.41, 0.8, 0.73)


# --------------------------------------------------------------------------
# clip
# --------------------------------------------------------------------------

# (id, conversion, a box inside the image, a box outside it, its conversion unclipped, and clipped), 200x100 images.
CLIP = [
    ("to-pixels", lambda box, **clip: to_pixels(box, 200, 100, **clip),
     (0.1, 0.2, 0.5, 0.6), (-0.1, 0.5, 1.2, 1.5), (-20.0, 50.0, 240.0, 150.0), (0.0, 50.0, 200.0, 100.0)),
    ("from-pixels", lambda box, **clip: from_pixels(box, 200, 100, **clip),
     (20.0, 30.0, 100.0, 90.0), (-20.0, 50.0, 240.0, 150.0), (-0.1, 0.5, 1.2, 1.5), (0.0, 0.5, 1.0, 1.0)),
    ("to-thousandths", lambda box, **clip: to_thousandths(box, **clip),
     (0.1, 0.2, 0.5, 0.6), (-0.01, 0.5, 1.2, 1.0), (-10, 500, 1200, 1000), (0, 500, 1000, 1000)),
    ("from-thousandths", lambda box, **clip: from_thousandths(box, **clip),
     (100, 200, 500, 600), (-10, 500, 1200, 1000), (-0.01, 0.5, 1.2, 1.0), (0.0, 0.5, 1.0, 1.0)),
    # s=200, pad y 50: y pixels round(-0.2*100)=-20 -> 30/200=0.15 (in the padding); clipped: 0 -> 50/200=0.25
    ("to-llava-square", lambda box, **clip: to_llava_square(box, 200, 100, **clip),
     (0.1, 0.2, 0.5, 0.6), (-0.1, -0.2, 1.2, 0.5), (-0.1, 0.15, 1.2, 0.5), (0.0, 0.25, 1.0, 0.5)),
    ("from-llava-square", lambda box, **clip: from_llava_square(box, 200, 100, **clip),
     (0.1, 0.3, 0.5, 0.6), (-0.1, 0.15, 1.2, 0.5), (-0.1, -0.2, 1.2, 0.5), (0.0, 0.0, 1.0, 0.5)),
    # 101x50, pad y 25: the square's rounding of an edge box, (0.743 * 101 - 25) / 50 = 1.00086, comes back above 1
    ("from-llava-square-edge-rounding", lambda box, **clip: from_llava_square(box, 101, 50, **clip),
     (0.0, 0.3, 1.0, 0.6), (0.0, 0.248, 1.0, 0.743), (0.0, 0.00096, 1.0, 1.00086), (0.0, 0.00096, 1.0, 1.0)),
]


@pytest.mark.parametrize("convert,inside", [c[1:3] for c in CLIP], ids=[c[0] for c in CLIP])
def test_clip_changes_nothing_inside_the_image(convert, inside):
    assert convert(inside, clip=True) == convert(inside) == convert(inside, clip=False)


@pytest.mark.parametrize("convert,outside,unclipped,clipped", [c[1:2] + c[3:] for c in CLIP],
                         ids=[c[0] for c in CLIP])
def test_clip_outside_the_image(convert, outside, unclipped, clipped):
    assert convert(outside) == pytest.approx(unclipped, abs=1e-12)
    assert convert(outside, clip=True) == pytest.approx(clipped, abs=1e-12)
    assert [type(v) for v in convert(outside, clip=True)] == [type(v) for v in convert(outside)]


@pytest.mark.parametrize("width,height", SIZES)
def test_clip_changes_no_box_inside_the_image(width, height):
    for box in [*BOXES, *_random_boxes(width + height, 100)]:
        assert to_pixels(box, width, height, clip=True) == to_pixels(box, width, height)
        assert to_thousandths(box, clip=True) == to_thousandths(box)
        assert to_llava_square(box, width, height, clip=True) == to_llava_square(box, width, height)
        pixels = to_pixels(box, width, height)
        assert from_pixels(pixels, width, height, clip=True) == from_pixels(pixels, width, height)
        thousandths = to_thousandths(box)
        assert from_thousandths(thousandths, clip=True) == from_thousandths(thousandths)


@pytest.mark.parametrize("width,height", [(0, 10), (10, -1), (10.5, 10), (True, 10)])
def test_sizes_must_be_positive_integers(width, height):
    with pytest.raises(ValueError, match="positive integer"):
        to_llava_square((0, 0, 1, 1), width, height)


def test_a_box_has_four_values():
    with pytest.raises(ValueError, match="4 values"):
        to_pixels((0.1, 0.2, 0.3), 10, 10)


# --------------------------------------------------------------------------
# Box text
# --------------------------------------------------------------------------


@pytest.mark.parametrize("box,decimals,expected", [
    ((0.12, 0.4, 0.55, 0.8), None, "[0.12, 0.4, 0.55, 0.8]"),
    (f32((0.12, 0.4, 0.55, 0.8)), None, "[0.12, 0.4, 0.55, 0.8]"),       # float32 noise not written
    ((620, 180, 800, 300), None, "[620, 180, 800, 300]"),                 # integers stay integers
    (tuple(np.int64(v) for v in (1, 2, 3, 4)), None, "[1, 2, 3, 4]"),
    ((0.0, 0.25, 1.0, 0.9), None, "[0.0, 0.25, 1.0, 0.9]"),
    ((0.00001, 0.0, 0.5, 0.5), None, "[0.00001, 0.0, 0.5, 0.5]"),          # never exponent notation
    ((124.00000095367432, 27.0, 160.0, 45.0), None, "[124.0, 27.0, 160.0, 45.0]"),
    ((0.12345, 0.5, 0.6789, 1.0), 3, "[0.123, 0.5, 0.679, 1.0]"),
    ((83.25, 51.7, 249.75, 465.3), 1, "[83.2, 51.7, 249.8, 465.3]"),       # round() on the float values
])
def test_format_box(box, decimals, expected):
    assert format_box(box, decimals) == expected


@pytest.mark.parametrize("value", [True, "0.5", None])
def test_format_number_rejects_non_numbers(value):
    with pytest.raises(TypeError):
        format_number(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_format_number_rejects_non_finite(value):
    with pytest.raises(ValueError):
        format_number(value)


@pytest.mark.parametrize("box", [*BOXES, *_random_boxes(2, 200), *(f32(b) for b in _random_boxes(3, 200))])
def test_normalized_box_text_parses_back_to_the_same_float32(box):
    [region] = parse_regions(f"<st>x<ed> {format_box(box)}")
    assert f32(region.boxes[0]) == f32(box)


# --------------------------------------------------------------------------
# Rendering referring turns
# --------------------------------------------------------------------------

SIGN = "What does <st>the sign<ed> [0.62, 0.18, 0.8, 0.3] in the window say?"
PEOPLE = "Look: <st>two people<ed> [0.6, 0.3, 0.7, 0.9],[0.72,0.31, 0.8, 0.95] wait [OPEN]."
CUP = "<st>a cup, saucer<ed>[0.1 ,0.1,0.2, 0.2]. And <st>it<ed> [0, 0, 1, 1]"

# (id, text, options, expected)
RENDER = [
    ("normalized-markers-unchanged", SIGN, {}, SIGN),
    ("normalized-no-markers", SIGN, {"markers": False},
     "What does the sign [0.62, 0.18, 0.8, 0.3] in the window say?"),
    ("thousandths", SIGN, {"box_form": "thousandths"},
     "What does <st>the sign<ed> [620, 180, 800, 300] in the window say?"),
    ("pixels", SIGN, {"box_form": "pixels", "width": 200, "height": 150},
     "What does <st>the sign<ed> [124.0, 27.0, 160.0, 45.0] in the window say?"),
    ("llava-square-no-markers", SIGN, {"box_form": "llava_square", "markers": False, "width": 200, "height": 150},
     "What does the sign [0.62, 0.26, 0.8, 0.35] in the window say?"),
    ("two-boxes-spacing-normalised", PEOPLE, {},
     "Look: <st>two people<ed> [0.6, 0.3, 0.7, 0.9], [0.72, 0.31, 0.8, 0.95] wait [OPEN]."),
    ("two-boxes-thousandths-no-markers", PEOPLE, {"box_form": "thousandths", "markers": False},
     "Look: two people [600, 300, 700, 900], [720, 310, 800, 950] wait [OPEN]."),
    # 100x50: s=100, pad y 25. pixels 60,15,70,45 -> y+25: 40,70; 72,round(15.5)=16 (ties to even),80,round(47.5)=48
    ("two-boxes-llava-square", PEOPLE, {"box_form": "llava_square", "width": 100, "height": 50},
     "Look: <st>two people<ed> [0.6, 0.4, 0.7, 0.7], [0.72, 0.41, 0.8, 0.73] wait [OPEN]."),
    ("comma-phrase-no-space-after-ed", CUP, {},
     "<st>a cup, saucer<ed> [0.1, 0.1, 0.2, 0.2]. And <st>it<ed> [0.0, 0.0, 1.0, 1.0]"),
    ("pixels-decimals", CUP, {"box_form": "pixels", "width": 333, "height": 517, "decimals": 1, "markers": False},
     "a cup, saucer [33.3, 51.7, 66.6, 103.4]. And it [0.0, 0.0, 333.0, 517.0]"),
    ("internvl", SIGN, {"box_form": "internvl"},
     "What does <ref>the sign</ref><box>[[620, 180, 800, 300]]</box> in the window say?"),
    ("internvl-two-boxes-in-one-box-tag", PEOPLE, {"box_form": "internvl"},
     "Look: <ref>two people</ref><box>[[600, 300, 700, 900], [720, 310, 800, 950]]</box> wait [OPEN]."),
    ("internvl-markers-option-ignored", CUP, {"box_form": "internvl", "markers": False},
     "<ref>a cup, saucer</ref><box>[[100, 100, 200, 200]]</box>. And <ref>it</ref><box>[[0, 0, 1000, 1000]]</box>"),
    ("no-references", "It reads [OPEN] today.", {"box_form": "thousandths"}, "It reads [OPEN] today."),
    ("empty", "", {}, ""),
]


@pytest.mark.parametrize("text,options,expected", [case[1:] for case in RENDER], ids=[case[0] for case in RENDER])
def test_render_referring_text(text, options, expected):
    regions = parse_regions(text)
    assert render_referring_text(text, regions, **options) == expected


@pytest.mark.parametrize("text,options,expected", [case[1:] for case in RENDER], ids=[case[0] for case in RENDER])
def test_render_takes_stored_region_dicts(text, options, expected):
    stored = [
        {"phrase": r.phrase, "boxes": [list(b) for b in r.boxes], "start": r.start, "end": r.end}
        for r in parse_regions(text)
    ]
    assert render_referring_text(text, as_float32(stored), **options) == expected


def test_render_reference():
    assert render_reference("cat", [(0.1, 0.2, 0.3, 0.4)], box_form="thousandths") == "<st>cat<ed> [100, 200, 300, 400]"


@pytest.mark.parametrize("text,options,expected", [case[1:] for case in RENDER], ids=[case[0] for case in RENDER])
def test_render_reads_the_regions_when_none_are_given(text, options, expected):
    assert render_referring_text(text, **options) == expected


KITE = "A <st>kite<ed> [-0.1, 0.2, 1.2, 0.4] flies."

# (id, options, rendered without clip, rendered with clip); 200x100: s=200, pad y 50.
RENDER_CLIP = [
    ("normalized", {}, "A <st>kite<ed> [-0.1, 0.2, 1.2, 0.4] flies.", "A <st>kite<ed> [0.0, 0.2, 1.0, 0.4] flies."),
    ("thousandths", {"box_form": "thousandths"},
     "A <st>kite<ed> [-100, 200, 1200, 400] flies.", "A <st>kite<ed> [0, 200, 1000, 400] flies."),
    ("internvl", {"box_form": "internvl"},
     "A <ref>kite</ref><box>[[-100, 200, 1200, 400]]</box> flies.",
     "A <ref>kite</ref><box>[[0, 200, 1000, 400]]</box> flies."),
    ("pixels", {"box_form": "pixels", "width": 200, "height": 100},
     "A <st>kite<ed> [-20.0, 20.0, 240.0, 40.0] flies.", "A <st>kite<ed> [0.0, 20.0, 200.0, 40.0] flies."),
    ("llava-square", {"box_form": "llava_square", "width": 200, "height": 100},
     "A <st>kite<ed> [-0.1, 0.35, 1.2, 0.45] flies.", "A <st>kite<ed> [0.0, 0.35, 1.0, 0.45] flies."),
]


@pytest.mark.parametrize("options,unclipped,clipped", [c[1:] for c in RENDER_CLIP], ids=[c[0] for c in RENDER_CLIP])
def test_render_clip(options, unclipped, clipped):
    regions, _ = scan_references(KITE)
    assert render_referring_text(KITE, regions, **options) == unclipped
    assert render_referring_text(KITE, regions, clip=True, **options) == clipped
    inside = "A <st>kite<ed> [0.1, 0.2, 0.5, 0.4] flies."
    assert render_referring_text(inside, clip=True, **options) == render_referring_text(inside, **options)


def test_render_keeps_out_of_range_boxes_and_their_issues():
    rendered = render_referring_text(KITE)
    assert scan_references(rendered) == scan_references(KITE)
    assert [issue.kind for issue in scan_references(rendered)[1]] == ["out-of-range"]


BAD_AND_GOOD = ("The <st>cat<ed> [0.1, 0.2, 0.3] sits by <st>the sign<ed>  [0.62,0.18,0.8,0.3], then <ed> "
                "<st>a cup<ed>\n[0.1, 0.1, 0.2, 0.2].")


@pytest.mark.parametrize("options,expected", [
    ({}, "The <st>cat<ed> [0.1, 0.2, 0.3] sits by <st>the sign<ed> [0.62, 0.18, 0.8, 0.3], then <ed> "
         "<st>a cup<ed> [0.1, 0.1, 0.2, 0.2]."),
    ({"box_form": "thousandths", "markers": False},
     "The <st>cat<ed> [0.1, 0.2, 0.3] sits by the sign [620, 180, 800, 300], then <ed> a cup [100, 100, 200, 200]."),
], ids=["normalized", "thousandths-no-markers"])
def test_render_a_turn_with_bad_references_renders_the_good_ones(options, expected):
    with pytest.raises(ValueError):
        parse_regions(BAD_AND_GOOD)
    regions, issues = scan_references(BAD_AND_GOOD)
    assert [issue.kind for issue in issues] == ["unparsed", "unparsed"]
    assert render_referring_text(BAD_AND_GOOD, regions, **options) == expected
    assert render_referring_text(BAD_AND_GOOD, **options) == expected


@pytest.mark.parametrize("regions,options,error", [
    (None, {"box_form": "xyxy"}, "box_form"),
    (None, {"box_form": "pixels"}, "width and height"),
    (None, {"box_form": "llava_square", "width": 10}, "width and height"),
    ([Region("the sign", ((0.1, 0.2, 0.3, 0.4),), 0, 20)], {}, "is not the reference"),  # regions of another text
    ([Region("the sign", ((0.1, 0.2, 0.3, 0.4),), 10, 999)], {}, "outside the text"),
    ([Region("the sign", ((0.1, 0.2, 0.3, 0.4),), 10, 49)] * 2, {}, "overlapping"),
    ([Region("the sign", (), 10, 49)], {}, "no boxes"),
])
def test_render_errors(regions, options, error):
    regions = parse_regions(SIGN) if regions is None else regions
    with pytest.raises(ValueError, match=error):
        render_referring_text(SIGN, regions, **options)


@pytest.fixture(scope="module")
def sample_referring_rows(tmp_path_factory):
    builder = new_builder(tmp_path_factory.mktemp("boxes-cache"), "referring")
    return list(builder.as_streaming_dataset(split="train").decode(False))


def _referring_turns(rows):
    return [turn for row in rows for conversation in row["conversations"] for turn in conversation["content"]]


def outside(text, spans):
    """The pieces of ``text`` between the ``(start, end)`` spans."""
    starts = [0] + [end for _, end in spans]
    ends = [start for start, _ in spans] + [len(text)]
    return [text[a:b] for a, b in zip(starts, ends)]


@pytest.mark.parametrize("stored_as_float32", [False, True], ids=["as-generated", "as-stored-float32"])
def test_every_sample_referring_turn_renders_back_to_its_regions(sample_referring_rows, stored_as_float32):
    turns = _referring_turns(sample_referring_rows)
    # the sample's 48 references (sample/README.md), one of them unparsed
    assert sum(len(turn["regions"]) for turn in turns) == 47
    changed = 0
    for turn in turns:
        text = turn["value"]
        regions = as_float32(turn["regions"]) if stored_as_float32 else turn["regions"]
        rendered = render_referring_text(text, regions)
        changed += rendered != text
        reparsed = scan_references(rendered)[0]
        assert [r.phrase for r in reparsed] == [r["phrase"] for r in regions]
        assert [[f32(box) for box in r.boxes] for r in reparsed] == [[f32(box) for box in r["boxes"]] for r in regions]
        # the text around the references is kept byte for byte
        assert outside(rendered, [(r.start, r.end) for r in reparsed]) == outside(
            text, [(r["start"], r["end"]) for r in regions])
    assert changed > 0  # some sample references have irregular spacing, which rendering normalises


def test_every_sample_referring_turn_renders_in_every_form(sample_referring_rows):
    for row in sample_referring_rows:
        for turn in _referring_turns([row]):
            plain = render_referring_text(turn["value"], turn["regions"], box_form="llava_square", markers=False,
                                          width=row["width"], height=row["height"])
            kept = "".join(outside(turn["value"], [(r["start"], r["end"]) for r in turn["regions"]]))
            assert plain.count("<st>") == kept.count("<st>") and plain.count("<ed>") == kept.count("<ed>")
            marked = render_referring_text(turn["value"], turn["regions"], box_form="llava_square",
                                           width=row["width"], height=row["height"])
            expected = [[to_llava_square(box, row["width"], row["height"]) for box in r["boxes"]]
                        for r in turn["regions"]]
            assert [[tuple(b) for b in r.boxes] for r in scan_references(marked)[0]] == expected
