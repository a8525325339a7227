"""Fast image decoding for training: decode a JPEG straight to (about) the size the model takes.

SA-1B images are about 1500x2250 JPEGs (Visual Genome ones are smaller), while vision encoders take 336-1024 px
inputs. Decoding the full image and then shrinking it is the bottleneck of a streaming loader. libjpeg can instead
decode at 1/2, 1/4 or 1/8 of the size by scaling in the DCT domain, which skips most of the work; Pillow exposes
this as ``Image.draft``. :func:`decode_resized` asks for the largest such reduction that still leaves the image at
least as large as the target in both dimensions, then finishes with an ordinary antialiased ``resize`` to the exact
target size. Other formats (PNG, ...) are decoded in full and resized the same way. Measured once by hand on a
1500x2250 photo-like JPEG at 448 px: about 26 ms for the full decode + resize, about 8 ms with the reduction.

Images are used as stored: no EXIF orientation is applied. The SVIT and SA-1B rows describe the stored pixel grid
(``width``/``height`` columns, the referring boxes normalised to it), and the published bytes are the upstream bytes,
so rotating by an EXIF tag would put every box in the wrong place.

For a loader, cast the image columns to ``datasets.Image(decode=False)`` (:func:`prepare_for_fast_decode`) so that
``datasets`` hands over the undecoded ``{"bytes", "path"}`` dicts, and map :class:`DecodeTransform` over the rows::

    ds = load_dataset("org/svit-internvl", "referring", split="train", streaming=True)
    ds = prepare_for_fast_decode(ds, ["image"]).map(DecodeTransform(448), batched=True, batch_size=16)
    loader = torch.utils.data.DataLoader(ds, num_workers=4, batch_size=8, collate_fn=list)

DataLoader workers then send compact uint8 arrays to the main process, not PIL images or encoded bytes, in lists of
8 rows (one transfer per list rather than per row). A small ``map`` batch keeps few decoded images alive at once
(``datasets``' default of 1000 would hold 1000 arrays per worker). This module
needs only Pillow and numpy; ``output="torch"`` imports torch when the transform is first called.
"""

from __future__ import annotations

import io
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
from PIL import Image

FITS = ("longest", "shortest", "square")
REDUCES = ("draft", "none")
LAYOUTS = ("HWC", "CHW")
OUTPUTS = ("numpy", "torch")

BICUBIC = Image.Resampling.BICUBIC


