"""Fast image decoding for training: decode a JPEG straight to (about) the size the model takes.

SA-1B images are about 1500x2250 JPEGs (Visual Genome ones are smaller), while vision encoders take 336-1024 px
inputs. Decoding the full image and then shrinking it is the bottleneck of a streaming loader. libjpeg can instead
decode at 1/2, 1/4 or 1/8 of the size by scaling in the DCT domain, which skips most of the work.
:func:`decode_resized` asks for the largest such reduction that still leaves the image at least as large as the target
in both dimensions, then resizes to the exact target size with a filter that is correct for the remaining factor.
Other formats (PNG, ...) are decoded in full and resized the same way.

Two backends give the same pixels within the error bound the tests hold them to (a mean under 2 levels of 0-255
against the full decode + bicubic resize):

- ``"opencv"`` (the extra ``svit-internvl[fast-decode]``, ``opencv-python-headless``): libjpeg-turbo's scaled decode
  straight to RGB and OpenCV's SIMD resize (bilinear up to a factor of 2 down, where every source pixel still
  contributes, area averaging beyond, bicubic when enlarging). Used for JPEGs stored as RGB or grayscale; other
  images are decoded by Pillow and resized by OpenCV.
- ``"pillow"`` (always available): ``Image.draft`` for the scaled decode, then Pillow's antialiased ``resize``.

``backend="auto"`` (the default) takes OpenCV when it imports, else Pillow; :func:`available_backends` says which are
installed.

The EXIF orientation is applied, as ``datasets.Image`` applies it when it decodes: the arrays are in the frame the
rows' ``width``/``height`` columns and the SVIT regions describe. The turn is done on the small resized array.

For a loader, cast the image columns to ``datasets.Image(decode=False)`` (:func:`prepare_for_fast_decode`) so that
``datasets`` hands over the undecoded ``{"bytes", "path"}`` dicts, and map :class:`DecodeTransform` over the rows::

    ds = load_dataset("org/svit-internvl", "referring", split="train", streaming=True)
    ds = prepare_for_fast_decode(ds, ["image"]).map(DecodeTransform(448), batched=True, batch_size=16)
    loader = torch.utils.data.DataLoader(ds, num_workers=4, batch_size=8, collate_fn=list)

DataLoader workers then send compact uint8 arrays to the main process, not PIL images or encoded bytes, in lists of
8 rows (one transfer per list rather than per row). A small ``map`` batch keeps few decoded images alive at once
(``datasets``' default of 1000 would hold 1000 arrays per worker). This module needs only Pillow and numpy (OpenCV
when installed); ``output="torch"`` imports torch when the transform is first called.
"""

from __future__ import annotations

import io
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ..image_checks import QUARTER_TURNS, exif_orientation

FITS = ("longest", "shortest", "square")
REDUCES = ("draft", "none")
LAYOUTS = ("HWC", "CHW")
OUTPUTS = ("numpy", "torch")
BACKENDS = ("auto", "opencv", "pillow")

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


def available_backends() -> tuple[str, ...]:
    """The decode backends installed here, fastest first: ``("opencv", "pillow")`` or ``("pillow",)``."""
    return ("opencv", "pillow") if _opencv() is not None else ("pillow",)


