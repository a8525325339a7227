"""``svitpipe.training.fast_decode``: sizes, the DCT-domain reduction, accuracy against the full decode, and the transform.

Images are generated here (no sample needed); nothing is timed: speed belongs in benchmarks.
"""

from __future__ import annotations

import functools
import io
import pickle
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw

from svitpipe import image_checks
from svitpipe.training import fast_decode
from svitpipe.training.fast_decode import (
    DecodeTransform,
    decode_resized,
    open_reduced,
    prepare_for_fast_decode,
    target_size,
)

BICUBIC = Image.Resampling.BICUBIC
SA1B_SIZE = (1500, 2250)  # (width, height), the size of a typical SA-1B image
VG_SIZE = (500, 375)  # a typical Visual Genome image
MAX_MEAN_ERROR = 2.0  # levels of 0-255: the bound every backend is held to against the full decode + bicubic resize
BACKENDS = fast_decode.available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each decode backend installed here (OpenCV only with the fast-decode extra; Pillow always)."""
    return request.param


def encode(image: Image.Image, fmt: str = "JPEG", **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour gradients, a few dozen flat shapes with hard edges, and mild sensor-like noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    channels = [
        120 + 80 * np.sin(2.1 * x + 1.3 * y) + 30 * np.cos(5 * y),
        100 + 70 * np.cos(3.3 * x - 0.7 * y + 0.5),
        140 + 60 * np.sin(1.7 * y + 4 * x * y),
    ]
    image = Image.fromarray(np.clip(np.stack(np.broadcast_arrays(*channels), axis=-1), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        side = int(rng.integers(max(1, width // 30), max(2, width // 5)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + side, y0 + int(side * rng.uniform(0.5, 1.5))], fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@functools.lru_cache(maxsize=None)
def encoded_photo(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """:func:`photo_like` encoded (JPEG at quality 90), once per size and format."""
    return encode(photo_like(width, height, seed=width + height), fmt, **({"quality": 90} if fmt == "JPEG" else {}))


@pytest.fixture(scope="module")
def sa1b_jpeg() -> bytes:
    """A 1500x2250 photo-like JPEG at quality 90, like an SA-1B image."""
    return encoded_photo(*SA1B_SIZE)


def reference(data: bytes, size: int, fit: str) -> np.ndarray:
    """Full decode, RGB, then the same bicubic resize: written independently of the module."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        return np.asarray(image.resize(target_size(image.width, image.height, size, fit), Image.Resampling.BICUBIC))


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------

SIZE_TABLE = [
    # (width, height, size, fit, expected (width, height))
    (1500, 2250, 448, "longest", (299, 448)),  # portrait: 1500 * 448 / 2250 = 298.67
    (1500, 2250, 448, "shortest", (448, 672)),
    (1500, 2250, 448, "square", (448, 448)),
    (2250, 1500, 448, "longest", (448, 299)),  # landscape
    (2250, 1500, 448, "shortest", (672, 448)),
    (2250, 1500, 448, "square", (448, 448)),
    (641, 359, 224, "longest", (224, 125)),  # odd: 359 * 224 / 641 = 125.45
    (641, 359, 224, "shortest", (400, 224)),  # 641 * 224 / 359 = 399.96
    (641, 359, 224, "square", (224, 224)),
    (359, 641, 224, "longest", (125, 224)),
    (359, 641, 224, "shortest", (224, 400)),
    (500, 500, 336, "longest", (336, 336)),  # square input
    (500, 500, 336, "shortest", (336, 336)),
    (7, 5, 448, "longest", (448, 320)),  # smaller than the target: enlarged
    (7, 5, 448, "shortest", (627, 448)),  # 7 * 448 / 5 = 627.2
    (201, 3, 64, "longest", (64, 1)),  # 3 * 64 / 201 = 0.96 -> 1
    (3, 201, 64, "shortest", (64, 4288)),
    (400, 1, 100, "longest", (100, 1)),  # 0.25 would round to 0: clamped to 1 px
]


@pytest.mark.parametrize("width, height, size, fit, expected", SIZE_TABLE)
def test_target_size_table(width, height, size, fit, expected):
    assert target_size(width, height, size, fit) == expected