def target_size(width: int, height: int, size: int, fit: str = "longest") -> tuple[int, int]:
    """The ``(width, height)`` an image of ``width`` x ``height`` is resized to.

    ``"longest"``: the longer side becomes ``size``, aspect ratio kept; ``"shortest"``: the shorter side becomes
    ``size``, aspect ratio kept; ``"square"``: ``size`` x ``size``, aspect ratio not kept. The other side is rounded
    half up and never below 1 px. Images smaller than the target are enlarged.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if width < 1 or height < 1:
        raise ValueError(f"empty image: {width}x{height}")
    if fit == "square":
        return size, size
    longer, shorter = max(width, height), min(width, height)
    side = longer if fit == "longest" else shorter
    scale = size / side
    if width >= height:
        new_w, new_h = (size, _round(height * scale)) if fit == "longest" else (_round(width * scale), size)
    else:
        new_w, new_h = (_round(width * scale), size) if fit == "longest" else (size, _round(height * scale))
    return new_w, new_h


def _round(value: float) -> int:
    return max(1, int(value + 0.5))


def open_reduced(
    data: bytes, size: int, *, fit: str = "longest", reduce: str = "draft"
) -> tuple[Image.Image, tuple[int, int], Optional[tuple[float, float, float, float]]]:
    """Decode ``data`` as small as allowed for the target: ``(image, target (w, h), box)``.

    With ``reduce="draft"`` and a JPEG, the decoder scales by 1/2, 1/4 or 1/8 in the DCT domain, choosing the
    largest factor that keeps both sides at least the target's; ``box`` is then the region of the decoded image that
    corresponds to the original (its size is the original divided by the factor, which can end in half a pixel), to
    be passed to ``resize``. Otherwise (``reduce="none"``, or not a JPEG) the image is decoded in full and ``box`` is
    None. The image is loaded and in its decoded mode (``RGB``, ``L``, ``CMYK``...); :func:`decode_resized` is the
    function to use, this is its first half, exposed so that the reduction can be inspected.
    """
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    image = Image.open(io.BytesIO(data))
    target = target_size(image.width, image.height, size, fit)
    box = None
    if reduce == "draft":
        # A no-op (returns None) for anything but JPEG/MPO. Never reduces below the requested size.
        drafted = image.draft("RGB", target)
        if drafted is not None:
            box = drafted[1]
    image.load()
    return image, target, box


def decode_resized(
    data: bytes,
    size: int,
    *,
    fit: str = "longest",
    resample: int = BICUBIC,
    reduce: str = "draft",
) -> np.ndarray:
    """Decode an image to an ``H x W x 3`` uint8 RGB array of the size :func:`target_size` gives.

    ``reduce="draft"`` (default) lets a JPEG decoder skip most of the work by decoding at 1/2, 1/4 or 1/8 size
    (never below the target), then resizes to the exact target with ``resample``; ``reduce="none"`` decodes in full
    and resizes: the slow baseline, within a few levels of 0-255 of the fast path. Non-JPEG input is always decoded in
    full. Grayscale, palette, CMYK, 16-bit and alpha images are converted to RGB (alpha is dropped, 16-bit values are
    scaled to 8 bits). No EXIF orientation is applied (see the module docstring).
    """
    image, target, box = open_reduced(data, size, fit=fit, reduce=reduce)
    with image:
        return _finish(image, target, box, resample)


def _finish(image: Image.Image, target: tuple[int, int], box, resample: int) -> np.ndarray:
    if image.mode == "L":
        # Resizing one channel and then replicating it is exactly the same as the other way round, and 3x cheaper.
        image = _resize(image, target, box, resample).convert("RGB")
    else:
        image = _resize(_to_rgb(image), target, box, resample)
    array = np.array(image, dtype=np.uint8)  # writable: torch warns on (and may not write) read-only arrays
    assert array.shape == (target[1], target[0], 3), array.shape
    return array


def _resize(image: Image.Image, target: tuple[int, int], box, resample: int) -> Image.Image:
    if image.size == target and box in (None, (0, 0, image.width, image.height)):
        return image
    return image.resize(target, resample=resample, box=box)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        # Pillow's own conversion clips 16-bit values at 255; scale them instead.
        values = np.asarray(image)
        if mode.startswith("I;16") or (mode == "I" and values.size and values.max() > 255):
            values = values.astype(np.uint32) >> 8
        values = np.clip(values, 0, 255).astype(np.uint8)
        return Image.fromarray(values, mode="L").convert("RGB")
    return image.convert("RGB")


def _image_bytes(value: Any) -> Optional[bytes]:
    """The encoded bytes of one image cell: ``{"bytes", "path"}`` (bytes, else read from path), bytes, or a path."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        if value.get("path"):
            return _read_path(value["path"])
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return _read_path(value)
    raise TypeError(
        f"expected an undecoded image ({{'bytes', 'path'}} dict, bytes or path), got {type(value).__name__}; cast "
        "the column with prepare_for_fast_decode() (datasets.Image(decode=False)) first"
    )


def _read_path(path: str) -> bytes:
    import fsspec

    with fsspec.open(path, "rb") as f:
        return f.read()


