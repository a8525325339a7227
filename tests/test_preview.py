"""The preview page (``svit-internvl preview``): its numbers equal the build's, its sample is seeded and read in one
bounded pass, and in a real headless Chromium it shows every thumbnail and draws each box where its normalised
coordinates put it.

The browser tests need Chromium from the system's package manager (``.ci/run`` installs it); they skip, saying so,
where it is absent.
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from local_hub import run_with_hub, serve_dataset_repos
from publish_fixtures import ALL_CONFIGS, REPO_ROOT, copy_published, sample_build, shard_paths
from svitpipe import cli
from svitpipe.features import CONFIGS
from svitpipe.preview import build_preview
from svitpipe.preview.browser import dump_dom, find_chromium, screenshot
from svitpipe.preview.folder import open_built_folder
from svitpipe.preview.render import PALETTE, PAD_COLOUR, _thumbnail_html, box_shapes, frame_for, phrase_colours
from svitpipe.preview.scan import FixedHistogram, Reservoir, scan_config
from svitpipe.preview.thumbnails import THUMBNAIL_SIDE, Thumbnail, thumbnail_size, write_thumbnail
from svitpipe.testing.fake_upstream import draw_jpeg
from svitpipe.training.boxes import to_llava_square

ALL_ROWS = 1000  # more than any sample config holds: every row is on the page

needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium at /usr/bin/chromium (or $CHROMIUM): install the system package (apt-get install chromium)",
)


# --------------------------------------------------------------------------
# Pure parts
# --------------------------------------------------------------------------


def reservoir_positions(size: int, seed, chunks) -> list[int]:
    reservoir = Reservoir(size, seed)
    slots, start = {}, 0
    for n in chunks:
        for offset, slot in reservoir.offer(n):
            slots[slot] = start + offset
        start += n
    return sorted(slots.values())


@pytest.mark.parametrize(
    "size, total, expected",
    [(0, 10, 0), (3, 0, 0), (3, 2, 2), (3, 3, 3), (3, 10, 3), (5, 1000, 5)],
)
def test_reservoir_keeps_min_of_size_and_stream(size, total, expected):
    positions = reservoir_positions(size, 7, [total])
    assert len(positions) == expected == len(set(positions))
    assert all(0 <= p < total for p in positions)


@pytest.mark.parametrize("chunks", [[1] * 500, [100] * 5, [7, 93, 400], [500]])
def test_reservoir_does_not_depend_on_how_the_stream_is_cut(chunks):
    assert reservoir_positions(4, "s", chunks) == reservoir_positions(4, "s", [500])


def test_reservoir_is_seeded_and_uniform():
    assert reservoir_positions(3, 1, [50]) == reservoir_positions(3, 1, [50])
    assert reservoir_positions(3, 1, [50]) != reservoir_positions(3, 2, [50])
    counts = np.zeros(20)
    seeds = 4000
    for seed in range(seeds):
        counts[reservoir_positions(4, seed, [20])] += 1
    # each position is kept with probability 4/20; 4000 seeds give a standard deviation of about 25 around 800
    assert np.all(np.abs(counts - seeds * 4 / 20) < 120), counts


@pytest.mark.parametrize(
    "edges, values, counts, under, over",
    [
        ([0, 1, 2, 3], [0, 0, 1, 2.5, 3, -1], [2, 1, 1], 1, 1),
        ([0, 0.5, 1], [0.25, 0.5, 0.99, 1.0], [1, 2], 0, 1),
        ([0, 32, 64], [], [0, 0], 0, 0),
    ],
)
def test_fixed_histogram_bins(edges, values, counts, under, over):
    histogram = FixedHistogram("x", "x", "x", edges)
    histogram.add(values)
    assert histogram.counts.tolist() == counts
    assert (histogram.under, histogram.over, histogram.count) == (under, over, len(values))


def test_fixed_histogram_rejects_edges_that_do_not_increase():
    with pytest.raises(ValueError, match="increase"):
        FixedHistogram("x", "x", "x", [0, 1, 1])


@pytest.mark.parametrize("size, expected", [((200, 150), (224, 168)), ((135, 180), (168, 224)),
                                            ((2000, 10), (224, 1)), ((64, 64), (224, 224))])
def test_thumbnail_size_fits_the_longer_side(size, expected):
    assert thumbnail_size(*size) == expected


def test_an_image_that_does_not_decode_is_said_so_on_the_page(tmp_path):
    assert write_thumbnail(b"not a JPEG", str(tmp_path), "thumbnails/x/0.jpg") is None
    assert not (tmp_path / "thumbnails").exists()
    thumbnail = write_thumbnail(draw_jpeg(40, 30, seed=2), str(tmp_path), "thumbnails/x/1.jpg")
    assert (thumbnail.width, thumbnail.height, thumbnail.image_width, thumbnail.image_height) == (224, 168, 40, 30)
    assert "image does not decode" in _thumbnail_html(None, "VG_100K/9.jpg", None, "as-written")


def test_phrase_colours_share_a_colour_across_case_and_cycle():
    colours = phrase_colours(["the sign", "The sign", "a cup"] + [f"p{i}" for i in range(len(PALETTE))])
    assert colours["the sign"] == PALETTE[0] and colours["a cup"] == PALETTE[1]
    assert colours[f"p{len(PALETTE) - 2}"] == PALETTE[0]


@pytest.mark.parametrize(
    "image, box_form, frame, box",
    [
        # as written: 0-1 of the thumbnail's own width and height
        ((200, 100), "as-written", (224, 112, 0, 0), (0.5 * 224, 0.25 * 112, 0.25 * 224, 0.5 * 112)),
        # the padded square: the image centred vertically; boxes as to_llava_square writes them
        ((200, 100), "llava-square", (224, 224, 0, 56), (0.5 * 224, 0.375 * 224, 0.25 * 224, 0.25 * 224)),
        ((100, 200), "llava-square", (224, 224, 56, 0), (0.5 * 224, 0.25 * 224, 0.125 * 224, 0.5 * 224)),
    ],
)
def test_boxes_land_in_their_frame(image, box_form, frame, box):
    width, height = image
    thumbnail = Thumbnail("t.jpg", *thumbnail_size(width, height), width, height)
    row = {"conversations": [{"content": [{"from": "gpt", "value": "x", "reference_issues": [], "regions": [
        {"phrase": "it", "boxes": [[0.5, 0.25, 0.75, 0.75]], "start": 0, "end": 1}]}]}]}
    got = frame_for(thumbnail, box_form)
    assert (got.width, got.height, got.image_left, got.image_top) == frame
    [shape] = box_shapes(row, thumbnail, box_form)
    assert (shape.x, shape.y, shape.width, shape.height) == pytest.approx(box)
    assert shape.colour == PALETTE[0]


# --------------------------------------------------------------------------
# The page of the sample build
# --------------------------------------------------------------------------


class PageReader(HTMLParser):
    """Per config section: its numbers (``data-number``), kinds (``data-kind``), rows and thumbnails."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-config" in attrs:
            self.current = self.sections.setdefault(
                attrs["data-config"], {"numbers": {}, "kinds": {}, "rows": [], "thumbnails": [], "plots": []})
        if self.current is None:
            return
        if "data-number" in attrs:
            self.current["numbers"][attrs["data-number"]] = attrs["data-value"]
        if "data-kind" in attrs:
            self.current["kinds"][attrs["data-kind"]] = int(attrs["data-value"])
        if tag == "article":
            self.current["rows"].append(attrs)
        if tag == "img":
            self.current["thumbnails"].append(attrs)
        if tag == "figure" and "data-plot" in attrs:
            self.current["plots"].append(attrs["data-plot"])