@pytest.mark.parametrize("width, height, size, fit, expected", SIZE_TABLE)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_resized_shape_table(width, height, size, fit, expected, fmt):
    data = encoded_photo(width, height, fmt)
    for reduce in ("draft", "none"):
        array = decode_resized(data, size, fit=fit, reduce=reduce)
        assert array.dtype == np.uint8
        assert array.shape == (expected[1], expected[0], 3), (reduce, array.shape)


@pytest.mark.parametrize("fit, expected", [("longest", (299, 448)), ("shortest", (448, 672)), ("square", (448, 448))])
def test_decode_resized_shape_sa1b(sa1b_jpeg, fit, expected):
    assert decode_resized(sa1b_jpeg, 448, fit=fit).shape == (expected[1], expected[0], 3)


def test_bad_arguments(sa1b_jpeg):
    with pytest.raises(ValueError, match="fit"):
        decode_resized(sa1b_jpeg, 448, fit="cover")
    with pytest.raises(ValueError, match="reduce"):
        decode_resized(sa1b_jpeg, 448, reduce="fast")
    with pytest.raises(ValueError, match="size"):
        target_size(10, 10, 0)
    with pytest.raises(ValueError, match="layout"):
        DecodeTransform(64, layout="WHC")


# --------------------------------------------------------------------------
# The DCT-domain reduction
# --------------------------------------------------------------------------

DRAFT_TABLE = [
    # (size, fit, DCT scale, decoded size): the largest of 1/2, 1/4, 1/8 keeping both sides >= the target, rounded up
    (448, "longest", 4, (375, 563)),  # target 299x448 (1/8 would give 188x282)
    (448, "shortest", 2, (750, 1125)),  # target 448x672
    (448, "square", 2, (750, 1125)),  # target 448x448 (1/4 would give 375 < 448 wide)
    (224, "longest", 8, (188, 282)),  # target 149x224
    (1024, "longest", 2, (750, 1125)),  # target 683x1024
    (1600, "longest", 1, (1500, 2250)),  # more than half the image: decoded in full
]


@pytest.mark.parametrize("size, fit, scale, decoded", DRAFT_TABLE)
def test_draft_decodes_reduced(sa1b_jpeg, size, fit, scale, decoded):
    image, target, box = open_reduced(sa1b_jpeg, size, fit=fit)
    assert image.size == decoded
    assert image.width >= target[0] and image.height >= target[1], "reduced below the target"
    if scale > 1:
        assert image.width < SA1B_SIZE[0] and image.height < SA1B_SIZE[1]
    # The original's extent in the decoded image (the last row/column can be a partial pixel), given to resize().
    assert box == (0, 0, SA1B_SIZE[0] / scale, SA1B_SIZE[1] / scale)
    full, _, full_box = open_reduced(sa1b_jpeg, size, fit=fit, reduce="none")
    assert full.size == SA1B_SIZE and full_box is None


def spy_resize(monkeypatch) -> list[tuple]:
    """Record ``(size, box)`` of every ``PIL.Image.Image.resize`` call: the image resized and the region used."""
    seen = []
    original = Image.Image.resize

    def resize(self, size, resample=None, box=None, reducing_gap=None):
        seen.append((self.size, box))
        return original(self, size, resample, box, reducing_gap)

    monkeypatch.setattr(Image.Image, "resize", resize)
    return seen


def test_decode_resized_resizes_from_the_reduced_image(sa1b_jpeg, monkeypatch):
    seen = spy_resize(monkeypatch)
    assert decode_resized(sa1b_jpeg, 448, backend="pillow").shape == (448, 299, 3)
    # 2250 / 4 = 562.5: the last decoded row is half outside the original, so resize() is told the exact region.
    assert seen == [((375, 563), (0, 0, 375.0, 562.5))]
    seen.clear()
    assert decode_resized(sa1b_jpeg, 448, reduce="none", backend="pillow").shape == (448, 299, 3)
    assert seen == [(SA1B_SIZE, None)]


