"""Benchmark inputs: fake upstream files at a chosen size, laid out like the real ones (``svitpipe.testing.fake_upstream``).

* Visual Genome-like JPEGs, 500x375 to 800x600, and SA-1B-like JPEGs, about 1500x2250, with photo-like content
  (smooth colour fields, mid-frequency texture, shapes with soft edges, film grain), so that file sizes and decode
  costs are those of real photos: about 50-150 KB and 0.6-1.0 MB.
* SVIT-like conversations and referring QAs, and InternVL-like captions, with realistic lengths.
* Large annotation files for the memory measurements: a JSON array of ~1 GB (``referring_qa``) over tiny images,
  and a jsonl of ~1 GB over small tars.

Everything is written once per parameter set under ``<work dir>/sources/<key>/`` and reused by later runs (a
``.done`` marker makes an interrupted generation start over). Content depends only on the seeds.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    ZIP_DATE_TIME,
    _tar_bytes,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_captions_source,
    write_svit_source,
)

GENERATOR_VERSION = 4

# --------------------------------------------------------------------------------------------------------------------
# Photo-like JPEGs
# --------------------------------------------------------------------------------------------------------------------


def photo_jpeg(width: int, height: int, seed: int, *, grain: float, quality: int = 90) -> bytes:
    """A JPEG whose content compresses like a photo: smooth colour fields, texture, soft-edged shapes and grain.

    The structure is drawn at half resolution (cheaper) and upscaled; grain is added at full resolution, since it is
    what sets the size of the entropy-coded data, and so the decode cost.
    """
    rng = np.random.default_rng(seed)
    half = (max(2, width // 2), max(2, height // 2))
    base = rng.integers(0, 256, size=(max(2, height // 96), max(2, width // 96), 3), dtype=np.uint8)
    image = Image.fromarray(base).resize(half, Image.Resampling.BICUBIC)
    texture = rng.normal(128, 22, size=(half[1] // 6 + 1, half[0] // 6 + 1, 3)).clip(0, 255).astype(np.uint8)
    texture = Image.fromarray(texture).resize(half, Image.Resampling.BILINEAR)
    image = Image.blend(image, texture, 0.35)
    draw = ImageDraw.Draw(image)
    shapes = random.Random(seed)
    for _ in range(14):
        x1, x2 = sorted(shapes.randrange(half[0]) for _ in range(2))
        y1, y2 = sorted(shapes.randrange(half[1]) for _ in range(2))
        colour = tuple(shapes.randrange(256) for _ in range(3))
        (draw.ellipse if shapes.random() < 0.5 else draw.rectangle)((x1, y1, x2 + 2, y2 + 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.0)).resize((width, height), Image.Resampling.BILINEAR)
    field = _grain_field(grain)
    top = int(rng.integers(0, field.shape[0] - height + 1))
    left = int(rng.integers(0, field.shape[1] - width + 1))
    pixels = np.asarray(image, dtype=np.int16) + field[top : top + height, left : left + width, None]
    out = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=quality)
    return out.getvalue()


_GRAIN: dict = {}
_GRAIN_SIDE = 2600  # larger than any generated image


def _grain_field(grain: float) -> np.ndarray:
    """Gaussian grain (mean 0, sigma ``grain``), made once per process; each image adds a window at a random offset."""
    if grain not in _GRAIN:
        field = Image.effect_noise((_GRAIN_SIDE, _GRAIN_SIDE), grain)
        _GRAIN[grain] = np.asarray(field, dtype=np.int16) - 128
    return _GRAIN[grain]


def vg_jpeg(image_id: int) -> bytes:
    """A Visual Genome-like image: 500x375 to 800x600, landscape or portrait."""
    rng = random.Random(image_id * 7919)
    long_side = rng.randrange(500, 801)
    short_side = int(long_side * 0.75)
    width, height = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
    return photo_jpeg(width, height, image_id, grain=6.0)


def sa1b_jpeg(image_number: int) -> bytes:
    """An SA-1B-like image: about 1500x2250 (either orientation), 0.6-1.0 MB."""
    rng = random.Random(image_number * 104729)
    width, height = (1500, 2250) if rng.random() < 0.5 else (2250, 1500)
    width += rng.randrange(-60, 61) * 2
    height += rng.randrange(-60, 61) * 2
    return photo_jpeg(width, height, 10_000_000 + image_number, grain=5.0)


# --------------------------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------------------------

ADJECTIVES = (
    "red wooden large small old shiny striped white black green narrow tall round dusty bright wet folded open "
    "empty crowded distant blue yellow grey metal glass leather plastic paper stone brick"
).split()
NOUNS = (
    "table chair window car bus bicycle dog cat man woman child tree building sign umbrella plate cup bottle lamp "
    "shelf door fence bench boat train clock horse kite skateboard laptop phone bag hat jacket street field wall "
    "roof bridge river mountain cloud sofa bed pillow curtain"
).split()
VERBS = "stands sits rests leans hangs lies waits shines moves stays".split()
PLACES = (
    "next to the entrance|near the far wall|in the middle of the street|on the left side of the picture|"
    "under the tree|behind the fence|close to the water|on top of the shelf|beside the window|in the background"
).split("|")
QUESTIONS = (
    "What is {r} used for?|Where is {r} in relation to {r2}?|What colour is {r}?|Is {r} close to {r2}?|"
    "What is happening around {r}?|How many objects are next to {r}?|What is {r} made of?|"
    "Why might {r} be placed here?|Describe {r}.|What is the person near {r} doing?"
).split("|")
CAPTION_PROMPTS = (
    "<image>\nDescribe this image in detail.",
    "<image>\nWrite a detailed description of the picture.",
    "<image>\nWhat is shown in this image? Answer with a thorough description.",
)


def _sentence(rng: random.Random) -> str:
    a, n, v, p = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS), rng.choice(PLACES)
    tail = rng.choice(("", f", while a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} {rng.choice(PLACES)}"))
    return f"The {a} {n} {v} {p}{tail}."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences))


def _box(rng: random.Random) -> str:
    x1, x2 = sorted(round(rng.random(), 2) for _ in range(2))
    y1, y2 = sorted(round(rng.random(), 2) for _ in range(2))
    return f"[{x1}, {y1}, {x2}, {y2}]"


def _reference(rng: random.Random) -> str:
    boxes = ", ".join(_box(rng) for _ in range(1 if rng.random() < 0.8 else 2))
    return f"<st>the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}<ed> {boxes}"


def referring_record(image_id: int, qa_pairs: int) -> dict:
    """One SVIT ``referring_qa`` element: QA pairs whose text names objects as ``<st>phrase<ed> [x1, y1, x2, y2]``."""
    rng = random.Random(image_id)
    content = []
    for _ in range(qa_pairs):
        question = rng.choice(QUESTIONS).format(r=_reference(rng), r2=_reference(rng))
        answer = f"{_paragraph(rng, rng.randint(1, 2))} {_reference(rng).capitalize()} is {rng.choice(PLACES)}."
        content += [{"from": "user", "value": question}, {"from": "gpt", "value": answer}]
    return {"image_id": image_id, "conversations": [{"content": content}]}


def caption_line(tar_stem: str, image_number: int, seed: int) -> dict:
    """One InternVL-SA-1B-Caption single-image line with an English caption of about 500-1000 characters."""
    rng = random.Random(seed)
    return {
        "image": f"{tar_stem}/sa_{image_number}.jpg",
        "conversations": [
            {"from": "human", "value": rng.choice(CAPTION_PROMPTS)},
            {"from": "gpt", "value": _paragraph(rng, rng.randint(6, 12))},
        ],
    }


# --------------------------------------------------------------------------------------------------------------------
# Source trees
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much data a run generates.

    Attributes:
        vg_images: Visual Genome-like images (and ``referring_qa`` records) of the SVIT source.
        sa1b_tars: SA-1B-like tars.
        sa1b_images_per_tar: images (and caption lines) per tar.
        memory_mb: size of each large annotation file for the memory measurements.
    """

    vg_images: int
    sa1b_tars: int
    sa1b_images_per_tar: int
    memory_mb: int


