"""``svit-internvl preview``: the page of a built folder, written to ``--out``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from datasets.utils import logging

from ..features import CONFIGS
from .folder import open_built_folder
from .plots import histogram_svg
from .render import BOX_FORMS, page_html, section_html
from .scan import ConfigScan, scan_config
from .thumbnails import Thumbnail, write_thumbnail

__all__ = ["DEFAULT_ROWS", "build_preview", "main"]

logger = logging.get_logger(__name__)

DEFAULT_ROWS = 12
PAGE_FILE = "index.html"
THUMBNAIL_DIR = "thumbnails"


def _image_values(row: dict, multi_image: bool) -> list[tuple[str, Optional[bytes]]]:
    """``[(path shown, bytes), ...]`` of a row's images."""
    if multi_image:
        return [(path, (image or {}).get("bytes")) for path, image in zip(row["image_paths"], row["images"])]
    image = row.get("image") or {}
    return [(row.get("image_path") or image.get("path") or "", image.get("bytes"))]


def _thumbnails(scan: ConfigScan, out_dir: str) -> list[list[tuple[str, Optional[Thumbnail]]]]:
    multi_image = CONFIGS[scan.config.name].multi_image
    found = []
    for index, row in enumerate(scan.sample):
        thumbs = []
        for number, (path, data) in enumerate(_image_values(row.values, multi_image)):
            relative = f"{THUMBNAIL_DIR}/{scan.config.name}/{index:04d}-{number}.jpg"
            thumbs.append((path, write_thumbnail(data, out_dir, relative) if data else None))
        found.append(thumbs)
    return found


def build_preview(data: str, out_dir: str, configs: Optional[list[str]] = None, rows: int = DEFAULT_ROWS,
                  seed: int = 0, box_form: str = "as-written") -> dict:
    """Write ``out_dir/index.html`` and its thumbnails for ``data`` (a built folder or a Hub repo); return what was
    written: per config the rows read, sampled and thumbnails written."""
    if box_form not in BOX_FORMS:
        raise ValueError(f"box_form must be one of {BOX_FORMS}, got {box_form!r}")
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    folder = open_built_folder(data, configs)
    os.makedirs(out_dir, exist_ok=True)
    sections, summary = [], {}
    for name, config in folder.configs.items():
        logger.info(f"preview: reading {name} ({len(config.shards)} shards)")
        scan = scan_config(folder, config, rows, seed)
        thumbnails = _thumbnails(scan, out_dir)
        plots = [histogram_svg(histogram, salt=f"{name}-{histogram.name}") for histogram in scan.histograms]
        sections.append(section_html(scan, plots, thumbnails, box_form))
        summary[name] = {
            "rows_read": scan.rows_read,
            "sampled": len(scan.sample),
            "thumbnails": sum(1 for thumbs in thumbnails for _, thumb in thumbs if thumb is not None),
            "row_groups_read_for_images": scan.row_groups_read_for_images,
        }
    page = page_html(data, sections, list(folder.configs), rows, seed, box_form)
    with open(os.path.join(out_dir, PAGE_FILE), "w", encoding="utf-8") as file:
        file.write(page)
    return {"page": os.path.join(out_dir, PAGE_FILE), "configs": summary}


def main(argv: Optional[list[str]] = None, prog: str = "python -m svitpipe.preview") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write a static preview page of a built folder (or Hub repo): per config the build's numbers, "
        "histograms and a seeded sample of rows with their images, boxes drawn on referring.",
    )
    parser.add_argument("--data", required=True, help="folder built by upload.py, or a Hub dataset repo id or URL")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="configs to show (default: all built)")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"rows sampled per config ({DEFAULT_ROWS})")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (0)")
    parser.add_argument("--box-form", choices=BOX_FORMS, default="as-written",
                        help="draw boxes as written (0-1 of the image) or in LLaVA-v1.5's padded square")
    parser.add_argument("--out", required=True, help="output folder: index.html and thumbnails/")
    args = parser.parse_args(argv)
    try:
        written = build_preview(args.data, args.out, args.configs, args.rows, args.seed, args.box_form)
    except (FileNotFoundError, ValueError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(written))
    return 0