@pytest.mark.parametrize("size", [224, 448])
@pytest.mark.parametrize("fit", ["longest", "shortest", "square"])
def test_draft_close_to_full_decode(sa1b_jpeg, size, fit, backend):
    fast = decode_resized(sa1b_jpeg, size, fit=fit, backend=backend)
    assert mean_abs_error(fast, reference(sa1b_jpeg, size, fit)) < MAX_MEAN_ERROR
    assert mean_abs_error(fast, decode_resized(sa1b_jpeg, size, fit=fit, reduce="none")) < MAX_MEAN_ERROR


def test_baseline_is_the_plain_full_decode_and_resize(sa1b_jpeg):
    np.testing.assert_array_equal(decode_resized(sa1b_jpeg, 448, reduce="none", backend="pillow"),
                                  reference(sa1b_jpeg, 448, "longest"))


def test_error_metric_sees_a_wrong_image(sa1b_jpeg):
    """The threshold above is meaningful: the same pixels mirrored left to right are far above it."""
    fast = decode_resized(sa1b_jpeg, 448, fit="square")
    flipped = fast[:, ::-1]
    assert mean_abs_error(fast, flipped) > 10


# --------------------------------------------------------------------------
# Other formats and modes
# --------------------------------------------------------------------------


def test_png_falls_back_to_full_decode(monkeypatch):
    data = encode(photo_like(900, 600), "PNG")
    image, target, box = open_reduced(data, 224)
    assert image.size == (900, 600) and box is None and target == (224, 149)
    seen = spy_resize(monkeypatch)
    fast = decode_resized(data, 224, backend="pillow")
    assert seen == [((900, 600), None)]
    np.testing.assert_array_equal(fast, decode_resized(data, 224, reduce="none", backend="pillow"))
    np.testing.assert_array_equal(fast, reference(data, 224, "longest"))


def test_grayscale_jpeg_becomes_rgb(backend):
    gray = photo_like(800, 600).convert("L")
    data = encode(gray, quality=90)
    array = decode_resized(data, 200, backend=backend)
    assert array.shape == (150, 200, 3)
    np.testing.assert_array_equal(array[..., 0], array[..., 1])
    np.testing.assert_array_equal(array[..., 0], array[..., 2])
    assert mean_abs_error(array, reference(data, 200, "longest")) < 3


def test_cmyk_jpeg_becomes_rgb(backend):
    data = encode(photo_like(800, 600).convert("CMYK"), quality=90)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    image, _, _ = open_reduced(data, 200)
    assert image.size == (200, 150)  # 1/4: CMYK JPEGs are reduced too
    array = decode_resized(data, 200, backend=backend)
    assert array.shape == (150, 200, 3)
    assert mean_abs_error(array, reference(data, 200, "longest")) < 3


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "1"])
def test_png_modes_become_rgb(mode, backend):
    source = photo_like(300, 200).convert(mode)
    data = encode(source, "PNG")
    # At the stored size nothing is resampled: every backend must give Pillow's own conversion exactly.
    same_size = decode_resized(data, 300, backend=backend)
    assert same_size.shape == (200, 300, 3) and same_size.dtype == np.uint8 and same_size.flags.writeable
    np.testing.assert_array_equal(same_size, reference(data, 300, "longest"))
    array = decode_resized(data, 150, backend=backend)
    assert array.shape == (100, 150, 3)
    if backend == "pillow":
        np.testing.assert_array_equal(array, reference(data, 150, "longest"))


def test_sixteen_bit_png_is_scaled_not_clipped(backend):
    values = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (64, 1))
    data = encode(Image.fromarray(values), "PNG")
    array = decode_resized(data, 256, backend=backend)  # 256x64 -> same size: no resampling
    assert array.shape == (64, 256, 3)
    np.testing.assert_array_equal(array[0, :, 0], (values[0] >> 8).astype(np.uint8))


# --------------------------------------------------------------------------
# DecodeTransform
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_jpegs() -> list[bytes]:
    return [encode(photo_like(w, h, seed=i), quality=90) for i, (w, h) in enumerate([(320, 240), (180, 260), (64, 64)])]


def cell(data: bytes, path: str = "x.jpg") -> dict:
    return {"bytes": data, "path": path}