def _parallel_map(function, items, workers: int = 2):
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(function, items, chunksize=4)


def prune_stale(work_dir: str) -> list[str]:
    """Remove inputs written by other versions of this generator, and what was built from them."""
    folders = [os.path.join(work_dir, "sources")]
    published = os.path.join(work_dir, "published")
    if os.path.isdir(published):
        folders += [os.path.join(published, family) for family in os.listdir(published)]
    stale = []
    for folder in folders:
        if os.path.isdir(folder):
            stale += [os.path.join(folder, name) for name in os.listdir(folder)
                      if not name.endswith(f"-v{GENERATOR_VERSION}")]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _marked_done(root: str) -> bool:
    return os.path.exists(os.path.join(root, ".done"))


def _mark_done(root: str, facts: dict) -> None:
    with open(os.path.join(root, ".done"), "w") as f:
        json.dump(facts, f, indent=1)


def _fresh(root: str) -> None:
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)


def svit_source(work_dir: str, images: int) -> dict:
    """An SVIT root in the Hub layout: ``data/referring_qa.zip`` plus ``raw/images.zip`` / ``raw/images2.zip``
    (60 % / 40 % of the images, like Visual Genome). Returns facts about it."""
    root = os.path.join(work_dir, "sources", f"svit-{images}-v{GENERATOR_VERSION}")
    if not _marked_done(root):
        _fresh(root)
        ids = list(range(1, images + 1))
        jpegs = dict(zip(ids, _parallel_map(vg_jpeg, ids)))
        records = [referring_record(i, qa_pairs=random.Random(-i).randint(4, 10)) for i in ids]
        first = int(images * 0.6)
        write_svit_source(
            root,
            {"referring_qa": records},
            {
                "VG_100K": {f"{i}.jpg": jpegs[i] for i in ids[:first]},
                "VG_100K_2": {f"{i}.jpg": jpegs[i] for i in ids[first:]},
            },
        )
        sizes = [len(data) for data in jpegs.values()]
        _mark_done(root, {"images": images, "image_bytes": sum(sizes), "min_kb": min(sizes) / 1e3,
                          "max_kb": max(sizes) / 1e3, "records": len(records)})
    return _facts(root)


