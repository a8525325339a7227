"""The bundled sample: a tiny copy of all three upstream sources, laid out exactly like the real ones.

``svit/`` (like the ``BAAI/SVIT`` repo), ``internvl-sa1b-caption/`` (the four jsonl files) and ``sa1b/`` (SA-1B
tars), with synthetic text and images written by ``scripts/make_sample.py``. It ships inside the package, so
``svit-internvl upload --sample`` works from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent

# Builder keyword arguments that point every source at the sample.
SAMPLE_SOURCES = {
    "svit_source": str(SAMPLE_DIR / "svit"),
    "sa1b_captions_source": str(SAMPLE_DIR / "internvl-sa1b-caption"),
    "sa1b_images_source": str(SAMPLE_DIR / "sa1b"),
}
