"""The page: plain HTML and CSS, no scripts; every value escaped; the same inputs give the same bytes.

Layout facts the browser test relies on: a thumbnail is shown at its own pixel size inside ``.frame`` (its size
set inline), and a referring row's boxes are an ``<svg>`` laid exactly over the frame, in frame pixels.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..features import CONFIGS
from ..training.boxes import as_written, render_reference, to_llava_square
from .thumbnails import Thumbnail

__all__ = [
    "BOX_FORMS",
    "PALETTE",
    "PAD_COLOUR",
    "BoxShape",
    "Frame",
    "box_shapes",
    "frame_for",
    "page_html",
    "phrase_colours",
]

BOX_FORMS = ("as-written", "llava-square")
# Distinct, saturated colours, one per phrase of a row (in order of first mention; repeats after the last).
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#00a0b0", "#f032e6", "#808000", "#9a6324",
           "#000075")
PAD_COLOUR = "#7a7468"  # LLaVA-v1.5 pads with the CLIP image mean, (122, 116, 104)
BOX_STROKE = 3
MAX_TURNS = 4
MAX_FLAGGED_TURNS = 4
TURN_CHARS = 420


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Frame:
    """Where a thumbnail sits: the frame's size and the image's offset in it, in CSS pixels."""

    width: int
    height: int
    image_left: int
    image_top: int


def frame_for(thumbnail: Thumbnail, box_form: str) -> Frame:
    """``as-written``: the frame is the image. ``llava-square``: the image centred in a square of its longer side,
    as LLaVA-v1.5 pads it (the offset rounded down, as ``svitpipe.training.boxes`` does)."""
    if box_form == "as-written":
        return Frame(thumbnail.width, thumbnail.height, 0, 0)
    side = max(thumbnail.width, thumbnail.height)
    return Frame(side, side, (side - thumbnail.width) // 2, (side - thumbnail.height) // 2)


@dataclass(frozen=True)
class BoxShape:
    """One box to draw, in frame pixels: top-left corner, size, colour and the phrase it belongs to."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    phrase: str


def phrase_colours(phrases: Iterable[str]) -> dict[str, str]:
    """``casefolded phrase -> colour``, in order of first mention (``the sign`` and ``The sign`` share one)."""
    colours: dict[str, str] = {}
    for phrase in phrases:
        key = phrase.casefold()
        if key not in colours:
            colours[key] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def _row_turns(row: dict, family: str) -> list[dict]:
    if family == "svit":
        return [turn for conversation in row["conversations"] for turn in conversation["content"]]
    return list(row["conversations"])


def _regions(turns: Sequence[dict]) -> list[tuple[str, tuple[float, ...]]]:
    """Every ``(phrase, box)`` of the turns in order, each drawn once (a phrase's box repeated in the answer is the
    same box)."""
    seen, found = set(), []
    for turn in turns:
        for region in turn.get("regions") or ():
            for box in region["boxes"]:
                key = (region["phrase"].casefold(), tuple(as_written(v) for v in box))
                if key not in seen:
                    seen.add(key)
                    found.append((region["phrase"], tuple(box)))
    return found


def box_shapes(row: dict, thumbnail: Thumbnail, box_form: str) -> list[BoxShape]:
    """Every region's boxes of a referring row, in frame pixels (:func:`frame_for`), coloured by phrase.

    ``as-written``: the stored boxes, normalised to the image's own width and height. ``llava-square``: the boxes
    converted exactly as ``to_llava_square`` writes them, drawn on the padded square. Inverted boxes are drawn
    between their corners' smaller and larger values; boxes outside the image are drawn where they point.
    """
    regions = _regions(_row_turns(row, "svit"))
    colours = phrase_colours(phrase for phrase, _ in regions)
    frame = frame_for(thumbnail, box_form)
    shapes = []
    for phrase, box in regions:
        if box_form == "as-written":
            x1, y1, x2, y2 = (as_written(v) for v in box)
            x1, x2 = x1 * frame.width, x2 * frame.width
            y1, y2 = y1 * frame.height, y2 * frame.height
        else:
            x1, y1, x2, y2 = (v * frame.width for v in to_llava_square(box, thumbnail.image_width,
                                                                        thumbnail.image_height))
        shapes.append(BoxShape(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1), colours[phrase.casefold()],
                               phrase))
    return shapes


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _overlay_svg(shapes: Sequence[BoxShape], frame: Frame) -> str:
    parts = [f'<svg class="boxes" width="{frame.width}" height="{frame.height}" '
             f'viewBox="0 0 {frame.width} {frame.height}" aria-hidden="true">']
    for shape in shapes:
        parts.append(
            f'<rect x="{_number(shape.x)}" y="{_number(shape.y)}" width="{_number(shape.width)}" '
            f'height="{_number(shape.height)}" stroke="{shape.colour}"/>'
        )
    labelled = set()
    for shape in shapes:
        if shape.phrase.casefold() in labelled:
            continue
        labelled.add(shape.phrase.casefold())
        below_top = shape.y < 14
        y = shape.y + 14 if below_top else shape.y - 4
        parts.append(f'<text x="{_number(shape.x + 4)}" y="{_number(y)}" fill="{shape.colour}">{_e(shape.phrase)}'
                     "</text>")
    parts.append("</svg>")
    return "".join(parts)


