"""Rewrite docs/preview.png, the README's picture of the preview page (needs Chromium, see svitpipe.preview.browser):

    python -m scripts.preview_screenshot

The sample is built into a temporary folder, its ``referring`` page rendered in headless Chromium, and the
screenshot reduced to 256 colours to keep the file small.
"""

import os
import tempfile
from pathlib import Path

from PIL import Image

import upload
from svitpipe.preview import build_preview
from svitpipe.preview.browser import screenshot

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET = REPO_ROOT / "docs" / "preview.png"
WINDOW = (1320, 1000)

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # the page names its data as the README's command does: build/svit-internvl
        built, page = "build/svit-internvl", Path(work, "preview")
        assert upload.main(["--sample", "--configs", "referring", "--local-dir", built]) == 0
        build_preview(built, str(page), configs=["referring"], rows=4, seed=0)
        shot = screenshot(page / "index.html", Path(work, "shot.png"), *WINDOW)
        with Image.open(shot) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(TARGET, optimize=True)
    print(f"wrote {TARGET.relative_to(REPO_ROOT)} ({TARGET.stat().st_size:,} bytes)")
