"""Write small, fake copies of the upstream files, laid out like the real ones.

The functions here produce byte-deterministic fake data in the spirit of
TensorFlow Datasets' "fake examples": the same arguments always give the same
bytes.  They know only about *layout* (which file goes where, how it is
packed); the content is supplied by the caller.  ``scripts/make_sample.py``
uses them to write the project's bundled sample, and tests use them to write
broken variants (malformed JSON, missing images, corrupt JPEGs, ...).

Layouts written:

SVIT (Hub repo ``BAAI/SVIT``)::

    root/data/<stem>.zip          -> one member <stem>.json (a JSON array)
    root/raw/images.zip           -> VG_100K/<image_id>.jpg
    root/raw/images2.zip          -> VG_100K_2/<image_id>.jpg

  or, with ``extracted=True``::

    root/data/<stem>.json
    root/raw/VG_100K/<image_id>.jpg
    root/raw/VG_100K_2/<image_id>.jpg

InternVL-SA-1B-Caption (Hub repo ``OpenGVLab/InternVL-SA-1B-Caption``)::

    root/<file name>.jsonl        (see SA1B_CAPTION_FILES)

SA-1B image tars (Meta)::

    root/<stem>.tar               -> sa_<n>.jpg, sa_<n>.json, ...

  or, with ``extracted=True``::

    root/<stem>/sa_<n>.jpg, root/<stem>/sa_<n>.json, ...
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import zipfile
from pathlib import Path
from typing import Mapping, Sequence, Union

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "SA1B_CAPTION_FILES",
    "SVIT_ANNOTATION_STEMS",
    "SVIT_IMAGE_ZIPS",
    "ZIP_DATE_TIME",
    "draw_jpeg",
    "sa1b_annotation_json",
    "write_sa1b_captions_source",
    "write_sa1b_images_source",
    "write_svit_source",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Upstream SVIT annotation subsets (file stems under ``data/``).
SVIT_ANNOTATION_STEMS = (
    "conversation",
    "complex_reasoning",
    "detail_description",
    "referring_qa",
)

#: Visual Genome image folder -> upstream zip under ``raw/`` that holds it.
SVIT_IMAGE_ZIPS = {
    "VG_100K": "images.zip",
    "VG_100K_2": "images2.zip",
}

#: Config name -> upstream InternVL-SA-1B-Caption file name.
SA1B_CAPTION_FILES = {
    "sa1b-en-single": "internvl_sa1b_caption_11m_single_image_en.jsonl",
    "sa1b-zh-single": "internvl_sa1b_caption_1m_single_image_zh.jsonl",
    "sa1b-en-multi": "internvl_sa1b_caption_77k_multi_image_en.jsonl",
    "sa1b-zh-multi": "internvl_sa1b_caption_77k_multi_image_zh.jsonl",
}

#: Fixed timestamp stamped on every zip member.
ZIP_DATE_TIME = (2023, 7, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o100644  # regular file, rw-r--r--
_TAR_FILE_MODE = 0o644
_JPEG_QUALITY = 85


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def draw_jpeg(width: int, height: int, seed: int, label: str = "") -> bytes:
    """Return the bytes of a small deterministic JPEG.

    The picture is a plain background with a handful of coloured rectangles,
    ellipses, triangles and lines placed by ``random.Random(seed)``; if
    ``label`` is given it is printed in the top-left corner with Pillow's
    default font on a white strip.  The file is baseline JPEG at quality 85
    with no EXIF or other metadata, so the same arguments always give the
    same bytes (for a given Pillow / libjpeg build).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), _random_colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 6)):
        kind = rng.choice(("rectangle", "ellipse", "triangle", "line"))
        x1, x2 = sorted((rng.randrange(width), rng.randrange(width)))
        y1, y2 = sorted((rng.randrange(height), rng.randrange(height)))
        # Keep every shape at least a few pixels wide so it shows up.
        x2 = min(width - 1, max(x2, x1 + 4))
        y2 = min(height - 1, max(y2, y1 + 4))
        colour = _random_colour(rng)
        if kind == "rectangle":
            draw.rectangle((x1, y1, x2, y2), fill=colour)
        elif kind == "ellipse":
            draw.ellipse((x1, y1, x2, y2), fill=colour)
        elif kind == "triangle":
            draw.polygon([(x1, y2), ((x1 + x2) // 2, y1), (x2, y2)], fill=colour)
        else:
            draw.line((x1, y1, x2, y2), fill=colour, width=rng.randint(1, 4))
    if label:
        font = ImageFont.load_default()
        left, top, right, bottom = draw.textbbox((2, 2), label, font=font)
        draw.rectangle((0, 0, right + 2, bottom + 2), fill=(255, 255, 255))
        draw.text((2, 2), label, fill=(0, 0, 0), font=font)
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="JPEG",
        quality=_JPEG_QUALITY,
        optimize=False,
        progressive=False,
    )
    return buffer.getvalue()


def sa1b_annotation_json(image_id: int, width: int, height: int) -> bytes:
    """Return a tiny SA-1B-style per-image annotation file (UTF-8 JSON bytes).

    Real SA-1B tars hold, next to each ``sa_<n>.jpg``, a ``sa_<n>.json`` with
    an ``image`` header and a list of mask ``annotations``; the fake one has
    the header and no masks.
    """
    record = {
        "image": {
            "image_id": int(image_id),
            "width": int(width),
            "height": int(height),
            "file_name": f"sa_{int(image_id)}.jpg",
        },
        "annotations": [],
    }
    return json.dumps(record).encode("utf-8")


# --------------------------------------------------------------------------
# Deterministic containers
# --------------------------------------------------------------------------


def _check_member_name(name: str) -> None:
    """Refuse names that would escape their folder or are not plain paths."""
    if not name or name.startswith("/") or "\\" in name:
        raise ValueError(f"bad member name: {name!r}")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"bad member name: {name!r}")


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _zip_bytes(members: Sequence[tuple[str, bytes, int]]) -> bytes:
    """Build a zip in memory from ``(name, data, compress_type)`` triples.

    Every member gets the same timestamp, permissions and "created on Unix"
    marker, and members keep the given order, so the output is a pure
    function of the input.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, compress_type in members:
            _check_member_name(name)
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = compress_type
            info.create_system = 3  # Unix
            info.external_attr = _ZIP_FILE_MODE << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """Build an uncompressed USTAR tar in memory, in the given member order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            _check_member_name(name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = _TAR_FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --------------------------------------------------------------------------
# SVIT
# --------------------------------------------------------------------------


def _annotation_bytes(records: Union[list, bytes]) -> bytes:
    if isinstance(records, (bytes, bytearray)):
        return bytes(records)
    if not isinstance(records, list):
        raise TypeError(
            f"annotations must be a list of records or raw bytes, got {type(records).__name__}"
        )
    return json.dumps(records, ensure_ascii=False).encode("utf-8")


def write_svit_source(
    root: PathLike,
    annotations: Mapping[str, Union[list, bytes]],
    images: Mapping[str, Mapping[str, bytes]],
    *,
    extracted: bool = False,
) -> None:
    """Write a fake SVIT source tree under ``root``.

    ``annotations`` maps an upstream subset stem (``conversation``,
    ``complex_reasoning``, ``detail_description``, ``referring_qa``; other
    stems are written too, so tests can add unexpected files) to either a
    list of records, written as one JSON array, or raw bytes written as they
    are (for malformed JSON).  ``images`` maps a Visual Genome folder name
    (``VG_100K`` or ``VG_100K_2``) to ``{file name: JPEG bytes}``; a folder
    missing from ``images`` is not written at all, an empty one gives an
    empty zip (or an empty directory).

    With ``extracted=False`` (the Hub layout) annotations go to
    ``data/<stem>.zip`` (one deflated member ``<stem>.json``) and images to
    ``raw/images.zip`` / ``raw/images2.zip`` (stored members
    ``VG_100K/<name>`` / ``VG_100K_2/<name>``).  With ``extracted=True`` the
    same files are written unpacked: ``data/<stem>.json`` and
    ``raw/<folder>/<name>``.  Members and files keep the order of the given
    mappings.
    """
    root = Path(root)
    for folder in images:
        if folder not in SVIT_IMAGE_ZIPS:
            raise ValueError(
                f"unknown image folder {folder!r}; expected one of {sorted(SVIT_IMAGE_ZIPS)}"
            )

    for stem, records in annotations.items():
        _check_member_name(stem)
        if "/" in stem:
            raise ValueError(f"annotation stem must be a plain name: {stem!r}")
        payload = _annotation_bytes(records)
        if extracted:
            _write_file(root / "data" / f"{stem}.json", payload)
        else:
            _write_file(
                root / "data" / f"{stem}.zip",
                _zip_bytes([(f"{stem}.json", payload, zipfile.ZIP_DEFLATED)]),
            )

    for folder, files in images.items():
        for name in files:
            _check_member_name(name)
            if "/" in name:
                raise ValueError(f"image file name must be a plain name: {name!r}")
        if extracted:
            (root / "raw" / folder).mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                _write_file(root / "raw" / folder / name, data)
        else:
            members = [(f"{folder}/{name}", data, zipfile.ZIP_STORED) for name, data in files.items()]
            _write_file(root / "raw" / SVIT_IMAGE_ZIPS[folder], _zip_bytes(members))


# --------------------------------------------------------------------------
# InternVL-SA-1B-Caption and SA-1B
# --------------------------------------------------------------------------


def write_sa1b_captions_source(
    root: PathLike, files: Mapping[str, Sequence[Union[dict, str]]]
) -> None:
    """Write fake InternVL-SA-1B-Caption JSONL files under ``root``.

    ``files`` maps a file name (normally a value of ``SA1B_CAPTION_FILES``)
    to its lines.  A dict is written as ``json.dumps(line,
    ensure_ascii=False)`` (so Chinese text is stored as raw UTF-8); a str is
    written exactly as given, which lets tests write malformed lines.  Every
    line is followed by ``\\n``.
    """
    root = Path(root)
    for file_name, lines in files.items():
        _check_member_name(file_name)
        chunks = []
        for line in lines:
            if isinstance(line, dict):
                chunks.append(json.dumps(line, ensure_ascii=False))
            elif isinstance(line, str):
                chunks.append(line)
            else:
                raise TypeError(f"a line must be a dict or a str, got {type(line).__name__}")
            chunks.append("\n")
        _write_file(root / file_name, "".join(chunks).encode("utf-8"))


def write_sa1b_images_source(
    root: PathLike,
    tars: Mapping[str, Sequence[tuple[str, bytes]]],
    *,
    extracted: bool = False,
) -> None:
    """Write fake SA-1B image tars under ``root``.

    ``tars`` maps a tar stem (``sa_000000``) to its ordered members, e.g.
    ``[("sa_12.jpg", jpeg), ("sa_12.json", annotation), ...]``.  With
    ``extracted=False`` each becomes ``root/<stem>.tar``: uncompressed USTAR,
    members in the given order, mtime 0, uid/gid 0, empty user/group names,
    mode 0644, so the bytes are deterministic.  With ``extracted=True`` the
    members are written to ``root/<stem>/<member>`` instead.
    """
    root = Path(root)
    for stem, members in tars.items():
        _check_member_name(stem)
        if "/" in stem:
            raise ValueError(f"tar stem must be a plain name: {stem!r}")
        for name, _ in members:
            _check_member_name(name)
        if extracted:
            (root / stem).mkdir(parents=True, exist_ok=True)
            for name, data in members:
                _write_file(root / stem / name, data)
        else:
            _write_file(root / f"{stem}.tar", _tar_bytes(members))