def read_page(path: Path) -> dict[str, dict]:
    reader = PageReader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.sections


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def page(built, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("preview")
    build_preview(str(built), str(out), rows=ALL_ROWS, seed=0)
    return out / "index.html"


@pytest.fixture(scope="module")
def square_page(built, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("preview-square")
    build_preview(str(built), str(out), configs=["referring"], rows=ALL_ROWS, box_form="llava-square")
    return out / "index.html"


def image_count(folder: Path, config: str) -> int:
    if CONFIGS[config].multi_image:
        return sum(len(paths) for path in shard_paths(folder, config)
                   for paths in pq.read_table(path, columns=["image_paths"]).column("image_paths").to_pylist())
    return sum(pq.ParquetFile(path).metadata.num_rows for path in shard_paths(folder, config))


def test_every_config_has_its_section_and_the_builds_numbers(built, page):
    infos = json.loads((built / "dataset_infos.json").read_text(encoding="utf-8"))
    sections = read_page(page)
    assert list(sections) == ALL_CONFIGS
    for config, section in sections.items():
        shards = shard_paths(built, config)
        rows = sum(pq.ParquetFile(path).metadata.num_rows for path in shards)
        report = infos[config]["svit_internvl_report"]
        numbers = section["numbers"]
        assert int(numbers["rows"]) == infos[config]["splits"]["train"]["num_examples"] == rows
        assert int(numbers["shard_rows"]) == rows
        assert int(numbers["shards"]) == len(shards)
        assert int(numbers["bytes"]) == sum(path.stat().st_size for path in shards)
        assert int(numbers["records_read"]) == report["records_read"]
        assert int(numbers["skipped"]) == sum(report["skipped"].values())
        assert int(numbers["flagged"]) == sum(report["flagged"].values())
        expected_kinds = {f"skipped:{k}": n for k, n in report["skipped"].items()}
        expected_kinds |= {f"flagged:{k}": n for k, n in report["flagged"].items()}
        assert section["kinds"] == expected_kinds
        assert len(section["rows"]) == rows
        assert len(section["thumbnails"]) == image_count(built, config)
        expected_plots = ["text_length", "turns"]
        expected_plots += ["boxes_per_turn", "box_area"] if config == "referring" else []
        expected_plots += ["images"] if CONFIGS[config].multi_image else []
        assert section["plots"] == expected_plots
    assert sum(sections["referring"]["kinds"].values()) > 0  # the sample carries flagged references


def test_flagged_turns_are_counted_and_marked(built, page):
    flagged_turns = 0
    for path in shard_paths(built, "referring"):
        for row in pq.read_table(path, columns=["conversations"]).to_pylist():
            flagged_turns += sum(1 for c in row["conversations"] for t in c["content"] if t["reference_issues"])
    assert flagged_turns > 0
    assert int(read_page(page)["referring"]["numbers"]["flagged_turns"]) == flagged_turns
    html = page.read_text(encoding="utf-8")
    referring = html[html.index('id="config-referring"'):html.index('id="config-description"')]
    assert referring.count('class="turn flagged"') == flagged_turns
    assert "flagged out-of-range" in referring and "flagged inverted" in referring


def test_thumbnails_are_small_files_beside_the_page(page):
    for section in read_page(page).values():
        for img in section["thumbnails"]:
            path = page.parent / img["src"]
            assert not Path(img["src"]).is_absolute() and path.is_file()
            with Image.open(path) as image:
                assert image.size == (int(img["width"]), int(img["height"]))
                assert max(image.size) == THUMBNAIL_SIDE
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html
    assert re.findall(r'(?:src|href)="([^"#]+)"', html) == [img["src"] for s in read_page(page).values()
                                                           for img in s["thumbnails"]]  # only the thumbnails


def test_histograms_count_every_row_turn_and_box(built, tmp_path):
    folder = open_built_folder(str(built), ["referring", "sa1b-en-multi"])
    scan = scan_config(folder, folder.configs["referring"], 2, seed=0)
    rows = [row for path in shard_paths(built, "referring") for row in pq.read_table(path).to_pylist()]
    turns = [t for row in rows for c in row["conversations"] for t in c["content"]]
    boxes = [box for t in turns for region in t["regions"] for box in region["boxes"]]
    histograms = {h.name: h for h in scan.histograms}
    assert histograms["turns"].count == len(rows) and histograms["turns"].total == len(turns)
    assert histograms["text_length"].total == sum(len(t["value"]) for t in turns)
    assert histograms["boxes_per_turn"].count == len(turns) and histograms["boxes_per_turn"].total == len(boxes)
    areas = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes]
    assert histograms["box_area"].count == len(boxes)
    assert histograms["box_area"].under == sum(1 for a in areas if a < 0)  # the sample's inverted box
    multi = scan_config(folder, folder.configs["sa1b-en-multi"], 2, seed=0)
    images = {h.name: h for h in multi.histograms}["images"]
    assert images.total == image_count(built, "sa1b-en-multi")


def test_sample_is_seeded_and_the_same_seed_writes_the_same_page(built, tmp_path):
    pages = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        build_preview(str(built), str(tmp_path / name), configs=["sa1b-en-single", "referring"], rows=3, seed=seed)
        pages[name] = tmp_path / name / "index.html"
    assert pages["a"].read_bytes() == pages["b"].read_bytes()
    sections = {name: read_page(path) for name, path in pages.items()}
    for config in ("sa1b-en-single", "referring"):
        assert len(sections["a"][config]["rows"]) == 3
    positions = {name: [row["data-position"] for row in s["sa1b-en-single"]["rows"]] for name, s in sections.items()}
    assert positions["a"] != positions["c"]
    assert all(p == sorted(p, key=int) for p in positions.values())


def test_one_pass_reads_images_only_for_chosen_row_groups(tmp_path, built):
    """A config of 5,000 rows in 100 row groups: 2 rows are kept, and images are read for few row groups."""
    template = pq.read_table(shard_paths(built, "referring")[0])
    tiny = {"bytes": draw_jpeg(16, 12, seed=1), "path": "VG_100K/1.jpg"}
    row = {**template.to_pylist()[0], "image": tiny}
    rows = [{**row, "id": str(i)} for i in range(5000)]
    folder = tmp_path / "big"
    (folder / "data" / "referring").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=template.schema), folder / "data/referring/train-00000-of-00001.parquet",
                   row_group_size=50)
    infos = json.loads((built / "dataset_infos.json").read_text(encoding="utf-8"))
    (folder / "dataset_infos.json").write_text(json.dumps({"referring": infos["referring"]}), encoding="utf-8")
    opened = open_built_folder(str(folder))
    scan = scan_config(opened, opened.configs["referring"], 2, seed=0)
    assert scan.rows_read == 5000 and len(scan.sample) == 2
    # about 2 + 2 ln(5000 / 2) = 18 rows enter the sample over the pass; a full read would touch all 100 groups
    assert scan.row_groups_read_for_images < 30
    assert [row.values["id"] for row in scan.sample] == [str(row.position) for row in scan.sample]


