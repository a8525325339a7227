"""Reference-mode SA-1B rows + a copy of SA-1B -> the rows of the embed build, byte for byte.

    from datasets import load_dataset
    from svitpipe.sa1b import attach_images

    stream = load_dataset("<org>/svit-internvl", "sa1b-en-multi", split="train", streaming=True)
    rows = attach_images(stream, "/data/sa1b")      # or s3://..., https://...; extracted sa_NNNNNN/ folders too

``attach_images`` wraps a ``Dataset`` or ``IterableDataset``; ``AttachImages`` is the same join as a batched
``.map()`` transform (``ds.map(AttachImages(src), batched=True, remove_columns=ds.column_names,
features=attach.output_features(ds.features))``), whose ``ledger`` counts the rows it read, wrote and skipped in the
process that runs it (under ``split_dataset_by_node`` or DataLoader workers, each copy counts its own rows).

Each image is read at its offset in its tar (``image_source``), its size taken from its header, and the row gets
exactly what the embed build writes: the image and its path, the real sizes, and, where the reference row carried
declared sizes that are not the real ones, those declared keys added to ``upstream_extra`` (the reference build,
without the images, could not know). A row whose tar or member is missing, whose tar is damaged there, or whose image
is corrupt follows ``on_bad_record``: ``"raise"`` names the tar and member; ``"skip"`` drops the row and counts it.
"""

from __future__ import annotations

import json
from typing import Optional, Union

import datasets
from datasets.download.download_config import DownloadConfig

from ..bad_records import CORRUPT_IMAGE, DECLARED_SIZE_MISMATCH, BadRecordLedger, BadRecordPolicy
from ..features import sa1b_features
from ..image_checks import CorruptImage, ImageCheck, inspect_image
from .image_source import ImageNotAvailable, SA1BImageSource

_SINGLE_COLUMNS = ("image_ref", "width", "height")
_MULTI_COLUMNS = ("image_refs", "widths", "heights")


def is_multi_image(column_names) -> bool:
    """Whether reference rows with these columns are multi-image (``image_refs``) or single-image (``image_ref``);
    ValueError for rows that are not reference-mode SA-1B rows."""
    names = set(column_names or ())
    if set(_MULTI_COLUMNS) <= names:
        return True
    if set(_SINGLE_COLUMNS) <= names:
        return False
    raise ValueError(
        f"expected reference-mode SA-1B rows (an 'image_ref' or 'image_refs' column), got columns {sorted(names)}"
    )


def output_features(input_features: datasets.Features) -> datasets.Features:
    """The features of the joined rows: those of the embed build of the same config."""
    return sa1b_features(is_multi_image(input_features))


