"""Decode for training: ``decode_resized(..., reduce="draft")`` against ``reduce="none"`` (full decode + resize) on
SA-1B-sized JPEGs at 336, 448 and 1024 px, with the pixel error of the fast path; Pillow's plain full decode is
measured too. Bytes are in memory; each image's array is freed before the next (as in a training loop).
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
from PIL import Image

from .common import Measurement, Results, timed

SIZES = (336, 448, 1024)
TARGET_SIZE = 448
MAX_MEAN_ERROR = 2.0  # mean absolute difference, in levels of 0-255: "small"


def sa1b_images(images_root: str, count: int) -> list[bytes]:
    out = []
    for name in sorted(os.listdir(images_root)):
        with tarfile.open(os.path.join(images_root, name)) as archive:
            for member in archive:
                if member.name.endswith(".jpg"):
                    out.append(archive.extractfile(member).read())
                    if len(out) == count:
                        return out
    return out


def _draft_eighth(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()


def run(results: Results, images_root: str, count: int, repeats: int) -> None:
    from svitpipe.training.fast_decode import decode_resized

    section = "decode/sa1b"
    images = sa1b_images(images_root, count)
    size_bytes = sum(map(len, images))
    with Image.open(io.BytesIO(images[0])) as first:
        results.facts[section] = {"images": len(images), "mean_kb": size_bytes / len(images) / 1e3,
                                  "first_size": first.size}

    def loop(decode):
        for data in images:
            decode(data)

    seconds, _ = timed(lambda: loop(lambda d: Image.open(io.BytesIO(d)).load()), repeats)
    full = results.add(section, Measurement("pillow-full-decode", seconds, len(images), size_bytes,
                                            "Image.open(BytesIO).load(), no resize"))
    # The floor of any DCT-domain reduction: decoding at 1/8 still entropy-decodes every coefficient.
    seconds, _ = timed(lambda: loop(_draft_eighth), repeats)
    floor = results.add(section, Measurement("pillow-draft-1/8-decode", seconds, len(images), size_bytes,
                                             "Image.draft to 1/8 size + load(), no resize: the entropy-decoding floor"))
    for size in SIZES:
        measured = {}
        for reduce in ("none", "draft"):
            seconds, _ = timed(lambda: loop(lambda d: decode_resized(d, size, reduce=reduce)), repeats)
            measured[reduce] = results.add(section, Measurement(f"{size}/reduce-{reduce}", seconds, len(images),
                                                                size_bytes, f"decode_resized(bytes, {size})"))
        errors = []
        for data in images:
            slow = decode_resized(data, size, reduce="none").astype(np.int16)
            fast = decode_resized(data, size, reduce="draft").astype(np.int16)
            errors.append(np.abs(slow - fast))
        mean_error = float(np.mean([e.mean() for e in errors]))
        results.facts[f"{section}/{size}/pixel-error"] = {
            "mean_abs_levels": mean_error,
            "p99_abs_levels": float(np.mean([np.percentile(e, 99) for e in errors])),
            "max_abs_levels": int(max(e.max() for e in errors)),
        }
        speedup = results.ratio(f"{section}/{size}/draft-vs-none", measured["none"].median / measured["draft"].median,
                                of=measured["draft"].name, over=measured["none"].name, how="medians")
        results.ratio(f"{section}/{size}/draft-vs-pillow-full-decode", full.median / measured["draft"].median,
                      of=measured["draft"].name, over=full.name, how="medians")
        if size == TARGET_SIZE:
            results.ratio(f"{section}/{size}/none-vs-draft-1/8-floor", measured["none"].median / floor.median,
                          of=floor.name, over=measured["none"].name,
                          how="the largest speed-up any draft path could reach on these files (resize free)")
            results.target(f"fast decode at {size} px on SA-1B-sized JPEGs: >= 4x full decode + resize", speedup, 4.0)
            results.target(f"fast decode at {size} px: mean pixel error < {MAX_MEAN_ERROR} levels of 255", mean_error,
                           MAX_MEAN_ERROR, higher_is_better=False, unit=" levels")