def test_transform_single_image_batch(small_jpegs):
    images = [cell(small_jpegs[0]), cell(small_jpegs[1]), None, cell(small_jpegs[2])]
    batch = {"id": ["a", "b", "c", "d"], "image": images}
    out = DecodeTransform(64)(batch)
    assert out["id"] == ["a", "b", "c", "d"]
    assert [None if a is None else a.shape for a in out["image"]] == [(48, 64, 3), (64, 44, 3), None, (64, 64, 3)]
    assert all(a.dtype == np.uint8 for a in out["image"] if a is not None)
    np.testing.assert_array_equal(out["image"][0], decode_resized(small_jpegs[0], 64))
    assert batch["image"][0] == cell(small_jpegs[0]), "the input batch was modified"


def test_transform_multi_image_batch(small_jpegs):
    batch = {
        "id": ["m1", "m2"],
        "images": [[cell(small_jpegs[0]), cell(small_jpegs[1])], [cell(small_jpegs[2])]],
        "image_paths": [["p0", "p1"], ["p2"]],
    }
    out = DecodeTransform(32, columns=["images"], fit="square", layout="CHW")(batch)
    assert [[a.shape for a in row] for row in out["images"]] == [[(3, 32, 32), (3, 32, 32)], [(3, 32, 32)]]
    assert out["images"][0][1].flags.c_contiguous
    hwc = decode_resized(small_jpegs[1], 32, fit="square")
    np.testing.assert_array_equal(out["images"][0][1], hwc.transpose(2, 0, 1))
    assert out["image_paths"] == batch["image_paths"]


def test_transform_one_row_at_a_time(small_jpegs):
    out = DecodeTransform(64, columns=("image", "images"), batched=False)(
        {"id": "a", "image": cell(small_jpegs[0]), "images": [cell(small_jpegs[1]), cell(small_jpegs[2])]}
    )
    assert out["image"].shape == (48, 64, 3)
    assert [a.shape for a in out["images"]] == [(64, 44, 3), (64, 64, 3)]


def test_transform_reads_path_when_bytes_missing(small_jpegs, tmp_path):
    path = tmp_path / "img.jpg"
    path.write_bytes(small_jpegs[0])
    out = DecodeTransform(64)({"image": [{"bytes": None, "path": str(path)}]})
    np.testing.assert_array_equal(out["image"][0], decode_resized(small_jpegs[0], 64))


def test_transform_torch_output(small_jpegs):
    torch = pytest.importorskip("torch")
    out = DecodeTransform(64, output="torch", layout="CHW")({"image": [cell(small_jpegs[0])]})
    tensor = out["image"][0]
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, 48, 64)


def test_transform_missing_column_and_decoded_input(small_jpegs):
    with pytest.raises(KeyError, match="image"):
        DecodeTransform(64)({"id": ["a"]})
    with pytest.raises(TypeError, match="decode=False"):
        DecodeTransform(64)({"image": [12]})
    decoded = Image.open(io.BytesIO(small_jpegs[0]))
    assert DecodeTransform(64)({"image": [decoded]})["image"][0].shape == (48, 64, 3)


def test_transform_pickles(small_jpegs):
    transform = DecodeTransform(96, columns=["image", "images"], fit="shortest", layout="CHW", reduce="none")
    clone = pickle.loads(pickle.dumps(transform))
    assert repr(clone) == repr(transform)
    batch = {"image": [cell(small_jpegs[0])], "images": [[cell(small_jpegs[1])]]}
    want, got = transform(batch), clone(batch)
    np.testing.assert_array_equal(got["image"][0], want["image"][0])
    np.testing.assert_array_equal(got["images"][0][0], want["images"][0][0])
    assert got["image"][0].shape == (3, 96, 128)


# --------------------------------------------------------------------------
# With datasets
# --------------------------------------------------------------------------


def single_and_multi(small_jpegs) -> datasets.Dataset:
    features = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(), "images": datasets.List(datasets.Image())}
    )
    return datasets.Dataset.from_dict(
        {
            "id": ["r0", "r1"],
            "image": [cell(small_jpegs[0], "a.jpg"), cell(small_jpegs[1], "b.jpg")],
            "images": [[cell(small_jpegs[1], "b.jpg"), cell(small_jpegs[2], "c.jpg")], [cell(small_jpegs[0], "a.jpg")]],
        },
        features=features,
    )


