"""The dataset card (``README.md``) and ``dataset_infos.json`` of a published folder, from one source of truth.

``published_infos`` makes one ``datasets.DatasetInfo`` per built config (features, split counts and sizes);
``dataset_infos.json`` is those infos as JSON and the card's ``dataset_info`` YAML is the same infos written by
``datasets``' own ``DatasetInfosDict.to_dataset_card_data``, so the two cannot disagree. ``project_infos`` is the
part known without building (descriptions, features, licences, citations): the project's top-level
``dataset_infos.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..builder import SVITInternVL
from ..features import (
    CONFIGS,
    DEFAULT_CONFIG,
    SA1B_CAPTION_HOMEPAGE,
    SA1B_CITATION,
    SA1B_HOMEPAGE,
    SVIT_CITATION,
    SVIT_HOMEPAGE,
    config_info,
)
from .parquet_layout import VIEWER_ROW_GROUP_BYTES_LIMIT, ParquetLayout
from .units import MIN_PARALLEL_SHARDS, SHARD_MULTIPLE, SPLIT, ConfigBuild

MIN_DATASETS_VERSION = "4.0.0"
DATASET_INFOS_FILE = "dataset_infos.json"
CARD_FILE = "README.md"
SA1B_LICENSE_NAME = "sa-1b-dataset-research-license"
SA1B_LICENSE_LINK = "https://ai.meta.com/datasets/segment-anything-downloads/"


def project_infos() -> dict:
    """The project's top-level ``dataset_infos.json``: every config's info as the builder declares it, no counts."""
    infos = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for name in CONFIGS:
            infos[name] = _info_dict(SVITInternVL(config_name=name, cache_dir=cache_dir).info)
    return infos


# The key in dataset_infos.json that carries a config's build report (datasets reads only DatasetInfo's own fields).
REPORT_KEY = "svit_internvl_report"


def build_report(build: ConfigBuild) -> dict:
    """What the build of one config found: records read, rows, counted skips and flags by kind, failed units."""
    ledger = build.ledger
    report = {
        "records_read": ledger.records_read,
        "rows": build.num_rows,
        "skipped": dict(sorted(ledger.skipped.items())),
        "flagged": dict(sorted(ledger.flagged.items())),
        "failed_units": list(build.failed_units),
    }
    if build.sa1b_images == "reference":
        report["sa1b_images"] = "reference"  # no image bytes: image_ref(s) instead
    return report


def published_infos(builds: dict[str, ConfigBuild]) -> DatasetInfosDict:
    infos = DatasetInfosDict()
    for name, build in builds.items():
        info = config_info(name, build.sa1b_images)
        info.config_name = name
        info.splits = SplitDict(
            {SPLIT: SplitInfo(name=SPLIT, num_bytes=build.arrow_bytes, num_examples=build.num_rows, dataset_name="svit_internvl")}
        )
        info.download_size = build.num_bytes
        info.dataset_size = build.arrow_bytes
        infos[name] = info
    return infos


def _info_dict(info: DatasetInfo) -> dict:
    data = asdict(info)
    return {key: value for key, value in data.items() if value not in (None, {}, [], "")}


def write_dataset_infos(path: str, infos: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(infos, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, label in bounds:
        if rows < bound:
            return label
    return "100M<n<1B"


def card_data(builds: dict[str, ConfigBuild], infos: DatasetInfosDict) -> DatasetCardData:
    families = {CONFIGS[name].family for name in builds}
    licenses = (["cc-by-4.0"] if "svit" in families else []) + (["mit", "other"] if "sa1b" in families else [])
    data = DatasetCardData(
        pretty_name="SVIT and InternVL-SA-1B-Caption",
        license=licenses,
        language=["en", "zh"],
        task_categories=["image-text-to-text", "visual-question-answering", "image-to-text"],
        size_categories=[_size_category(sum(build.num_rows for build in builds.values()))],
        tags=["visual-instruction-tuning", "referring-expressions", "grounding", "image-captioning", "multimodal"],
    )
    if "sa1b" in families:
        data["license_name"] = SA1B_LICENSE_NAME
        data["license_link"] = SA1B_LICENSE_LINK
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in builds else next(iter(builds))
    MetadataConfigs(
        {
            name: {
                "data_files": [{"split": SPLIT, "path": f"data/{name}/{SPLIT}-*.parquet"}],
                **({"default": True} if name == default else {}),
            }
            for name in builds
        }
    ).to_dataset_card_data(data)
    infos.to_dataset_card_data(data)
    return data


def write_card(
    folder: str, builds: dict[str, ConfigBuild], *, repo_id: str, sa1b_redistribution: str, layout: ParquetLayout
) -> DatasetCard:
    """Write ``README.md`` and ``dataset_infos.json`` for the built configs (written with ``layout``); return the
    card."""
    infos = published_infos(builds)
    write_dataset_infos(
        os.path.join(folder, DATASET_INFOS_FILE),
        {name: {**_info_dict(info), REPORT_KEY: build_report(builds[name])} for name, info in infos.items()},
    )
    data = card_data(builds, infos)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n{card_body(CardFacts(builds, repo_id, sa1b_redistribution, layout))}")
    card.save(os.path.join(folder, CARD_FILE))
    return card


def human_bytes(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


@dataclass(frozen=True)
class CardFacts:
    """What the card says, from the build itself.

    Attributes:
        builds: the built configs, in card order.
        repo_id: the repo named in the loading snippets.
        sa1b_redistribution: the sentence on whether this folder may carry SA-1B images.
        layout: how the shards were written.
    """

    builds: dict
    repo_id: str
    sa1b_redistribution: str
    layout: ParquetLayout

    @property
    def has_svit(self) -> bool:
        return any(CONFIGS[name].family == "svit" for name in self.builds)

    @property
    def has_sa1b(self) -> bool:
        return any(CONFIGS[name].family == "sa1b" for name in self.builds)

    @property
    def sa1b_references(self) -> list[str]:
        """The sa1b-* configs built without image bytes (``sa1b_images="reference"``)."""
        return [name for name, build in self.builds.items() if build.sa1b_images == "reference"]

    @property
    def default(self) -> str:
        return DEFAULT_CONFIG if DEFAULT_CONFIG in self.builds else next(iter(self.builds))


def card_body(facts: CardFacts) -> str:
    sections = (_title, _configs, _loading, _attaching, _training, _schema, _provenance, _how_made, _citation)
    return "\n".join(line for section in sections for line in section(facts))


def _title(facts: CardFacts) -> list[str]:
    return [
        "# SVIT and InternVL-SA-1B-Caption, typed and ready to stream",
        "",
        "Two visual-instruction datasets as Parquet shards with typed `Image` features, made by the svit-internvl "
        "builder: the images are stored inside the shards, byte for byte as published upstream (never re-encoded), "
        "and every upstream string is kept byte for byte."
        + (" The SA-1B configs here are the exception: they name their images instead of holding them (see "
           "*SA-1B images* below)." if facts.sa1b_references else ""),
        "",
    ]


def _configs(facts: CardFacts) -> list[str]:
    rows = [
        f"| `{name}` | {CONFIGS[name].description} | {build.num_rows:,} | {len(build.shards)} | "
        f"{human_bytes(build.num_bytes)} | {build.ledger.total_skipped:,} | {sum(build.ledger.flagged.values()):,} |"
        for name, build in facts.builds.items()
    ]
    lines = [
        "## Configs",
        "",
        "| config | content | rows | shards | size | skipped records | flagged |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"The default config is `{facts.default}`. Skipped records are upstream records that could not become a row "
        "(the build counts every one with its reason; nothing is dropped silently). Flagged counts are problems in "
        "what the project derives from the upstream text (parsed references, sizes, ids, undeclared keys): the row is "
        "kept as written and carries the problem (`reference_issues`, `upstream_extra`). The counts by kind are also "
        f"in `dataset_infos.json` (`{REPORT_KEY}`).",
    ]
    counted = [
        f"- `{name}`: " + "; ".join(
            f"{label} " + ", ".join(f"{reason}: {count:,}" for reason, count in sorted(counter.items()))
            for label, counter in (("skipped", build.ledger.skipped), ("flagged", build.ledger.flagged)) if counter
        )
        for name, build in facts.builds.items()
        if build.ledger.skipped or build.ledger.flagged
    ]
    if counted:
        lines += ["", *counted]
    incomplete = [
        f"- `{name}`: {', '.join(build.failed_units)}" for name, build in facts.builds.items() if build.failed_units
    ]
    if incomplete:
        lines += ["", "**Incomplete build.** These units of work failed and their rows are missing:", "", *incomplete]
    return [*lines, ""]


def _loading(facts: CardFacts) -> list[str]:
    repo_id, default = facts.repo_id, facts.default
    return [
        "## Loading",
        "",
        f"Needs `datasets` >= {MIN_DATASETS_VERSION} (features use `List`; this repository holds no loading script).",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo_id}", "{default}", split="train")',
        f'stream = load_dataset("{repo_id}", "{default}", split="train", streaming=True)',
        "for row in stream.shuffle(seed=0, buffer_size=1_000).take(2):",
        '    print(row["id"], row["conversations"][0]["content"][0]["value"][:80])' if facts.has_svit else
        '    print(row["id"], row["caption"][:80])',
        "```",
        "",
    ]


def _attaching(facts: CardFacts) -> list[str]:
    """Reference-mode sa1b-* configs: what they hold and how to get the rows with images."""
    if not facts.sa1b_references:
        return []
    names = ", ".join(f"`{name}`" for name in facts.sa1b_references)
    example = facts.sa1b_references[0]
    return [
        "### SA-1B images",
        "",
        f"{names} hold no SA-1B images (SA-1B's licence does not allow redistributing them). Instead of `image` "
        "(`images`) each row has `image_ref` (`image_refs`): `{tar, member, path}`, e.g. `{tar: \"sa_000123\", "
        "member: \"sa_4567.jpg\", path: \"sa_000123/sa_4567.jpg\"}`, and `width`, `height` where they were known "
        "without the images (null otherwise). Download SA-1B from Meta, then attach the images (a folder or any "
        "fsspec URL of `sa_NNNNNN.tar` files or extracted `sa_NNNNNN/` folders); the result equals, row for row "
        "and byte for byte, the same config built with the images:",
        "",
        "```python",
        "from svitpipe.sa1b import attach_images  # pip install the svit-internvl project",
        "",
        f'rows = attach_images(load_dataset("{facts.repo_id}", "{example}", split="train", streaming=True), '
        '"/data/sa1b")',
        "```",
        "",
        "Rows of a tar are in tar order, so the join reads each tar front to back (by member offset, from an index "
        "of the tar's headers built once and cached).",
        "",
    ]


def _training(facts: CardFacts) -> list[str]:
    nodes = ", ".join(str(count) for count in _divisors(SHARD_MULTIPLE)[:-1]) + f" or {SHARD_MULTIPLE}"
    return [
        "### Training",
        "",
        f"Every config has a shard count that splits evenly: at least {MIN_PARALLEL_SHARDS} shards once a config has "
        f"a few thousand rows, and a multiple of {SHARD_MULTIPLE} wherever the rows allow, so `split_dataset_by_node` "
        f"hands whole shards to {nodes} nodes (otherwise every node reads everything and skips), and DataLoader "
        "workers get whole shards.",
        "",
        "```python",
        "import torch",
        "from datasets import load_dataset",
        "from datasets.distributed import split_dataset_by_node",
        "",
        f'stream = load_dataset("{facts.repo_id}", "{facts.default}", split="train", streaming=True)',
        "stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)",
        "stream = stream.shuffle(seed=42, buffer_size=1_000)",
        "# Workers send lists of 8 rows: one transfer per list, not per row; collate them in the loop.",
        "loader = torch.utils.data.DataLoader(stream, num_workers=4, batch_size=8, collate_fn=list)",
        "for epoch in range(epochs):",
        "    stream.set_epoch(epoch)  # a new shard order and buffer shuffle each epoch",
        "    for rows in loader:",
        "        ...",
        "```",
        "",
        "`stream.state_dict()` / `stream.load_state_dict(state)` resume a stream mid-epoch; without shuffle the "
        "resumed stream continues exactly where it stopped. With a shuffle buffer, the rows that were in the buffer "
        "when the state was taken are not restored: up to `buffer_size` rows can be lost and some repeated.",
        "",
        "The svit-internvl package (`pip install` a checkout or wheel of the project) also ships helpers that work "
        "on these rows with "
        "`.map()`: chat `messages` for `apply_chat_template` / TRL (`svitpipe.training.chat_format`), exports that "
        "LLaVA, LLaVA-OneVision and InternVL trainers read (`svitpipe.training.export`), box conversions to pixels, 0-1000 integers or LLaVA's padded "
        "square (`svitpipe.training.boxes`), and a fast reduced-size JPEG decode for workers "
        "(`svitpipe.training.fast_decode.DecodeTransform`).",
        "",
    ]


def _divisors(number: int) -> list[int]:
    return [divisor for divisor in range(1, number + 1) if number % divisor == 0]


def _schema(facts: CardFacts) -> list[str]:
    lines = ["## Schema", ""]
    if facts.has_svit:
        lines += [
            "SVIT configs, one row per Visual Genome image:",
            "",
            "- `id` (string): the image id as text, unique in the config; `image_id` (int64): the Visual Genome id.",
            "- `image` (`Image`): the original JPEG; `width`, `height` (int32): its size in pixels as decoded (EXIF "
            "orientation applied).",
            "- `conversations`: list of `{content: list of {from, value}}`; `from` is upstream's role (`user` or "
            "`gpt`). The `conversation` config adds a per-conversation `topic` (null where upstream has none).",
            "- `referring` only: every turn also has `regions`, the references parsed from its text, in order: "
            "`{phrase, boxes, start, end}`, where `text[start:end]` is the whole reference `<st>phrase<ed> [..]`; "
            "boxes are as written, whatever their values. `reference_issues` lists what did not parse or is out of "
            "the box rules: `{start, end, kind, detail}` with `kind` `unparsed`, `out-of-range` or `inverted` "
            "(empty on a clean turn).",
            "- `upstream_extra` (string): keys upstream wrote that the schema does not declare, as a JSON object from "
            "each key's path (`topic`, `conversations[2].source`) to its value; null when there are none. Several "
            "upstream records for one image are one row, their conversations in file order.",
            "",
            "### Boxes",
            "",
            "Boxes are `[x1, y1, x2, y2]`, top-left and bottom-right corners, as floats in [0, 1] normalised by the "
            "original image's width (x) and height (y); in `regions` they are moved into the decoded image's frame where "
            "its EXIF orientation turns it (the text keeps them as written). Pixels: `x * width`, `y * height`. LLaVA-v1.5's variant "
            "expresses them relative to the image padded to a square: with `w, h = width, height` and "
            "`s = max(w, h)`, take pixels `round(x * w)`, `round(y * h)`, add `(s - w) // 2` to x or `(s - h) // 2` "
            "to y (the shorter side is centred), divide by `s` and round to 3 decimals.",
            "",
        ]
    if facts.has_sa1b:
        lines += [
            "SA-1B configs, one row per caption line of the upstream jsonl file:",
            "",
            "- `id` (string): the line number in the upstream file (1-based); `source_id`: upstream `id` if any.",
            "- single-image: `image` (`Image`), `image_path` (upstream `sa_NNNNNN/sa_K.jpg`), `width`, `height`.",
            "- multi-image: `images` (list of `Image`), `image_paths`, `widths`, `heights`, in upstream order.",
            "- `caption` (string): the `gpt` turn (null when a line has not exactly one); `conversations`: list of "
            "`{from, value}` as upstream, every turn (`<image>` placeholders included).",
            "- `upstream_extra` (string): undeclared keys of the line as a JSON object (path -> value), and declared "
            "`width`/`height` that differ from the real image; null when there are none.",
            "",
        ]
        if facts.sa1b_references:
            lines += [
                "Configs built without images (" + ", ".join(f"`{n}`" for n in facts.sa1b_references) + ") have "
                "`image_ref` (`{tar, member, path}`) in place of `image` and `image_path` (multi-image: `image_refs`, "
                "in place of `images` and `image_paths`); `width`, `height` (`widths`, `heights`) are the real sizes "
                "when the build had the images, the declared ones otherwise, or null; `attach_images` sets them as "
                "above.",
                "",
            ]
    return lines


def _provenance(facts: CardFacts) -> list[str]:
    lines = ["## Provenance and licences", ""]
    if facts.has_svit:
        lines += [
            f"- SVIT ({SVIT_HOMEPAGE}): conversations, complex reasoning, referring QAs and detail descriptions "
            "written by GPT-4 from Visual Genome's human annotations. Licence: CC BY 4.0; as GPT-4 output, use must "
            "also follow OpenAI's terms of use.",
            "- Visual Genome images: CC BY 4.0. Some are MS-COCO images, under COCO's own terms. SVIT's images "
            "overlap with LLaVA-Instruct-150K through COCO: mind it when mixing datasets.",
            "- Known upstream issue kept as is: a few detail descriptions (21 upstream) answer with an apology that "
            "the message was empty.",
        ]
    if facts.has_sa1b:
        lines += [
            f"- InternVL-SA-1B-Caption ({SA1B_CAPTION_HOMEPAGE}): captions by the InternVL team. Licence: MIT.",
            f"- SA-1B images ({SA1B_HOMEPAGE}): Meta's SA-1B Dataset Research License, research use only; it does "
            "not allow redistributing the images. " + facts.sa1b_redistribution,
        ]
    return [*lines, ""]


def _how_made(facts: CardFacts) -> list[str]:
    layout = facts.layout
    images = (
        f"image bytes compressed with {layout.text_compression}" if layout.compress_images
        else "image bytes stored uncompressed (JPEG does not compress)"
    )
    dedup = (
        "page index and content-defined chunking so the Hub's Xet storage deduplicates unchanged pages across "
        "re-uploads and identical images across configs" if layout.content_defined_chunking
        else "page index; image bytes stored as they are, so the Hub's Xet storage deduplicates identical images "
        "across configs and re-uploads"
    )
    return [
        "## How this was made",
        "",
        "With the svit-internvl project's `upload.py`, from the upstream files, streamed record by record. Parquet "
        f"layout: row groups of at most {layout.rows_per_row_group} rows and at most "
        f"{layout.max_row_group_bytes:,} bytes uncompressed (whichever comes first; the Dataset Viewer reads up to "
        f"{VIEWER_ROW_GROUP_BYTES_LIMIT:,} at once), {images} and text compressed with "
        f"{layout.text_compression}, {dedup}.",
        "",
        image_checks_statement(),
        "",
    ]


def image_checks_statement() -> str:
    """What every published image passed (``image_checks``), with the pixel limit of the Pillow that checked it."""
    import PIL.Image

    limit = PIL.Image.MAX_IMAGE_PIXELS
    bound = f"more than {limit:,} pixels (Pillow's decompression-bomb limit, `PIL.Image.MAX_IMAGE_PIXELS`)" \
        if limit is not None else "no pixel limit (Pillow's was disabled)"
    return (
        "Every image is a whole JPEG, PNG, GIF, WebP, BMP or TIFF file (its container checked to the end, not "
        f"decoded, unless built with `--image-check decode`); images declaring {bound} were refused by their size "
        "without decoding and counted under `image-too-large`. `width` and `height` (and SVIT regions) describe "
        "the image as `datasets.Image` decodes it, EXIF orientation applied."
    )


def _citation(facts: CardFacts) -> list[str]:
    citations = [text for text, wanted in ((SVIT_CITATION, facts.has_svit), (SA1B_CITATION, facts.has_sa1b)) if wanted]
    return ["## Citation", "", "```bibtex", "\n".join(citations), "```", ""]