class DecodeTransform:
    """Replace undecoded image columns by uint8 arrays, for ``map`` / ``set_transform``.

    Args:
        size, fit, resample, reduce: as in :func:`decode_resized`.
        columns: image columns to decode. A column holds one image per row (``image``) or a list of images per row
            (``images`` of the multi-image configs), as undecoded ``{"bytes", "path"}`` dicts: cast it with
            :func:`prepare_for_fast_decode` first. A missing image (None) stays None.
        layout: ``"HWC"`` (default) or ``"CHW"`` arrays.
        output: ``"numpy"`` (default) or ``"torch"`` (uint8 tensors sharing the arrays' memory).
        batched: the call receives a batch (column -> list of values), as with ``map(..., batched=True)`` and
            ``set_transform``; ``False`` for ``map`` without ``batched``, one row at a time.

    Picklable (plain attributes), so it can go to DataLoader workers and ``Dataset.map(num_proc=...)``. Columns that
    are not listed are passed through unchanged. A mapped ``IterableDataset`` has ``features=None`` (``datasets``
    does not know the new columns' types); select the columns you need before collating. ``Dataset.map`` needs
    ``features=transform.output_features(ds.features)``, or it re-encodes the arrays as images.
    """

    def __init__(
        self,
        size: int,
        columns: Union[str, Sequence[str]] = ("image",),
        *,
        fit: str = "longest",
        resample: int = BICUBIC,
        reduce: str = "draft",
        layout: str = "HWC",
        output: str = "numpy",
        batched: bool = True,
    ):
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        if reduce not in REDUCES:
            raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.size = int(size)
        self.columns = (columns,) if isinstance(columns, str) else tuple(columns)
        self.fit = fit
        self.resample = int(resample)
        self.reduce = reduce
        self.layout = layout
        self.output = output
        self.batched = batched

    def __repr__(self) -> str:
        return (
            f"DecodeTransform(size={self.size}, columns={self.columns!r}, fit={self.fit!r}, reduce={self.reduce!r}, "
            f"layout={self.layout!r}, output={self.output!r}, batched={self.batched})"
        )

    def output_features(self, features):
        """``features`` with the decoded columns' types, for ``Dataset.map(..., features=...)``.

        ``Dataset.map`` writes its output to Arrow and otherwise keeps a column's old type, which would re-encode the
        arrays as images. ``fit="square"`` gives fixed-shape ``Array3D(uint8)`` columns; the other fits give nested
        ``List`` of ``uint8`` (the height and width vary by row). Not needed for ``IterableDataset.map`` and
        ``set_transform``, which write nothing.
        """
        from datasets import Array3D, Features, List, Value

        if self.fit == "square":
            shape = (self.size, self.size, 3) if self.layout == "HWC" else (3, self.size, self.size)
            array = Array3D(shape=shape, dtype="uint8")
        else:
            array = List(List(List(Value("uint8"))))
        out = Features(features.copy())
        for column in self.columns:
            feature = _undecoded(features[column], column)  # checks that it is an image or a list of images
            out[column] = array if not isinstance(feature, (List, list)) else List(array)
        return out

    def __call__(self, rows: dict) -> dict:
        out = dict(rows)
        for column in self.columns:
            if column not in rows:
                raise KeyError(f"no column {column!r} (columns: {sorted(rows)})")
            values = rows[column]
            if self.batched:
                out[column] = [self._decode_cell(value) for value in values]
            else:
                out[column] = self._decode_cell(values)
        return out

    def _decode_cell(self, value: Any):
        """One cell: a single image, or a list of images (multi-image rows)."""
        if isinstance(value, (list, tuple)):
            return [self._decode_one(item) for item in value]
        return self._decode_one(value)

    def _decode_one(self, value: Any):
        if isinstance(value, Image.Image):
            # Already decoded (the column was not cast): still resize, without the draft shortcut.
            image = value
            target = target_size(image.width, image.height, self.size, self.fit)
            array = _finish(image, target, None, self.resample)
        else:
            data = _image_bytes(value)
            if data is None:
                return None
            array = decode_resized(data, self.size, fit=self.fit, resample=self.resample, reduce=self.reduce)
        if self.layout == "CHW":
            array = np.ascontiguousarray(array.transpose(2, 0, 1))
        if self.output == "torch":
            import torch

            return torch.from_numpy(array)
        return array


def _undecoded(feature: Any, column: str):
    from datasets import Image as ImageFeature
    from datasets import List

    if isinstance(feature, ImageFeature):
        return ImageFeature(mode=feature.mode, decode=False)
    if isinstance(feature, List) and isinstance(feature.feature, ImageFeature):
        return List(ImageFeature(mode=feature.feature.mode, decode=False), length=feature.length)
    if isinstance(feature, list) and len(feature) == 1 and isinstance(feature[0], ImageFeature):
        return [ImageFeature(mode=feature[0].mode, decode=False)]
    raise TypeError(f"column {column!r} is {feature!r}, not an Image or a list of Images")


def prepare_for_fast_decode(ds, columns: Optional[Iterable[str]] = None):
    """``ds`` (``Dataset`` or ``IterableDataset``) with its image columns left undecoded, ready for
    :class:`DecodeTransform`: ``Image`` columns cast to ``Image(decode=False)`` and ``List(Image)`` columns to
    ``List(Image(decode=False))``. ``columns=None`` casts every such column."""
    from datasets import Image as ImageFeature
    from datasets import List

    features = ds.features
    if features is None:
        raise ValueError(
            "the dataset's features are unknown (e.g. after a map()); call prepare_for_fast_decode() before mapping"
        )
    if columns is None:
        columns = [
            name
            for name, feature in features.items()
            if isinstance(feature, ImageFeature)
            or (isinstance(feature, List) and isinstance(feature.feature, ImageFeature))
        ]
    elif isinstance(columns, str):
        columns = [columns]
    for column in columns:
        if column not in features:
            raise KeyError(f"no column {column!r} (columns: {list(features)})")
        ds = ds.cast_column(column, _undecoded(features[column], column))
    return ds
