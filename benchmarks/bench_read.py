"""Read: streaming the published shards with ``load_dataset(folder, config, streaming=True)``, against pyarrow and
Pillow on the same files and bytes, the same rows as WebDataset tars and as LLaVA JSON + image folder, and a torch
DataLoader; plus what the Parquet layout choices (raw image bytes, zstd text) gain.

Bytes only (every row of every shard): times are best of k (the machine is shared and noisy) and medians.
With decode (the first ``decode_rows`` rows, in shard order, the same rows for every reader): medians.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import tarfile
import time

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from .common import Measurement, Results, files_under, parallel_ceiling, timed, timed_interleaved

DECODE_SIZE = 448
MAP_BATCH = 16  # rows per DecodeTransform call in the stream (datasets' default, 1000, would hold 1000 arrays)
LOADER_BATCH = 8  # rows per DataLoader transfer in the recipe (batch_size=8, collate_fn=list)


# --------------------------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------------------------


def pyarrow_batches(files) -> int:
    rows = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=100):
            rows += batch.num_rows
    return rows


def pyarrow_python_rows(files) -> int:
    """pyarrow, plus the Arrow -> Python conversion every row-by-row reader has to do."""
    rows = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=100):
            rows += len(batch.to_pylist())
    return rows


def first_image_bytes(files, column: str, count: int) -> list[bytes]:
    out = []
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=100, columns=[column]):
            out += [cell["bytes"] for cell in batch.column(column).to_pylist()]
            if len(out) >= count:
                return out[:count]
    return out


def decode_all(decode, images) -> int:
    """Decode every image, keeping none (as a training loop does: each array is used, then freed)."""
    for data in images:
        decode(data)
    return len(images)


def count(iterable, limit=None) -> int:
    rows = 0
    for _ in itertools.islice(iterable, limit):
        rows += 1
    return rows


def stream(folder: str, config: str):
    import datasets

    return datasets.load_dataset(folder, config, split="train", streaming=True)


def recommended(folder: str, config: str, image_column: str):
    """The documented training path: undecoded images, then ``DecodeTransform`` in the stream."""
    from svitpipe.training.fast_decode import DecodeTransform, prepare_for_fast_decode

    ds = prepare_for_fast_decode(stream(folder, config), [image_column])
    return ds.map(DecodeTransform(DECODE_SIZE, [image_column]), batched=True, batch_size=MAP_BATCH)


def pillow_decode(data: bytes):
    image = Image.open(io.BytesIO(data))
    image.load()  # what datasets.Image().decode_example does
    return image


def data_loader(dataset, workers: int):
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)


CONSUMER_PASSES = 4  # the consumer's fixed work per row: this many reads of every decoded image array


def consume(row: dict, image_column: str) -> None:
    """A fixed amount of work per row in the training process, as a step would do (it reads every pixel
    ``CONSUMER_PASSES`` times), so that the loader is measured against a consumer that is busy too."""
    value = row[image_column]
    arrays = value if isinstance(value, list) else [value]
    for _ in range(CONSUMER_PASSES):
        for array in arrays:
            if array is not None:
                np.asarray(array).sum(dtype=np.uint64)


def loader_pass(dataset, workers: int, rows: int, batch: int = None,
                image_column: str = "image") -> tuple[float, float, int]:
    """(seconds to the first row, seconds for the whole pass, rows): one pass over ``rows`` rows from creating the
    DataLoader to the last row, workers' start-up included, every row consumed (:func:`consume`). ``batch``: the
    workers send lists of that many rows (``collate_fn=list``) instead of one row at a time."""
    import torch

    started = time.perf_counter()
    if batch:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=list)
        iterator = (row for rows_ in loader for row in rows_)
    else:
        iterator = iter(data_loader(dataset, workers))
    read, first = 0, None
    for row in iterator:
        consume(row, image_column)
        read += 1
        if first is None:
            first = time.perf_counter()
        if read == rows:
            break
    whole = time.perf_counter() - started
    del iterator  # stops the workers
    return first - started, whole, read


def decode_resized_all(images) -> int:
    from svitpipe.training.fast_decode import decode_resized

    return decode_all(lambda data: decode_resized(data, DECODE_SIZE), images)


# --------------------------------------------------------------------------------------------------------------------
# The same rows in other formats
# --------------------------------------------------------------------------------------------------------------------


def write_webdataset(files, image_column: str, out_dir: str) -> list[str]:
    """One tar per Parquet shard: ``<id>.jpg`` (the stored bytes) and ``<id>.json`` (every other column)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    tars = []
    for index, path in enumerate(files):
        target = os.path.join(out_dir, f"shard-{index:05d}.tar")
        with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as archive:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=100):
                for row in batch.to_pylist():
                    key = str(row["id"]).replace(".", "_")
                    image = row.pop(image_column)["bytes"]
                    for name, data in ((f"{key}.jpg", image), (f"{key}.json", json.dumps(row).encode())):
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        archive.addfile(info, io.BytesIO(data))
        tars.append(target)
    return tars