def resolve_backend(backend: str = "auto") -> str:
    """The backend ``backend`` names: ``"auto"`` is OpenCV when it imports, else Pillow. Asking for OpenCV where it is
    not installed is an error that says how to install it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return available_backends()[0]
    if backend == "opencv" and _opencv() is None:
        raise ImportError(
            "backend='opencv' needs OpenCV: pip install 'svit-internvl[fast-decode]' (opencv-python-headless)"
        )
    return backend


_OPENCV: Any = None


def _opencv():
    """The ``cv2`` module, or None when it is not installed (looked up once per process)."""
    global _OPENCV
    if _OPENCV is None:
        try:
            import cv2
        except ImportError:
            _OPENCV = False
        else:
            _OPENCV = cv2
    return _OPENCV or None


# How each EXIF orientation turns a stored H x W x C array into the decoded frame (what ImageOps.exif_transpose,
# and so datasets.Image, gives); the views are made contiguous by the caller.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _stored_target(image: Image.Image, size: int, fit: str, orientation: int) -> tuple[int, int]:
    """The size to resize the stored pixels to, so that after the EXIF turn the image has the target size."""
    width, height = image.size
    if orientation in QUARTER_TURNS:
        decoded_w, decoded_h = target_size(height, width, size, fit)
        return decoded_h, decoded_w
    return target_size(width, height, size, fit)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 1:
        return array
    return np.ascontiguousarray(_ORIENT[orientation](array))


def open_reduced(
    data: bytes, size: int, *, fit: str = "longest", reduce: str = "draft"
) -> tuple[Image.Image, tuple[int, int], Optional[tuple[float, float, float, float]]]:
    """Decode ``data`` with Pillow as small as allowed for the target: ``(image, stored target (w, h), box)``.

    With ``reduce="draft"`` and a JPEG, the decoder scales by 1/2, 1/4 or 1/8 in the DCT domain, choosing the
    largest factor that keeps both sides at least the target's; ``box`` is then the region of the decoded image that
    corresponds to the original (its size is the original divided by the factor, which can end in half a pixel), to
    be passed to ``resize``. Otherwise (``reduce="none"``, or not a JPEG) the image is decoded in full and ``box`` is
    None. The target is in the stored frame: the size that becomes :func:`target_size`'s after the EXIF turn
    (:func:`exif_orientation`). The image is loaded and in its decoded mode (``RGB``, ``L``, ``CMYK``...);
    :func:`decode_resized` is the function to use, this is the first half of its Pillow backend, exposed so that the
    reduction can be inspected.
    """
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    image = Image.open(io.BytesIO(data))
    target = _stored_target(image, size, fit, exif_orientation(image))
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
    backend: str = "auto",
) -> np.ndarray:
    """Decode an image to an ``H x W x 3`` uint8 RGB array of the size :func:`target_size` gives (writable).

    ``reduce="draft"`` (default) lets a JPEG decoder skip most of the work by decoding at 1/2, 1/4 or 1/8 size
    (never below the target), then resizes to the exact target; ``reduce="none"`` decodes in full and resizes: the
    slow baseline, within a few levels of 0-255 of the fast path. ``backend``: ``"auto"``, ``"opencv"`` or
    ``"pillow"`` (module docstring); ``resample`` is the Pillow backend's filter (OpenCV picks its filter by the
    factor). Non-JPEG input is always decoded in full. Grayscale, palette, CMYK, 16-bit and alpha images are converted
    to RGB (alpha is dropped, 16-bit values are scaled to 8 bits). The EXIF orientation is applied.
    """
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    if resolve_backend(backend) == "opencv":
        return _decode_resized_opencv(data, size, fit, reduce)
    image, target, box = open_reduced(data, size, fit=fit, reduce=reduce)
    with image:
        orientation = exif_orientation(image)
        return _orient(_finish(image, target, box, resample), orientation)


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


def _draft_factor(width: int, height: int, target: tuple[int, int]) -> int:
    """The DCT-domain reduction Pillow's ``draft`` picks: the largest of 8, 4, 2 that both sides allow, else 1."""
    scale = min(width // target[0], height // target[1])
    for factor in (8, 4, 2):
        if scale >= factor:
            return factor
    return 1


def _decode_resized_opencv(data: bytes, size: int, fit: str, reduce: str) -> np.ndarray:
    cv2 = _opencv()
    header = Image.open(io.BytesIO(data))  # reads the header only: size, mode, EXIF
    with header:
        orientation = exif_orientation(header)
        target = _stored_target(header, size, fit, orientation)
        is_plain_jpeg = header.format in ("JPEG", "MPO") and header.mode in ("RGB", "L")
        gray = header.mode == "L"
        factor = _draft_factor(header.width, header.height, target) if reduce == "draft" else 1
        if is_plain_jpeg:
            array = _opencv_jpeg(cv2, data, factor, gray)
        else:
            array = None
        if array is None:  # not a JPEG OpenCV decodes the way Pillow does (CMYK, PNG, ...), or OpenCV refused it
            if reduce == "draft":
                header.draft("RGB", target)  # a CMYK JPEG still decodes reduced; a no-op for other formats
            header.load()
            if header.mode == "L":
                array, gray = np.asarray(header), True
            else:
                array, gray = np.asarray(_to_rgb(header)), False
    array = _opencv_resize(cv2, array, target)
    if gray:
        array = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    elif not array.flags.writeable:
        array = array.copy()
    assert array.shape == (target[1], target[0], 3), array.shape
    return _orient(array, orientation)


_REDUCED_GRAY = {1: "IMREAD_GRAYSCALE", 2: "IMREAD_REDUCED_GRAYSCALE_2", 4: "IMREAD_REDUCED_GRAYSCALE_4",
                 8: "IMREAD_REDUCED_GRAYSCALE_8"}
_REDUCED_COLOR = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4",
                  8: "IMREAD_REDUCED_COLOR_8"}


def _opencv_jpeg(cv2, data: bytes, factor: int, gray: bool) -> Optional[np.ndarray]:
    """A JPEG decoded by OpenCV at 1/``factor`` size, as stored (EXIF ignored: the caller turns the small array):
    H x W x 3 RGB, or H x W for a grayscale JPEG; None where OpenCV cannot decode it."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    flags = getattr(cv2, _REDUCED_GRAY[factor]) | cv2.IMREAD_IGNORE_ORIENTATION
    if gray:
        return cv2.imdecode(buffer, flags)
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if rgb_flag is not None:  # OpenCV >= 4.10 converts to RGB inside the decoder
        return cv2.imdecode(buffer, flags | rgb_flag)
    array = cv2.imdecode(buffer, getattr(cv2, _REDUCED_COLOR[factor]) | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if array is None else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def _opencv_resize(cv2, array: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    height, width = array.shape[:2]
    if (width, height) == target:
        return array
    shrink = max(width / target[0], height / target[1])
    if shrink > 2:
        interpolation = cv2.INTER_AREA  # averages every source pixel; bilinear would skip some
    elif shrink > 1:
        interpolation = cv2.INTER_LINEAR  # up to 2x down, each source pixel still weighs in
    else:
        interpolation = cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(array), target, interpolation=interpolation)


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
        backend: ``"auto"`` (default: OpenCV when installed, else Pillow), ``"opencv"`` or ``"pillow"``; resolved
            where the transform runs, so a worker uses what its process has.
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
        backend: str = "auto",
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
        resolve_backend(backend)  # fails here, not in a worker, when the named backend is missing
        self.backend = backend
        self.layout = layout
        self.output = output
        self.batched = batched

    def __repr__(self) -> str:
        return (
            f"DecodeTransform(size={self.size}, columns={self.columns!r}, fit={self.fit!r}, reduce={self.reduce!r}, "
            f"backend={self.backend!r}, "
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
            array = decode_resized(data, self.size, fit=self.fit, resample=self.resample, reduce=self.reduce,
                                   backend=self.backend)
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