def test_prepare_casts_single_and_list_columns(small_jpegs):
    ds = prepare_for_fast_decode(single_and_multi(small_jpegs))
    assert ds.features["image"] == datasets.Image(decode=False)
    assert ds.features["images"] == datasets.List(datasets.Image(decode=False))
    row = ds[0]
    assert row["image"] == {"bytes": small_jpegs[0], "path": "a.jpg"}
    only = prepare_for_fast_decode(single_and_multi(small_jpegs), ["images"])
    assert only.features["image"] == datasets.Image() and only.features["images"].feature.decode is False
    with pytest.raises(TypeError, match="not an Image"):
        prepare_for_fast_decode(single_and_multi(small_jpegs), ["id"])


def test_dataset_map_square_and_set_transform(small_jpegs):
    ds = prepare_for_fast_decode(single_and_multi(small_jpegs))
    transform = DecodeTransform(40, columns=["image", "images"], fit="square")
    features = transform.output_features(ds.features)
    assert features["image"] == datasets.Array3D(shape=(40, 40, 3), dtype="uint8")
    assert features["images"] == datasets.List(datasets.Array3D(shape=(40, 40, 3), dtype="uint8"))
    mapped = ds.map(transform, batched=True, batch_size=1, features=features).with_format("numpy")
    assert mapped.features["image"].dtype == "uint8"  # stored as uint8 (the numpy format returns int64 arrays)
    assert mapped[0]["image"].shape == (40, 40, 3)
    np.testing.assert_array_equal(mapped[1]["image"], decode_resized(small_jpegs[1], 40, fit="square"))
    assert [a.shape for a in mapped[0]["images"]] == [(40, 40, 3), (40, 40, 3)]
    assert mapped[:2]["image"].shape == (2, 40, 40, 3)

    ds.set_transform(transform)
    row = ds[1]
    assert row["id"] == "r1" and row["image"].shape == (40, 40, 3) and len(row["images"]) == 1
    np.testing.assert_array_equal(row["images"][0], decode_resized(small_jpegs[0], 40, fit="square"))


def test_dataset_map_longest(small_jpegs):
    ds = prepare_for_fast_decode(single_and_multi(small_jpegs))
    transform = DecodeTransform(64, columns=["image", "images"])
    mapped = ds.map(transform, batched=True, features=transform.output_features(ds.features)).with_format("numpy")
    np.testing.assert_array_equal(mapped[0]["image"], decode_resized(small_jpegs[0], 64))
    assert [a.shape for a in mapped[0]["images"]] == [(64, 44, 3), (64, 64, 3)]


def test_iterable_dataset_map(small_jpegs):
    stream = prepare_for_fast_decode(single_and_multi(small_jpegs).to_iterable_dataset(num_shards=2))
    rows = list(stream.map(DecodeTransform(64, columns=["image", "images"]), batched=True))
    assert [row["id"] for row in rows] == ["r0", "r1"]
    assert rows[0]["image"].shape == (48, 64, 3) and rows[1]["image"].shape == (64, 44, 3)
    assert [a.shape for a in rows[0]["images"]] == [(64, 44, 3), (64, 64, 3)]


def test_module_does_not_import_torch():
    code = "import sys, svitpipe.training.fast_decode; print('torch' in sys.modules)"
    repo_root = Path(fast_decode.__file__).resolve().parents[2]  # svitpipe/training/fast_decode.py
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "importing svitpipe.training.fast_decode imported torch"


# --------------------------------------------------------------------------
# Backends: the same pixels whichever runs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [336, 448, 1024])
@pytest.mark.parametrize("shape", [SA1B_SIZE, SA1B_SIZE[::-1], VG_SIZE, (800, 600)])
def test_every_backend_within_the_error_bound(backend, shape, size):
    data = encoded_photo(*shape)
    fast = decode_resized(data, size, backend=backend)
    assert fast.dtype == np.uint8 and fast.flags.writeable and fast.flags.c_contiguous
    assert mean_abs_error(fast, reference(data, size, "longest")) < MAX_MEAN_ERROR