def test_the_command_writes_the_page(built, tmp_path, capsys):
    out = tmp_path / "page"
    assert cli.main(["preview", "--data", str(built), "--configs", "referring", "--rows", "2", "--out", str(out)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["configs"]["referring"]["sampled"] == 2
    assert list(read_page(out / "index.html")) == ["referring"]
    assert cli.main(["preview", "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert "neither a folder nor" in capsys.readouterr().err


# --------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel[:3], colour))


GRID_COLUMNS = 10
THUMBNAILS_ONLY = f"""<style>
header, h2, h3, p, dl, table, .plots, .text, svg.boxes {{ display: none !important; }}
section, .rows, article, .images {{ display: contents !important; }}
body {{ display: grid; grid-template-columns: repeat({GRID_COLUMNS}, {THUMBNAIL_SIDE}px);
        grid-auto-rows: {THUMBNAIL_SIDE}px; gap: 0; padding: 0; }}
.frame {{ width: {THUMBNAIL_SIDE}px !important; height: {THUMBNAIL_SIDE}px !important; }}
</style></head>"""


@needs_chromium
def test_page_renders_every_thumbnail_in_chromium(page, built, tmp_path):
    dom = dump_dom(page)
    thumbnails = [img for section in read_page(page).values() for img in section["thumbnails"]]
    expected = sum(image_count(built, config) for config in ALL_CONFIGS)
    assert len(re.findall(r'<img class="thumbnail"', dom)) == len(thumbnails) == expected
    png = screenshot(page, tmp_path / "page.png", 1400, 2400)
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (2400, 1400, 3)
    assert np.any(pixels < 235, axis=2).mean() > 0.08  # text, plots and thumbnails, not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # images, not only text
    # The same page with every frame in a grid cell of its own, in page order: each cell shows its thumbnail.
    grid = page.with_name("thumbnails-only.html")
    grid.write_text(page.read_text(encoding="utf-8").replace("</head>", THUMBNAILS_ONLY, 1), encoding="utf-8")
    rows = math.ceil(len(thumbnails) / GRID_COLUMNS)
    png = screenshot(grid, tmp_path / "grid.png", GRID_COLUMNS * THUMBNAIL_SIDE, rows * THUMBNAIL_SIDE)
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    for k, img in enumerate(thumbnails):
        top, left = (k // GRID_COLUMNS) * THUMBNAIL_SIDE, (k % GRID_COLUMNS) * THUMBNAIL_SIDE
        expected_pixels = np.asarray(Image.open(page.parent / img["src"]).convert("RGB"), dtype=np.float64)
        height, width = expected_pixels.shape[:2]
        shown = pixels[top:top + height, left:left + width]
        assert np.abs(shown - expected_pixels).mean() < 6, (k, img["src"])  # JPEG decoders differ a little


def focus_page(page: Path, article_id: str) -> Path:
    """The page with one row's frame moved to the top-left corner and everything else hidden (the phrase labels
    too, so that pixels inside a box are the image's): the same markup, so where the boxes land is where the page
    puts them."""
    style = (f"<style>body {{ visibility: hidden; }} #{article_id} .frame {{ position: fixed; left: 0; top: 0; "
             f"visibility: visible; }} #{article_id} .frame * {{ visibility: visible; }} "
             "svg.boxes text { display: none; }</style></head>")
    focused = page.with_name(f"focus-{article_id}.html")
    focused.write_text(page.read_text(encoding="utf-8").replace("</head>", style, 1), encoding="utf-8")
    return focused


def referring_row(built: Path, row_id: str) -> dict:
    for path in shard_paths(built, "referring"):
        for row in pq.read_table(path).to_pylist():
            if row["id"] == row_id:
                return row
    raise AssertionError(f"no referring row {row_id}")


def article_and_thumbnail(page: Path, row_id: str) -> tuple[str, dict]:
    section = read_page(page)["referring"]
    index = [row["data-row-id"] for row in section["rows"]].index(row_id)
    return section["rows"][index]["id"], section["thumbnails"][index]


@needs_chromium
@pytest.mark.parametrize("box_form", ["as-written", "llava-square"])
def test_boxes_are_drawn_where_their_coordinates_put_them(built, page, square_page, tmp_path, box_form):
    """Row 1 of ``referring``: one phrase (``the sign``, in the question and the answer) with one box."""
    shown = page if box_form == "as-written" else square_page
    row = referring_row(built, "1")
    [region] = row["conversations"][0]["content"][0]["regions"]
    article_id, img = article_and_thumbnail(shown, "1")
    width, height = int(img["width"]), int(img["height"])
    png = screenshot(focus_page(shown, article_id), tmp_path / "focus.png", 400, 400)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    if box_form == "as-written":
        left, top, side_x, side_y = 0, 0, width, height
        x1, y1, x2, y2 = region["boxes"][0]
    else:
        side = max(width, height)
        left, top, side_x, side_y = (side - width) // 2, (side - height) // 2, side, side
        x1, y1, x2, y2 = to_llava_square(region["boxes"][0], row["width"], row["height"])
        assert near(pixels[side - 3, side - 3], rgb(PAD_COLOUR), 12) or near(pixels[2, 2], rgb(PAD_COLOUR), 12)
    colour = rgb(PALETTE[0])
    corners = [(x1 * side_x, y1 * side_y), (x2 * side_x, y1 * side_y), (x1 * side_x, y2 * side_y),
               (x2 * side_x, y2 * side_y), ((x1 + x2) / 2 * side_x, y2 * side_y)]
    for x, y in corners:
        around = pixels[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
        assert any(near(p, colour) for p in around), (box_form, x, y, around.tolist())
    # inside the box is the image itself (the thumbnail, loaded and in place), not the box colour
    thumbnail = np.asarray(Image.open(shown.parent / img["src"]).convert("RGB"), dtype=np.int16)
    cx, cy = int((x1 + x2) / 2 * side_x), int((y1 + y2) / 2 * side_y)
    assert not near(pixels[cy, cx], colour, 20)
    assert near(pixels[cy, cx], thumbnail[cy - top, cx - left], 24)
    # and away from every box, too
    assert near(pixels[top + 3, left + 3], thumbnail[3, 3], 24)


def test_a_hub_repo_gives_the_same_numbers_as_its_folder(built, page, tmp_path):
    """``--data org/name`` reads the pushed folder through ``hf://`` (here a local Hub server on 127.0.0.1)."""
    folder = copy_published(built, tmp_path / "repo")
    out = tmp_path / "hub-page"
    with serve_dataset_repos({"acme/svit-internvl": folder}, tmp_path / "hub") as endpoint:
        run_with_hub(
            "import sys; from svitpipe.preview import main; "
            f"sys.exit(main(['--data', 'acme/svit-internvl', '--configs', 'referring', 'sa1b-en-multi', "
            f"'--rows', '{ALL_ROWS}', '--out', {str(out)!r}]))",
            endpoint, cwd=REPO_ROOT,
        )
    from_hub, local = read_page(out / "index.html"), read_page(page)
    assert list(from_hub) == ["referring", "sa1b-en-multi"]
    for config, section in from_hub.items():
        assert section["numbers"] == local[config]["numbers"]
        assert section["kinds"] == local[config]["kinds"]
        assert [row["data-row-id"] for row in section["rows"]] == [row["data-row-id"] for row in local[config]["rows"]]
