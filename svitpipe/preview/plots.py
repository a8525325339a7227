"""Histograms as inline SVG, drawn by matplotlib (Agg backend, text kept as SVG text so it stays selectable)."""

from __future__ import annotations

import io
import re

import numpy as np

from .scan import FixedHistogram

__all__ = ["histogram_svg", "shown_bins"]

_BAR_COLOUR = "#4363d8"
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)  # RDF boilerplate, nothing a reader sees


def shown_bins(histogram: FixedHistogram) -> tuple[int, int]:
    """``(first, last + 1)``: the bins from the first to the last that hold a value (the bins are fixed; the plot
    shows the range the data reaches), or ``(0, 0)`` when none does."""
    filled = np.flatnonzero(histogram.counts)
    if filled.size == 0:
        return 0, 0
    return int(filled[0]), int(filled[-1]) + 1


def histogram_svg(histogram: FixedHistogram, salt: str) -> str:
    """The histogram as an ``<svg>`` element (no XML prologue), ids made unique on the page by ``salt``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    first, last = shown_bins(histogram)
    labels = [histogram.bin_label(i) for i in range(first, last)]
    counts = histogram.counts[first:last]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 8}):
        figure = Figure(figsize=(3.0, 1.7), dpi=100, layout="constrained")
        axes = figure.subplots()
        axes.bar(np.arange(len(counts)), counts, width=0.85, color=_BAR_COLOUR)
        step = max(1, int(np.ceil(len(labels) / 8)))
        axes.set_xticks(np.arange(0, len(labels), step), labels[::step], rotation=30 if step > 1 or len(labels) > 6 else 0)
        axes.set_xlabel(histogram.unit)
        axes.set_ylabel("count")
        axes.spines[["top", "right"]].set_visible(False)
        if not len(counts):
            axes.text(0.5, 0.5, "no values", transform=axes.transAxes, ha="center", va="center")
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    return _METADATA.sub("", text[text.index("<svg"):])
