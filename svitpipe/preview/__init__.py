"""A static preview page of a built folder: the build's numbers, histograms, and sampled rows with boxes drawn.

    svit-internvl preview --data build/svit-internvl --out preview/     # or: python -m svitpipe.preview ...

``folder`` opens the folder (or Hub repo) and its numbers, ``scan`` reads each config once (a seeded reservoir
sample and fixed-bin histograms, bounded memory), ``thumbnails`` writes the images small, ``plots`` draws the
histograms (matplotlib, SVG), ``render`` writes the page (HTML and CSS, no scripts), ``browser`` renders it in
headless Chromium (the tests; screenshots).
"""

from .command import build_preview, main

__all__ = ["build_preview", "main"]