def sa1b_source(work_dir: str, tars: int, per_tar: int) -> dict:
    """``captions/<en single file>.jsonl`` and ``images/sa_NNNNNN.tar``: ``tars`` tars of ``per_tar`` images (each
    with its small ``.json``, as in SA-1B), one caption line per image."""
    root = os.path.join(work_dir, "sources", f"sa1b-{tars}x{per_tar}-v{GENERATOR_VERSION}")
    if not _marked_done(root):
        _fresh(root)
        numbers = list(range(tars * per_tar))
        lines, sizes = [], []
        os.makedirs(os.path.join(root, "images"))
        for tar in range(tars):
            stem = f"sa_{tar:06d}"
            chunk = numbers[tar * per_tar : (tar + 1) * per_tar]
            members = []
            for number, data in zip(chunk, _parallel_map(sa1b_jpeg, chunk)):
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                members += [(f"sa_{number}.jpg", data), (f"sa_{number}.json", sa1b_annotation_json(number, width, height))]
                lines.append(caption_line(stem, number, seed=number))
                sizes.append(len(data))
            with open(os.path.join(root, "images", f"{stem}.tar"), "wb") as f:
                f.write(_tar_bytes(members))
        write_sa1b_captions_source(os.path.join(root, "captions"), {SA1B_CAPTION_FILES["sa1b-en-single"]: lines})
        _mark_done(root, {"tars": tars, "images": len(numbers), "image_bytes": sum(sizes),
                          "min_kb": min(sizes) / 1e3, "max_kb": max(sizes) / 1e3})
    return _facts(root)


def _facts(root: str) -> dict:
    with open(os.path.join(root, ".done")) as f:
        facts = json.load(f)
    files = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n != ".done"]
    facts.update(root=root, source_files=sorted(files), source_bytes=sum(os.path.getsize(p) for p in files))
    return facts


# --------------------------------------------------------------------------------------------------------------------
# Large annotation files (memory)
# --------------------------------------------------------------------------------------------------------------------

LARGE_QA_PAIRS = 36  # about 9 KB per record: a 1 GB array then has ~110K records, about Visual Genome's 108K images