def _thumbnail_html(thumbnail: Thumbnail | None, path: str, shapes: Sequence[BoxShape] | None, box_form: str) -> str:
    if thumbnail is None:
        return f'<div class="frame broken" title="{_e(path)}">image does not decode<br>{_e(path)}</div>'
    frame = frame_for(thumbnail, box_form if shapes is not None else "as-written")
    padded = " padded" if (frame.width, frame.height) != (thumbnail.width, thumbnail.height) else ""
    return (
        f'<div class="frame{padded}" style="width:{frame.width}px;height:{frame.height}px">'
        f'<img class="thumbnail" src="{_e(thumbnail.src)}" width="{thumbnail.width}" height="{thumbnail.height}" '
        f'style="left:{frame.image_left}px;top:{frame.image_top}px" '
        f'alt="{_e(path)}" title="{_e(path)} ({thumbnail.image_width}x{thumbnail.image_height})">'
        + (_overlay_svg(shapes, frame) if shapes is not None else "")
        + "</div>"
    )


def _cut(text: str, spans: Sequence[tuple[int, int]], limit: int) -> int:
    """Where to cut ``text`` at about ``limit`` characters without cutting a span."""
    if len(text) <= limit:
        return len(text)
    for start, end in spans:
        if start < limit < end:
            return end
    return limit


def _turn_html(turn: dict, colours: dict[str, str], box_form: str, width: int | None, height: int | None) -> str:
    text = turn["value"] or ""
    regions = sorted(turn.get("regions") or (), key=lambda region: region["start"])
    issues = turn.get("reference_issues") or []
    cut = _cut(text, [(r["start"], r["end"]) for r in regions], TURN_CHARS)
    pieces, position = [], 0
    for region in regions:
        if region["end"] > cut:
            break
        pieces.append(_e(text[position:region["start"]]))
        written = text[region["start"]:region["end"]]
        if box_form == "llava-square":
            written = render_reference(region["phrase"], region["boxes"], box_form="llava_square", width=width,
                                       height=height)
        colour = colours.get(region["phrase"].casefold(), PALETTE[0])
        pieces.append(f'<span class="ref" style="border-color:{colour}">{_e(written)}</span>')
        position = region["end"]
    pieces.append(_e(text[position:cut]))
    if cut < len(text):
        pieces.append(f'<span class="more">… ({len(text) - cut} more characters)</span>')
    role = turn["from"] or "?"
    flagged = " flagged" if issues else ""
    out = [f'<li class="turn{flagged}"><span class="role">{_e(role)}</span> {"".join(pieces)}']
    for issue in issues:
        out.append(
            f'<div class="issue">flagged {_e(issue["kind"])}: {_e(issue["detail"])} '
            f'<code>{_e(text[issue["start"]:issue["end"]])}</code></div>'
        )
    out.append("</li>")
    return "".join(out)


def shown_turns(turns: Sequence[dict]) -> list[int]:
    """The turns a row shows: its first :data:`MAX_TURNS`, and its first :data:`MAX_FLAGGED_TURNS` flagged ones
    wherever they are (a flagged turn is what a reader looks for)."""
    flagged = [i for i, turn in enumerate(turns) if turn.get("reference_issues")][:MAX_FLAGGED_TURNS]
    return sorted(set(range(min(MAX_TURNS, len(turns)))) | set(flagged))