def test_backends_agree_with_each_other(sa1b_jpeg):
    arrays = {name: decode_resized(sa1b_jpeg, 448, backend=name) for name in BACKENDS}
    for name, array in arrays.items():
        assert mean_abs_error(array, arrays["pillow"]) < MAX_MEAN_ERROR, name


def test_backend_names():
    assert BACKENDS[-1] == "pillow" and set(BACKENDS) <= {"opencv", "pillow"}
    assert fast_decode.resolve_backend("auto") == BACKENDS[0]
    assert fast_decode.resolve_backend("pillow") == "pillow"
    with pytest.raises(ValueError, match="backend must be one of"):
        fast_decode.resolve_backend("turbo")
    with pytest.raises(ValueError, match="backend must be one of"):
        DecodeTransform(64, backend="turbo")


def run_without_opencv(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter where ``import cv2`` fails, as on a machine without the fast-decode extra."""
    repo_root = Path(fast_decode.__file__).resolve().parents[2]
    blocked = "import sys; sys.modules['cv2'] = None\n" + code
    return subprocess.run([sys.executable, "-c", blocked], cwd=repo_root, capture_output=True, text=True)


def test_without_opencv_auto_is_pillow_and_opencv_says_how_to_install(sa1b_jpeg, tmp_path):
    image_file = tmp_path / "sa1b.jpg"
    image_file.write_bytes(sa1b_jpeg)
    code = (
        "from svitpipe.training import fast_decode as f\n"
        f"data = open({str(image_file)!r}, 'rb').read()\n"
        "print(f.available_backends(), f.resolve_backend('auto'), f.decode_resized(data, 448).shape)\n"
        "try:\n    f.DecodeTransform(64, backend='opencv')\nexcept ImportError as e:\n    print(e)\n"
    )
    result = run_without_opencv(code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == "('pillow',) pillow (448, 299, 3)"
    assert "pip install 'svit-internvl[fast-decode]'" in second


# --------------------------------------------------------------------------
# EXIF orientation: the frame datasets.Image decodes to
# --------------------------------------------------------------------------


def oriented_jpeg(orientation: int, size=(64, 32)) -> bytes:
    """A stored 64x32 JPEG with distinct quadrants, tagged with ``orientation``."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, : width // 2] = (250, 10, 10)
    pixels[: height // 2, width // 2 :] = (10, 250, 10)
    pixels[height // 2 :, : width // 2] = (10, 10, 250)
    pixels[height // 2 :, width // 2 :] = (240, 240, 20)
    exif = Image.Exif()
    exif[image_checks.EXIF_ORIENTATION_TAG] = orientation
    return encode(Image.fromarray(pixels), quality=95, exif=exif.tobytes())


def as_datasets_decodes(data: bytes) -> Image.Image:
    return datasets.Image().decode_example({"bytes": data, "path": None}).convert("RGB")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_datasets_does(orientation, backend):
    data = oriented_jpeg(orientation)
    decoded = as_datasets_decodes(data)
    size = max(decoded.size)  # the same size: no resampling, only the turn
    array = decode_resized(data, size, backend=backend)
    assert array.shape == (decoded.height, decoded.width, 3)
    assert mean_abs_error(array, np.asarray(decoded)) < MAX_MEAN_ERROR
    assert array.flags.c_contiguous and array.flags.writeable
    smaller = decode_resized(data, 16, backend=backend)  # resized then turned: still the decoded frame
    expected = np.asarray(decoded.resize(target_size(decoded.width, decoded.height, 16, "longest"), BICUBIC))
    assert mean_abs_error(smaller, expected) < 12  # 16 px of hard-edged quadrants: edges dominate the error


def test_exif_orientation_of_an_unreadable_block_is_as_stored():
    data = oriented_jpeg(1)
    with Image.open(io.BytesIO(data)) as image:
        assert fast_decode.exif_orientation(image) == 1
    broken = encode(Image.new("RGB", (8, 4)), exif=b"Exif\x00\x00MM\x00*garbage")
    with Image.open(io.BytesIO(broken)) as image:
        assert fast_decode.exif_orientation(image) == 1
