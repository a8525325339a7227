"""Decode for training, per backend: ``decode_resized`` (DCT-domain reduction + resize) against the full decode +
bicubic resize (``reduce="none"``, Pillow), on SA-1B-sized and Visual Genome-sized JPEGs at 336, 448 and 1024 px,
with the pixel error of every backend.

Three references are measured in the same run, the cases interleaved (A B C, A B C, ...) so that a noisy spell falls
on all of them: the full decode + resize (the slow path a plain loader takes), the bare DCT-scaled decode alone with
no resize (the ceiling of any reduced-decode path, per backend), and Pillow's plain full decode with no resize (what
``datasets`` itself pays per image). One thread: OpenCV is set to one thread, as Pillow runs. Bytes are in memory;
each array is freed before the next, as in a training loop.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
from PIL import Image

from .common import Measurement, Results, timed_interleaved

SIZES = (336, 448, 1024)
TARGET_SIZE = 448
MAX_MEAN_ERROR = 2.0  # mean absolute difference, in levels of 0-255
SA1B_SPEEDUP_TARGET = 3.8  # fast path vs full decode + resize, SA-1B-sized, at TARGET_SIZE
CEILING_SLACK = 1.15  # the fast path within this factor of the bare scaled decode
VG_TARGET = 0.9  # fast path vs Pillow's plain full decode, VG-sized


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


def vg_images(count: int) -> list[bytes]:
    from .datagen import vg_jpeg

    return [vg_jpeg(1_000 + number) for number in range(count)]


def _pillow_plain(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def _bare_scaled_decode(backend: str, size: int):
    """The reduced decode alone, as the backend does it for ``size``: the ceiling of its fast path."""
    from svitpipe.training import fast_decode

    def pillow(data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", fast_decode._stored_target(image, size, "longest", 1))
            image.load()

    def opencv(data: bytes) -> None:
        cv2 = fast_decode._opencv()
        with Image.open(io.BytesIO(data)) as header:
            target = fast_decode._stored_target(header, size, "longest", 1)
            factor = fast_decode._draft_factor(header.width, header.height, target)
        fast_decode._opencv_jpeg(cv2, data, factor, gray=False)

    return pillow if backend == "pillow" else opencv


def _mean_error(images: list[bytes], size: int, backend: str) -> dict:
    from svitpipe.training.fast_decode import decode_resized

    errors = []
    for data in images:
        slow = decode_resized(data, size, reduce="none", backend="pillow").astype(np.int16)
        fast = decode_resized(data, size, backend=backend).astype(np.int16)
        errors.append(np.abs(slow - fast))
    return {
        "mean_abs_levels": float(np.mean([e.mean() for e in errors])),
        "p99_abs_levels": float(np.mean([np.percentile(e, 99) for e in errors])),
        "max_abs_levels": int(max(e.max() for e in errors)),
    }


def run(results: Results, images_root: str, count: int, repeats: int) -> None:
    from svitpipe.training import fast_decode
    from svitpipe.training.fast_decode import decode_resized

    backends = fast_decode.available_backends()
    cv2 = fast_decode._opencv()
    if cv2 is not None:
        cv2.setNumThreads(1)
    results.facts["decode/backends"] = {"installed": list(backends), "auto": fast_decode.resolve_backend("auto"),
                                        "opencv": None if cv2 is None else cv2.__version__}
    families = {"sa1b": sa1b_images(images_root, count), "vg": vg_images(max(count * 4, 8))}
    for family, images in families.items():
        section = f"decode/{family}"
        size_bytes = sum(map(len, images))
        with Image.open(io.BytesIO(images[0])) as first:
            results.facts[section] = {"images": len(images), "mean_kb": size_bytes / len(images) / 1e3,
                                      "first_size": first.size}

        def loop(decode, images=images):
            def run_all():
                for data in images:
                    decode(data)
            return run_all

        for size in SIZES:
            cases = {"pillow-plain-full-decode": loop(_pillow_plain),
                     "full-decode+bicubic": loop(lambda d, s=size: decode_resized(d, s, reduce="none",
                                                                                   backend="pillow"))}
            for backend in backends:
                cases[f"{backend}/fast"] = loop(lambda d, s=size, b=backend: decode_resized(d, s, backend=b))
                cases[f"{backend}/bare-scaled-decode"] = loop(_bare_scaled_decode(backend, size))
            timings = timed_interleaved(cases, repeats, warmup=True)
            measured = {name: results.add(section, Measurement(f"{size}/{name}", seconds, len(images), size_bytes,
                                                                name))
                        for name, (seconds, _) in timings.items()}
            full, plain = measured["full-decode+bicubic"], measured["pillow-plain-full-decode"]
            for backend in backends:
                fast, bare = measured[f"{backend}/fast"], measured[f"{backend}/bare-scaled-decode"]
                error = _mean_error(images, size, backend)
                results.facts[f"{section}/{size}/{backend}/pixel-error"] = error
                speedup = results.ratio(f"{section}/{size}/{backend}/fast-vs-full", full.median / fast.median,
                                        of=fast.name, over=full.name, how="medians, interleaved")
                of_ceiling = results.ratio(f"{section}/{size}/{backend}/fast-vs-bare-scaled-decode",
                                           bare.median / fast.median, of=fast.name, over=bare.name,
                                           how="medians, interleaved; 1.0 = the resize and conversion are free")
                vs_plain = results.ratio(f"{section}/{size}/{backend}/fast-vs-pillow-plain-decode",
                                         plain.median / fast.median, of=fast.name, over=plain.name,
                                         how="medians, interleaved")
                if size != TARGET_SIZE:
                    continue
                results.target(f"decode error, {family} at {size} px, {backend}: mean < {MAX_MEAN_ERROR} levels",
                               error["mean_abs_levels"], MAX_MEAN_ERROR, higher_is_better=False, unit=" levels")
                if family == "sa1b":
                    results.target(f"fast decode at {size} px on SA-1B-sized JPEGs, {backend}: "
                                   f">= {SA1B_SPEEDUP_TARGET}x full decode + resize", speedup, SA1B_SPEEDUP_TARGET)
                    results.target(f"fast decode at {size} px, {backend}: within {CEILING_SLACK}x of the bare "
                                   "scaled decode", of_ceiling, 1 / CEILING_SLACK)
                else:
                    results.target(f"fast decode at {size} px on VG-sized JPEGs, {backend}: >= {VG_TARGET} of "
                                   "Pillow's plain full decode", vs_plain, VG_TARGET)