def _row_html(config: str, index: int, sample_row, thumbnails: Sequence[tuple[str, Thumbnail | None]],
              box_form: str, total_rows: int) -> str:
    facts = CONFIGS[config]
    row = sample_row.values
    turns = _row_turns(row, facts.family)
    referring = config == "referring"
    colours = phrase_colours(phrase for phrase, _ in _regions(turns)) if referring else {}
    images = []
    for path, thumbnail in thumbnails:
        shapes = box_shapes(row, thumbnail, box_form) if referring and thumbnail is not None else None
        images.append(_thumbnail_html(thumbnail, path, shapes, box_form))
    if facts.multi_image:
        size = ", ".join(f"{w}x{h}" for w, h in zip(row["widths"], row["heights"]))
    else:
        size = f'{row["width"]}x{row["height"]}'
    flagged = sum(1 for turn in turns if turn.get("reference_issues"))
    meta = [f"row {sample_row.position + 1:,} of {total_rows:,}", f"id {_e(row['id'])}", _e(sample_row.shard), size]
    if flagged:
        meta.append(f'<span class="flag">{flagged} flagged turn{"s" if flagged > 1 else ""}</span>')
    if row.get("upstream_extra"):
        meta.append(f'<span class="extra" title="{_e(row["upstream_extra"])}">upstream_extra</span>')
    pieces, previous = [], -1
    for turn_index in shown_turns(turns):
        if turn_index > previous + 1:
            pieces.append(f'<li class="gap">… {turn_index - previous - 1} turns …</li>')
        pieces.append(_turn_html(turns[turn_index], colours, box_form, row.get("width"), row.get("height")))
        previous = turn_index
    shown = "".join(pieces)
    rest = len(turns) - previous - 1
    more = f'<p class="more">{rest} more turns</p>' if rest > 0 else ""
    return (
        f'<article class="row" id="{_e(config)}-row-{index}" data-position="{sample_row.position}" '
        f'data-row-id="{_e(row["id"])}">'
        f'<div class="images">{"".join(images)}</div>'
        f'<div class="text"><p class="meta">{" · ".join(meta)}</p><ol class="turns">{shown}</ol>{more}</div>'
        "</article>"
    )


def _human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _numbers_html(scan) -> str:
    config = scan.config
    report = config.report
    info_rows = config.info_rows
    numbers = [
        ("rows", "rows (dataset_infos.json)", info_rows, f"{info_rows:,}" if info_rows is not None else "missing"),
        ("shard_rows", "rows (shard footers)", config.shard_rows, f"{config.shard_rows:,}"),
        ("shards", "shards", len(config.shards), f"{len(config.shards):,}"),
        ("bytes", "bytes (shards)", config.shard_bytes, _human_bytes(config.shard_bytes)),
        ("records_read", "records read", report.get("records_read"), f"{report.get('records_read', 'n/a'):,}"
         if report.get("records_read") is not None else "n/a"),
        ("skipped", "skipped", sum((report.get("skipped") or {}).values()), None),
        ("flagged", "flagged", sum((report.get("flagged") or {}).values()), None),
        ("failed_units", "failed units", len(report.get("failed_units") or []), None),
        ("flagged_turns", "flagged turns (read)", scan.flagged_turns, None),
        ("rows_with_upstream_extra", "rows with upstream_extra (read)", scan.rows_with_upstream_extra, None),
    ]
    cells = []
    for key, label, value, shown in numbers:
        mismatch = key == "shard_rows" and info_rows is not None and value != info_rows
        cls = ' class="mismatch"' if mismatch else ""
        shown = shown if shown is not None else f"{value:,}"
        cells.append(f'<div{cls}><dt>{_e(label)}</dt><dd data-number="{key}" data-value="{_e(value)}">{_e(shown)}'
                     "</dd></div>")
    kinds = []
    for what in ("skipped", "flagged"):
        for kind, n in sorted((report.get(what) or {}).items()):
            kinds.append(f'<tr data-kind="{what}:{_e(kind)}" data-value="{n}"><td>{what}</td><td>{_e(kind)}</td>'
                         f"<td>{n:,}</td></tr>")
    table = ('<table class="kinds"><thead><tr><th></th><th>kind</th><th>count</th></tr></thead><tbody>'
             + "".join(kinds) + "</tbody></table>") if kinds else '<p class="none">no skips, no flags</p>'
    return f'<dl class="numbers">{"".join(cells)}</dl>{table}'


def _plots_html(scan, plot_svgs: Sequence[str]) -> str:
    figures = []
    for histogram, svg in zip(scan.histograms, plot_svgs):
        mean = histogram.mean
        summary = (f"{histogram.count:,} values, mean {mean:,.3g}, min {histogram.minimum:,.4g}, "
                   f"max {histogram.maximum:,.4g}" if mean is not None else "no values")
        beyond = []
        if histogram.under:
            beyond.append(f"{histogram.under:,} below {histogram.edges[0]:g}")
        if histogram.over:
            beyond.append(f"{histogram.over:,} at or above {histogram.edges[-1]:g}")
        if beyond:
            summary += "; " + ", ".join(beyond)
        figures.append(f'<figure class="plot" data-plot="{histogram.name}">{svg}'
                       f"<figcaption><b>{_e(histogram.title)}</b>: {_e(summary)}</figcaption></figure>")
    return f'<div class="plots">{"".join(figures)}</div>'