class AttachImages:
    """The join as a batched ``.map()`` transform: reference rows in, embed rows out (fewer under ``"skip"``).

    Args:
        sa1b_images_source: a folder or fsspec URL holding ``sa_NNNNNN.tar`` files or extracted ``sa_NNNNNN/``
            folders.
        on_bad_record: ``"raise"`` or ``"skip"`` (counted in ``ledger``).
        image_check: ``"header"`` or ``"decode"``, as for the build (``image_checks``).
        index_dir: where tar member indexes are cached (default: under the ``datasets`` cache).
        max_open_files: tar files kept open at once per process.
        storage_options: fsspec options for a remote source (credentials, endpoint).
    """

    def __init__(
        self,
        sa1b_images_source: str,
        *,
        on_bad_record: BadRecordPolicy = "raise",
        image_check: ImageCheck = "header",
        index_dir: Optional[str] = None,
        max_open_files: int = 16,
        storage_options: Optional[dict] = None,
    ):
        download_config = DownloadConfig(storage_options=storage_options) if storage_options else None
        self.source = SA1BImageSource(sa1b_images_source, index_dir, max_open_files, download_config)
        self.image_check = image_check
        self.ledger = BadRecordLedger(policy=on_bad_record)

    def __call__(self, batch: dict) -> dict:
        if not isinstance(batch.get("id"), list):
            raise TypeError("AttachImages is a batched transform: use .map(transform, batched=True, ...)")
        multi_image = is_multi_image(batch)
        names = list(output_features_names(multi_image))
        out = {name: [] for name in names}
        for index in range(len(batch["id"])):
            row = {key: values[index] for key, values in batch.items()}
            self.ledger.records_read += 1
            joined = self.join(row, multi_image)
            if joined is None:
                continue
            self.ledger.examples_written += 1
            for name in names:
                out[name].append(joined[name])
        return out

    def join(self, row: dict, multi_image: bool) -> Optional[dict]:
        """One reference row -> its embed row, or None when it is skipped (``ledger``)."""
        refs = row["image_refs"] if multi_image else [row["image_ref"]]
        location = f"row id {row['id']}"
        images, real = [], []
        for ref in refs:
            try:
                data = self.source.read(ref["tar"], ref["member"])
                size = inspect_image(data, self.image_check)
            except ImageNotAvailable as err:
                self.ledger.bad(self.source.root, location, err.reason, err.detail)
                return None
            except CorruptImage as err:
                self.ledger.bad(self.source.root, location, CORRUPT_IMAGE, f"{ref['path']}: {err}")
                return None
            images.append({"bytes": data, "path": ref["path"]})
            real.append(size)
        stated = list(zip(row["widths"], row["heights"])) if multi_image else [(row["width"], row["height"])]
        extra = row["upstream_extra"]
        if all(None not in size for size in stated) and [tuple(size) for size in stated] != real:
            declared = (
                {"width_list": list(row["widths"]), "height_list": list(row["heights"])} if multi_image
                else {"width": row["width"], "height": row["height"]}
            )
            merged = json.loads(extra) if extra else {}
            merged.update(declared)
            extra = json.dumps(merged, ensure_ascii=False)
            self.ledger.flag(self.source.root, location, DECLARED_SIZE_MISMATCH, f"declared {stated}, real sizes {real}")
        common = {
            "caption": row["caption"],
            "conversations": row["conversations"],
            "source_id": row["source_id"],
            "upstream_extra": extra,
        }
        if multi_image:
            return {
                "id": row["id"],
                "images": images,
                "image_paths": [ref["path"] for ref in refs],
                "widths": [size[0] for size in real],
                "heights": [size[1] for size in real],
                **common,
            }
        return {
            "id": row["id"],
            "image": images[0],
            "image_path": refs[0]["path"],
            "width": real[0][0],
            "height": real[0][1],
            **common,
        }


def output_features_names(multi_image: bool):
    return sa1b_features(multi_image).keys()


def attach_images(
    stream_or_dataset: Union[datasets.Dataset, datasets.IterableDataset],
    sa1b_images_source: str,
    *,
    on_bad_record: BadRecordPolicy = "raise",
    image_check: ImageCheck = "header",
    index_dir: Optional[str] = None,
    max_open_files: int = 16,
    storage_options: Optional[dict] = None,
    batch_size: int = 16,
) -> Union[datasets.Dataset, datasets.IterableDataset]:
    """``stream_or_dataset`` (reference-mode rows of an ``sa1b-*`` config) with its images attached from
    ``sa1b_images_source``: the same type, with the embed build's features (``image``/``images`` as ``Image()``),
    columns, order and values. The options are ``AttachImages``'s; ``batch_size`` rows are joined per call."""
    features = stream_or_dataset.features
    if features is None:
        raise ValueError("attach_images needs rows with known features (load them with load_dataset)")
    transform = AttachImages(
        sa1b_images_source,
        on_bad_record=on_bad_record,
        image_check=image_check,
        index_dir=index_dir,
        max_open_files=max_open_files,
        storage_options=storage_options,
    )
    return stream_or_dataset.map(
        transform,
        batched=True,
        batch_size=batch_size,
        remove_columns=list(features),
        features=output_features(features),
    )