def _large_array_chunks(target_bytes: int) -> Iterator[tuple[bytes, int]]:
    """``(bytes, records so far)`` pieces of a JSON array of at least ``target_bytes`` of referring records."""
    written, image_id = 1, 0
    yield b"[", 0
    while written < target_bytes:
        image_id += 1
        piece = (b"" if image_id == 1 else b",\n") + json.dumps(referring_record(image_id, LARGE_QA_PAIRS)).encode()
        written += len(piece)
        yield piece, image_id
    yield b"]\n", image_id


def large_svit_source(work_dir: str, megabytes: int) -> dict:
    """An SVIT root with a ~``megabytes`` MB ``data/referring_qa.json`` (extracted layout) whose records have unique
    ids, and tiny images in ``raw/images.zip`` / ``raw/images2.zip`` (60/40, like Visual Genome; one per id)."""
    root = os.path.join(work_dir, "sources", f"svit-large-{megabytes}mb-v{GENERATOR_VERSION}")
    if not _marked_done(root):
        _fresh(root)
        os.makedirs(os.path.join(root, "data"))
        os.makedirs(os.path.join(root, "raw"))
        annotation = os.path.join(root, "data", "referring_qa.json")
        records = 0
        with open(annotation, "wb") as f:
            for piece, records in _large_array_chunks(megabytes * 1_000_000):
                f.write(piece)
        jpeg = draw_jpeg(8, 6, seed=0)
        first = int(records * 0.6)
        for archive, folder, ids in (("images.zip", "VG_100K", range(1, first + 1)),
                                     ("images2.zip", "VG_100K_2", range(first + 1, records + 1))):
            with zipfile.ZipFile(os.path.join(root, "raw", archive), "w") as z:
                for image_id in ids:
                    info = zipfile.ZipInfo(f"{folder}/{image_id}.jpg", date_time=ZIP_DATE_TIME)
                    z.writestr(info, jpeg)
        _mark_done(root, {"records": records, "annotation": annotation,
                          "annotation_bytes": os.path.getsize(annotation)})
    return _facts(root)


LARGE_LINES_PER_TAR = 11_000  # as in SA-1B: about 11K images per tar
LARGE_IMAGES_PER_TAR = 100  # tiny images, each captioned by about 110 lines (only the lines' count and text matter)


def large_sa1b_source(work_dir: str, megabytes: int) -> dict:
    """A ~``megabytes`` MB English single-image captions jsonl, ~11K lines per tar, with small tars of tiny images."""
    root = os.path.join(work_dir, "sources", f"sa1b-large-{megabytes}mb-v{GENERATOR_VERSION}")
    if not _marked_done(root):
        _fresh(root)
        captions = os.path.join(root, "captions")
        images = os.path.join(root, "images")
        os.makedirs(captions)
        os.makedirs(images)
        path = os.path.join(captions, SA1B_CAPTION_FILES["sa1b-en-single"])
        written, line_number, tars = 0, 0, 0
        jpeg = draw_jpeg(8, 6, seed=0)
        with open(path, "wb") as f:
            while written < megabytes * 1_000_000:
                stem = f"sa_{tars:06d}"
                for _ in range(LARGE_LINES_PER_TAR):
                    number = tars * LARGE_IMAGES_PER_TAR + line_number % LARGE_IMAGES_PER_TAR
                    line = json.dumps(caption_line(stem, number, seed=line_number)).encode() + b"\n"
                    f.write(line)
                    written += len(line)
                    line_number += 1
                members = []
                for number in range(tars * LARGE_IMAGES_PER_TAR, (tars + 1) * LARGE_IMAGES_PER_TAR):
                    members += [(f"sa_{number}.jpg", jpeg), (f"sa_{number}.json", sa1b_annotation_json(number, 8, 6))]
                with open(os.path.join(images, f"{stem}.tar"), "wb") as tar_file:
                    tar_file.write(_tar_bytes(members))
                tars += 1
        _mark_done(root, {"lines": line_number, "tars": tars, "captions": path, "captions_bytes": os.path.getsize(path)})
    return _facts(root)


def describe(sizes: Sizes) -> dict:
    return asdict(sizes)