def webdataset_stream(tars):
    import datasets

    return datasets.load_dataset("webdataset", data_files={"train": tars}, split="train", streaming=True)


def write_llava(folder: str, config: str, out_dir: str) -> dict:
    from svitpipe.training.export import export_llava, iter_undecoded_rows

    shutil.rmtree(out_dir, ignore_errors=True)
    return export_llava(iter_undecoded_rows(stream(folder, config)), out_dir, config)


def llava_read(out_dir: str, config: str, decode: bool, limit=None) -> int:
    """What a LLaVA-style loader does: load the JSON, then open each record's image file."""
    with open(os.path.join(out_dir, f"{config}.json"), encoding="utf-8") as f:
        records = json.load(f)
    rows = 0
    for record in records[:limit]:
        path = os.path.join(out_dir, "images", record["image"])
        if decode:
            Image.open(path).convert("RGB")  # LLaVA's own call
        else:
            with open(path, "rb") as f:
                f.read()
        rows += 1
    return rows


# --------------------------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------------------------


def run(results: Results, family: str, folder: str, config: str, image_column: str, work_dir: str,
        repeats: dict, decode_rows: int, loader_rows: int) -> None:
    import datasets

    datasets.disable_progress_bars()
    section = f"read/{family}"
    files = files_under(os.path.join(folder, "data", config), ".parquet")
    shard_bytes = sum(os.path.getsize(p) for p in files)
    rows = pq.ParquetDataset(files).read(columns=["id"]).num_rows
    k = repeats["bytes"]

    def add(name, seconds, n, size, notes=""):
        return results.add(section, Measurement(name, seconds, n, size, notes))

    # The same rows as WebDataset tars and as LLaVA JSON + image folder.
    tars = write_webdataset(files, image_column, os.path.join(work_dir, "webdataset", config))
    tar_bytes = sum(os.path.getsize(p) for p in tars)
    llava_dir = os.path.join(work_dir, "llava", config)
    write_llava(folder, config, llava_dir)
    llava_bytes = sum(os.path.getsize(p) for p in files_under(llava_dir))

    # Bytes only, every row; the readers take turns (A B C ..., A B C ...) so that noise falls on all of them.
    timings = timed_interleaved({
        "pyarrow-iter-batches": lambda: pyarrow_batches(files),
        "pyarrow-to-pylist": lambda: pyarrow_python_rows(files),
        "datasets-stream": (count, lambda: stream(folder, config).decode(False)),
        "webdataset-stream": (count, lambda: webdataset_stream(tars).decode(False)),
        "llava-json-folder": lambda: llava_read(llava_dir, config, decode=False),
    }, k, warmup=True)
    sizes = {"webdataset-stream": tar_bytes, "llava-json-folder": llava_bytes}
    notes = {
        "pyarrow-iter-batches": "pq.ParquetFile.iter_batches(100)",
        "pyarrow-to-pylist": "iter_batches + RecordBatch.to_pylist()",
        "datasets-stream": "load_dataset(folder, config, streaming=True).decode(False)",
        "webdataset-stream": 'load_dataset("webdataset").decode(False)',
        "llava-json-folder": "json.load + open().read() per image",
    }
    measured = {name: add(f"bytes/{name}", seconds, n, sizes.get(name, shard_bytes), notes[name])
                for name, (seconds, n) in timings.items()}
    assert all(m.rows == rows for m in measured.values()), {name: m.rows for name, m in measured.items()}
    pyarrow, ours = measured["pyarrow-iter-batches"], measured["datasets-stream"]
    webdataset, llava = measured["webdataset-stream"], measured["llava-json-folder"]

    ratio = results.ratio(f"{section}/bytes/datasets-vs-pyarrow-best", pyarrow.best / ours.best,
                          of=ours.name, over=pyarrow.name, how="best of k")
    results.ratio(f"{section}/bytes/datasets-vs-pyarrow-median", pyarrow.median / ours.median,
                  of=ours.name, over=pyarrow.name, how="medians")
    results.ratio(f"{section}/bytes/pyarrow-to-pylist-vs-pyarrow-best", pyarrow.best / measured["pyarrow-to-pylist"].best,
                  of="pyarrow-to-pylist", over=pyarrow.name, how="best of k: the cost of Python rows alone")
    results.ratio(f"{section}/bytes/datasets-vs-webdataset", webdataset.best / ours.best,
                  of=ours.name, over=webdataset.name, how="rows/s, best of k")
    results.ratio(f"{section}/bytes/datasets-vs-llava", llava.best / ours.best,
                  of=ours.name, over=llava.name, how="rows/s, best of k")
    results.target(f"read {family} bytes only: >= 0.5 of pyarrow iter_batches (best of k)", ratio, 0.5,
                   detail=f"pyarrow + to_pylist alone: {pyarrow.best / measured['pyarrow-to-pylist'].best:.2f}x")

    # With decode, the first decode_rows rows, readers in turn.
    from svitpipe.training.fast_decode import decode_resized

    r = repeats["decode"]
    # A multiple of the map's batch size, so that the stream decodes exactly the rows it yields.
    decode_rows = max(MAP_BATCH, decode_rows - decode_rows % MAP_BATCH)
    images = first_image_bytes(files, image_column, decode_rows)
    n_decode = len(images)
    image_bytes = sum(map(len, images))
    fast_name = f"datasets-stream-recommended-{DECODE_SIZE}"
    bare_name = f"pillow-decode-resized-{DECODE_SIZE}"
    timings = timed_interleaved({
        "pillow-open-load": lambda: decode_all(pillow_decode, images),
        "datasets-stream-default-image": (lambda ds: count(ds, n_decode), lambda: stream(folder, config)),
        "webdataset-stream": (lambda ds: count(ds, n_decode), lambda: webdataset_stream(tars)),
        "llava-json-folder": lambda: llava_read(llava_dir, config, decode=True, limit=n_decode),
        bare_name: lambda: decode_all(lambda data: decode_resized(data, DECODE_SIZE), images),
        fast_name: (lambda ds: count(ds, n_decode), lambda: recommended(folder, config, image_column)),
    }, r, warmup=True)
    notes = {
        "pillow-open-load": "Image.open(BytesIO).load(), bytes in memory",
        "datasets-stream-default-image": "load_dataset(streaming=True), Image()",
        "webdataset-stream": 'load_dataset("webdataset"), Image()',
        "llava-json-folder": "Image.open(path).convert('RGB')",
        bare_name: "decode_resized(bytes, 448) in a loop, bytes in memory",
        fast_name: "prepare_for_fast_decode + map(DecodeTransform(448), batched=True, batch_size=16)",
    }
    decoded = {name: add(f"decode/{name}", seconds, n_decode, image_bytes, notes[name])
               for name, (seconds, _) in timings.items()}
    pillow, default = decoded["pillow-open-load"], decoded["datasets-stream-default-image"]
    web_decode, llava_decode = decoded["webdataset-stream"], decoded["llava-json-folder"]
    fast_bare, fast = decoded[bare_name], decoded[fast_name]

    results.ratio(f"{section}/decode/default-vs-pillow", pillow.median / default.median,
                  of=default.name, over=pillow.name, how="medians")
    results.ratio(f"{section}/decode/webdataset-vs-pillow", pillow.median / web_decode.median,
                  of=web_decode.name, over=pillow.name, how="medians")
    results.ratio(f"{section}/decode/llava-vs-pillow", pillow.median / llava_decode.median,
                  of=llava_decode.name, over=pillow.name, how="medians")
    same_work = results.ratio(f"{section}/decode/recommended-vs-bare-decode-resized", fast_bare.median / fast.median,
                              of=fast.name, over=fast_bare.name, how="medians; same decode work")
    vs_pillow = results.ratio(f"{section}/decode/recommended-vs-pillow-full-decode", pillow.median / fast.median,
                              of=fast.name, over=pillow.name, how="medians; rows/s of a 448 px array vs a full image")
    results.target(f"read {family} recommended path: >= 0.9 of Pillow's in-memory rate for the same decode",
                   same_work, 0.9, detail="decode_resized(448) in the stream vs the same call on bytes in memory")
    results.target(f"read {family} recommended path: >= 0.9 of Pillow's in-memory full decode", vs_pillow, 0.9,
                   detail="rows/s of the stream's 448 px arrays vs Image.open().load() of the same bytes")

    # Where the decode paths' time goes, per row: the stream's own cost (bytes-only pass) and the decode itself.
    per_row = lambda m: m.median / m.rows * 1e3  # noqa: E731
    results.facts[f"{section}/decode/ms-per-row"] = {
        "stream bytes only (datasets)": per_row(ours),
        "pillow open+load, bytes in memory": per_row(pillow),
        "datasets stream, default Image()": per_row(default),
        "default minus (pillow + stream bytes only)": per_row(default) - per_row(pillow) - per_row(ours),
        "decode_resized(448), bytes in memory": per_row(fast_bare),
        "datasets stream, recommended path": per_row(fast),
        "recommended minus (decode_resized + stream bytes only)": per_row(fast) - per_row(fast_bare) - per_row(ours),
    }

    # DataLoader over the recommended path (lists of 8 rows per transfer), with 0 and 2 workers, and 2 workers sending
    # one row per transfer (batch_size=None) for comparison: whole passes, start-up included, with a consumer doing
    # fixed work per row; variants take turns.
    variants = {0: (0, LOADER_BATCH), 2: (2, LOADER_BATCH), "2-one-row": (2, None)}
    loader_rows = min(loader_rows, rows)
    startup = {key: [] for key in variants}
    steady = {key: [] for key in variants}
    for _ in range(repeats["loader"]):
        for key, (workers, batch) in variants.items():
            first, rest, n = loader_pass(recommended(folder, config, image_column), workers, loader_rows, batch,
                                         image_column)
            startup[key].append(first)
            steady[key].append(rest)
    loader = {}
    for key, (workers, batch) in variants.items():
        label = f"{workers}-workers" + (f"-batch-{batch}" if batch else "-one-row")
        results.add(section, Measurement(f"decode/dataloader-{label}-startup", startup[key], None, None,
                                         "seconds to the first row"))
        loader[key] = add(f"decode/dataloader-{label}-{DECODE_SIZE}", steady[key], n, None,
                          f"DataLoader(num_workers={workers}, batch_size={batch}"
                          + (", collate_fn=list)" if batch else ")") + ", recommended path, whole pass, consumer at work")
    results.ratio(f"{section}/decode/dataloader-2-one-row-vs-0", loader[0].median / loader["2-one-row"].median,
                  of=loader["2-one-row"].name, over=loader[0].name,
                  how="medians, whole passes; 2 workers sending one row per transfer (batch_size=None)")
    scaling = results.ratio(f"{section}/decode/dataloader-2-vs-0", loader[0].median / loader[2].median,
                            of=loader[2].name, over=loader[0].name,
                            how=f"medians, whole passes; the recipe's {LOADER_BATCH} rows per transfer")
    # About a second of decoding per process (the same images over again if there are few).
    per_image = fast_bare.median / fast_bare.rows
    wanted = int(repeats["ceiling_seconds"] / per_image)
    sample = (images * (1 + wanted // len(images)))[: max(len(images), wanted)]
    one, two = parallel_ceiling(decode_resized_all, (sample,), ((sample,), (sample,)), repeats["ceiling"])
    ceiling = results.add(section, Measurement("decode/ceiling-2-processes", two, 2 * len(sample), None,
                                               "decode_resized(448) in 2 forked processes at once"))
    single = results.add(section, Measurement("decode/ceiling-1-process", one, len(sample), None,
                                              "decode_resized(448) in 1 forked process"))
    limit = results.ratio(f"{section}/decode/machine-ceiling-2-vs-1", 2 * single.best / ceiling.best,
                          of=ceiling.name, over=single.name, how="best of k; the same decode, no loader: this machine's limit")
    spread = max(steady[2]) / min(steady[2]) - 1 if len(steady[2]) > 1 else 0.0
    above = scaling > limit * 1.05
    results.target(f"read {family} DataLoader 2 workers: >= 1.6x one process", scaling, 1.6,
                   detail=f"machine ceiling for the same decode {limit:.2f}x; loader reaches {scaling / limit:.0%} of it"
                          f"; 2-worker passes spread {spread:.0%}"
                          + ("; ABOVE the ceiling: the passes and the ceiling disagree, rerun on a quiet machine"
                             if above else ""))


# --------------------------------------------------------------------------------------------------------------------
# Layout choices
# --------------------------------------------------------------------------------------------------------------------


def column_codecs(path: str) -> dict:
    metadata = pq.ParquetFile(path).metadata
    group = metadata.row_group(0)
    return {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}


def column_bytes(files) -> dict:
    """Per leaf column: bytes on disk and uncompressed, summed over files and row groups."""
    totals = {}
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for i in range(group.num_columns):
                column = group.column(i)
                entry = totals.setdefault(column.path_in_schema, [0, 0])
                entry[0] += column.total_compressed_size
                entry[1] += column.total_uncompressed_size
    return totals


def run_layouts(results: Results, family: str, folder: str, config: str, work_dir: str, repeats: dict) -> None:
    """The published shards rewritten with other codecs: sizes, write time, read speed (pyarrow, datasets)."""
    from svitpipe.features import features_for
    from svitpipe.publish.parquet_layout import ParquetLayout, image_bytes_columns, write_table

    section = f"layout/{family}"
    files = files_under(os.path.join(folder, "data", config), ".parquet")
    features = features_for(config)
    images = image_bytes_columns(features)
    codecs = column_codecs(files[0])
    raw_images = all(codecs[c] == "UNCOMPRESSED" for c in images)
    zstd_text = all(codec == "ZSTD" for column, codec in codecs.items() if column not in images)
    results.facts[f"{section}/published-codecs"] = codecs
    results.target(f"layout {family}: image bytes stored uncompressed, text zstd (published shards' metadata)",
                   float(raw_images and zstd_text), 1.0, unit="", detail=json.dumps(codecs))

    tables = [pq.read_table(p) for p in files]
    variants = {
        "published (images raw, text zstd)": ParquetLayout(),
        "text uncompressed": ParquetLayout(text_compression="none"),
        "images zstd too": ParquetLayout(compress_images=True),
    }
    sizes = {}
    k = repeats["bytes"]
    for label, layout in variants.items():
        out = os.path.join(work_dir, "layouts", config, label.split(" (")[0].replace(" ", "-"))
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        paths = [os.path.join(out, os.path.basename(p)) for p in files]

        def write_all():
            for table, path in zip(tables, paths):
                write_table(path, table, features, layout)

        seconds, _ = timed(write_all, 1)
        size = sum(os.path.getsize(p) for p in paths)
        rows = sum(t.num_rows for t in tables)
        results.add(section, Measurement(f"write/{label}", seconds, rows, size, "parquet_layout.write_table"))
        seconds, _ = timed(lambda: pyarrow_batches(paths), k, warmup=True)
        results.add(section, Measurement(f"read-pyarrow/{label}", seconds, rows, size))
        seconds, _ = timed(lambda ds: count(ds), k, setup=lambda: _parquet_stream(paths), warmup=True)
        results.add(section, Measurement(f"read-datasets/{label}", seconds, rows, size, "streaming, decode(False)"))
        columns = column_bytes(paths)
        text = sum(v[0] for c, v in columns.items() if c not in images)
        sizes[label] = {"total_bytes": size, "text_bytes": text,
                        "image_bytes": sum(v[0] for c, v in columns.items() if c in images)}
    results.facts[f"{section}/sizes"] = sizes
    base, plain, zstd = (sizes[label] for label in variants)
    labels = list(variants)
    results.ratio(f"{section}/text-zstd-shrinks-text-to", base["text_bytes"] / plain["text_bytes"],
                  of=f"text bytes, {labels[0]}", over=f"text bytes, {labels[1]}")
    results.ratio(f"{section}/text-zstd-shrinks-shards-to", base["total_bytes"] / plain["total_bytes"],
                  of=labels[0], over=labels[1], how="total shard bytes")
    results.ratio(f"{section}/image-zstd-shrinks-shards-to", zstd["total_bytes"] / base["total_bytes"],
                  of=labels[2], over=labels[0], how="total shard bytes")
    for reader in ("pyarrow", "datasets"):
        published = results.get(f"{section}/read-{reader}/{labels[0]}")
        for other in labels[1:]:
            measured = results.get(f"{section}/read-{reader}/{other}")
            results.ratio(f"{section}/read-{reader}-{other.replace(' ', '-')}-vs-published",
                          published.best / measured.best, of=other, over=labels[0], how="rows/s, best of k")
    shutil.rmtree(os.path.join(work_dir, "layouts", config), ignore_errors=True)


def _parquet_stream(paths):
    import datasets

    return datasets.load_dataset("parquet", data_files={"train": paths}, split="train", streaming=True).decode(False)