def section_html(scan, plot_svgs: Sequence[str], row_thumbnails: Sequence[Sequence[tuple[str, Thumbnail | None]]],
                 box_form: str) -> str:
    name = scan.config.name
    total = scan.rows_read
    rows = "".join(_row_html(name, i, row, thumbs, box_form, total)
                   for i, (row, thumbs) in enumerate(zip(scan.sample, row_thumbnails)))
    return (
        f'<section class="config" id="config-{_e(name)}" data-config="{_e(name)}">'
        f"<h2>{_e(name)}</h2><p class=\"description\">{_e(CONFIGS[name].description)}</p>"
        f"{_numbers_html(scan)}{_plots_html(scan, plot_svgs)}"
        f'<h3>{len(scan.sample):,} of {total:,} rows, sampled</h3><div class="rows">{rows}</div></section>'
    )


STYLE = """
html { background: #fff; color: #1b1b1b; }
body { margin: 0; padding: 16px 24px; font: 14px/1.4 system-ui, sans-serif; }
header { border-bottom: 1px solid #ccc; margin-bottom: 12px; }
nav a { margin-right: 12px; }
code { font-size: 12px; }
section.config { margin: 0 0 32px; }
h2 { margin: 20px 0 4px; font-size: 20px; }
h3 { font-size: 15px; margin: 12px 0 6px; }
.description { margin: 0 0 8px; color: #444; max-width: 960px; }
dl.numbers { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 0 0 8px; }
dl.numbers div { background: #f3f3f3; padding: 4px 8px; border-radius: 4px; }
dl.numbers div.mismatch { background: #fdd; }
dt { font-size: 11px; color: #555; } dd { margin: 0; font-weight: 600; }
table.kinds { border-collapse: collapse; font-size: 12px; margin-bottom: 8px; }
table.kinds td, table.kinds th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
figure.plot { margin: 0; width: 300px; } figure.plot svg { display: block; width: 300px; height: 170px; }
figcaption { font-size: 11px; color: #444; }
.rows { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
article.row { width: 600px; border: 1px solid #ddd; border-radius: 6px; padding: 8px; box-sizing: border-box;
              display: flex; flex-wrap: wrap; gap: 0 10px; align-items: flex-start; }
.images { display: flex; flex-wrap: wrap; gap: 6px; max-width: 100%; }
.text { flex: 1 1 220px; min-width: 0; }
.frame { position: relative; overflow: hidden; flex: none; }
.frame.padded { background: #7a7468; }
.frame.broken { width: 224px; height: 100px; background: #fee; font-size: 11px; overflow-wrap: anywhere; }
.frame img { position: absolute; display: block; }
svg.boxes { position: absolute; left: 0; top: 0; overflow: visible; }
svg.boxes rect { fill: none; stroke-width: 3px; shape-rendering: crispEdges; }
svg.boxes text { font: 600 11px system-ui, sans-serif; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.meta { font-size: 11px; color: #555; margin: 4px 0; }
.flag, .turn.flagged .role { background: #c00; color: #fff; padding: 0 4px; border-radius: 3px; }
.extra { background: #eee; padding: 0 4px; border-radius: 3px; }
ol.turns { margin: 0; padding-left: 0; list-style: none; }
.turn { margin: 3px 0; font-size: 12.5px; overflow-wrap: anywhere; }
.turn.flagged { border-left: 3px solid #c00; padding-left: 5px; }
.role { font-weight: 600; margin-right: 2px; }
.ref { border-bottom: 3px solid; }
.issue { color: #a00; font-size: 11.5px; }
.gap { color: #777; font-size: 11px; }
.more { color: #777; font-size: 11px; }
"""


def page_html(data: str, sections: Sequence[str], names: Sequence[str], rows: int, seed: int, box_form: str) -> str:
    box_note = ("boxes as written: normalised to 0-1 of the image's own width and height"
                if box_form == "as-written" else
                "boxes in LLaVA-v1.5's padded square: the image centred in a square of its longer side (grey), "
                "boxes and text as to_llava_square writes them")
    nav = "".join(f'<a href="#config-{_e(name)}">{_e(name)}</a>' for name in names)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>svit-internvl preview: {_e(data)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>svit-internvl preview</h1><p>Data: <code>{_e(data)}</code>. Up to {rows:,} rows per config, "
        f"sampled with seed {seed} in one pass over the shards; {_e(box_note)}. Flagged turns (reference_issues) "
        "are marked in red.</p>"
        f"<nav>{nav}</nav></header>{''.join(sections)}</body></html>\n"
    )
