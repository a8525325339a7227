"""Build: upstream sources -> published shards, against a raw copy of the same bytes and the plain ``datasets`` path.

For each family (SVIT ``referring``, SA-1B ``sa1b-en-single``), every repetition starts with the sources evicted from
the page cache (``posix_fadvise``) and ends with the written files fsynced, so all three read from the disk and make
their output durable:

* raw copy: ``shutil.copyfile`` of every source file (annotation zip or jsonl, image zips or tars);
* ``upload.py`` (``upload.main``): caption index, units, shards, card, checks; ``--num-proc 1`` and ``2``; and the same
  build as a whole command-line process (``python upload.py``, ``--num-proc 1``): start-up and imports included;
* the plain ``datasets`` path: ``download_and_prepare()`` into the Arrow cache, then what ``push_to_hub`` does to write
  its Parquet shards, locally (shards of at most 500 MB, ``embed_table_storage``, ``to_parquet`` with
  ``datasets``' own row groups); ``num_proc`` 1 and 2 for both steps.

MB/s are source bytes per second for all three, so the ratios are ratios of wall time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from multiprocessing import get_context

from .common import Measurement, Results, evict, files_under, fsync_files, quiet, timed_interleaved

PLAIN_PATH_TARGET = 3.0  # upload.py against download_and_prepare + push_to_hub's shard writing
SVIT_CONFIG = "referring"
SA1B_CONFIG = "sa1b-en-single"


def family_inputs(family: str, facts: dict) -> dict:
    """Config, ``upload.py`` source options, builder source kwargs, rows and source files of one family."""
    if family == "svit":
        root = facts["root"]
        return {
            "config": SVIT_CONFIG,
            "argv": ["--svit-source", root],
            "kwargs": {"svit_source": root},
            "rows": facts["records"],
            "files": facts["source_files"],
            "bytes": facts["source_bytes"],
        }
    captions, images = os.path.join(facts["root"], "captions"), os.path.join(facts["root"], "images")
    return {
        "config": SA1B_CONFIG,
        "argv": ["--sa1b-captions-source", captions, "--sa1b-images-source", images],
        "kwargs": {"sa1b_captions_source": captions, "sa1b_images_source": images},
        "rows": facts["images"],
        "files": facts["source_files"],
        "bytes": facts["source_bytes"],
    }


def raw_copy(inputs: dict, scratch: str) -> None:
    os.makedirs(scratch, exist_ok=True)
    targets = []
    for index, path in enumerate(inputs["files"]):
        target = os.path.join(scratch, f"{index:04d}-{os.path.basename(path)}")
        shutil.copyfile(path, target)
        targets.append(target)
    fsync_files(targets)


def upload_build(inputs: dict, out_dir: str, num_proc: int) -> int:
    import upload

    argv = ["--configs", inputs["config"], *inputs["argv"], "--local-dir", out_dir, "--num-proc", str(num_proc)]
    with quiet():
        status = upload.main(argv)
    if num_proc > 1:
        # Where upload.py's workers start from a fork server (this process runs other threads), the server outlives
        # main(); stop it, so that every repetition pays its start-up as a command-line run does.
        from multiprocessing import forkserver

        forkserver._forkserver._stop()
    if status != 0:
        raise RuntimeError(f"upload.main({argv}) returned {status}")
    fsync_files(files_under(os.path.join(out_dir, "data"), ".parquet"))
    return status


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def upload_command(inputs: dict, out_dir: str, num_proc: int) -> int:
    """The same build as ``upload_build``, as a user runs it: ``python upload.py ...`` in a new process."""
    argv = ["--configs", inputs["config"], *inputs["argv"], "--local-dir", out_dir, "--num-proc", str(num_proc)]
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "upload.py"), *argv], cwd=REPO_ROOT,
                            capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"python upload.py {argv} returned {result.returncode}:\n{result.stderr[-3000:]}")
    fsync_files(files_under(os.path.join(out_dir, "data"), ".parquet"))
    return result.returncode


def _write_push_shards(dataset, indices, num_shards, out_dir, writer_batch_size):
    """What ``Dataset._push_parquet_shards_to_hub_single`` does for its shards, writing to ``out_dir`` instead."""
    from datasets.table import embed_table_storage

    paths = []
    for index in indices:
        shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True)
        shard = shard.with_format("arrow").map(
            embed_table_storage, batched=True, batch_size=writer_batch_size, keep_in_memory=True
        )
        path = os.path.join(out_dir, f"train-{index:05d}-of-{num_shards:05d}.parquet")
        shard.with_format(None).to_parquet(path, batch_size=writer_batch_size)
        paths.append(path)
    return paths


def datasets_path(inputs: dict, out_dir: str, num_proc: int) -> int:
    """``download_and_prepare`` + ``push_to_hub``'s shard writing, locally; returns the rows written."""
    import datasets
    from datasets import config as datasets_config
    from datasets.arrow_writer import get_writer_batch_size_from_data_size, get_writer_batch_size_from_features
    from datasets.utils.py_utils import convert_file_size_to_int

    from svit_internvl import SVITInternVL

    cache = os.path.join(out_dir, "arrow-cache")
    builder = SVITInternVL(config_name=inputs["config"], cache_dir=cache, **inputs["kwargs"])
    builder.download_and_prepare(num_proc=num_proc if num_proc > 1 else None)
    dataset = builder.as_dataset(split="train")
    nbytes = dataset._estimate_nbytes()
    num_shards = max(int(nbytes / convert_file_size_to_int(datasets_config.MAX_SHARD_SIZE)) + 1, num_proc)
    writer_batch_size = get_writer_batch_size_from_features(dataset.features) or get_writer_batch_size_from_data_size(
        len(dataset), nbytes
    )
    shards_dir = os.path.join(out_dir, "data")
    os.makedirs(shards_dir)
    jobs = [list(range(num_shards))[job::num_proc] for job in range(num_proc)]
    if num_proc == 1:
        paths = _write_push_shards(dataset, jobs[0], num_shards, shards_dir, writer_batch_size)
    else:
        with get_context("spawn").Pool(num_proc) as pool:
            paths = [p for part in pool.starmap(
                _write_push_shards, [(dataset, job, num_shards, shards_dir, writer_batch_size) for job in jobs]
            ) for p in part]
    fsync_files(paths)
    del dataset, builder
    datasets.disable_progress_bars()
    return num_shards


def run(results: Results, family: str, facts: dict, work_dir: str, published_dir: str, repeats: dict) -> dict:
    """All build measurements of one family; leaves the published folder (``upload.py --num-proc 1``) in
    ``published_dir`` for the read benchmarks and returns its path."""
    inputs = family_inputs(family, facts)
    section = f"build/{family}"
    rows, size = inputs["rows"], inputs["bytes"]
    scratch = os.path.join(work_dir, "scratch")

    def fresh_scratch():
        shutil.rmtree(scratch, ignore_errors=True)
        evict(inputs["files"])
        return scratch

    # Run in turn (copy, upload 1, upload 2, datasets 1, datasets 2, again...), so that noise hits all alike.
    cases = {
        "raw-copy": (lambda out: raw_copy(inputs, out), fresh_scratch),
        "upload-num-proc-1": (lambda out: upload_build(inputs, out, 1), fresh_scratch),
        "upload-num-proc-2": (lambda out: upload_build(inputs, out, 2), fresh_scratch),
        "upload-command-num-proc-1": (lambda out: upload_command(inputs, out, 1), fresh_scratch),
        "upload-command-num-proc-2": (lambda out: upload_command(inputs, out, 2), fresh_scratch),
        "datasets-num-proc-1": (lambda out: datasets_path(inputs, out, 1), fresh_scratch),
        "datasets-num-proc-2": (lambda out: datasets_path(inputs, out, 2), fresh_scratch),
    }
    notes = {
        "raw-copy": "shutil.copyfile of every source file + fsync",
        "upload-num-proc-1": f"upload.main --configs {inputs['config']} --num-proc 1 + fsync",
        "upload-num-proc-2": f"upload.main --configs {inputs['config']} --num-proc 2 + fsync",
        "upload-command-num-proc-1": f"python upload.py --configs {inputs['config']} --num-proc 1 (a new process) "
                                     "+ fsync",
        "upload-command-num-proc-2": f"python upload.py --configs {inputs['config']} --num-proc 2 (a new process) "
                                     "+ fsync",
        "datasets-num-proc-1": "download_and_prepare + push_to_hub's shard writing (local) + fsync",
        "datasets-num-proc-2": "download_and_prepare(num_proc=2) + push_to_hub's shard writing (local, 2 processes)",
    }
    timings = timed_interleaved(cases, repeats["build"])
    for name, (seconds, _) in timings.items():
        results.add(section, Measurement(name, seconds, rows, size, notes[name]))
    shutil.rmtree(scratch, ignore_errors=True)

    shutil.rmtree(published_dir, ignore_errors=True)
    upload_build(inputs, published_dir, 1)
    shards = files_under(os.path.join(published_dir, "data"), ".parquet")
    results.facts[f"published/{inputs['config']}"] = {
        "folder": published_dir, "shards": len(shards), "bytes": sum(os.path.getsize(p) for p in shards), "rows": rows,
    }

    copy = results.get(f"{section}/raw-copy")
    for num_proc in (1, 2):
        build = results.get(f"{section}/upload-num-proc-{num_proc}")
        plain = results.get(f"{section}/datasets-num-proc-{num_proc}")
        vs_copy = results.ratio(f"{section}/upload-{num_proc}-vs-raw-copy", copy.median / build.median,
                                of=build.name, over=copy.name, how="MB/s of sources, medians")
        vs_plain = results.ratio(f"{section}/upload-{num_proc}-vs-datasets-{num_proc}", plain.median / build.median,
                                 of=build.name, over=plain.name, how="medians")
        results.target(f"build {family} --num-proc {num_proc}: >= 0.5 of raw-copy MB/s", vs_copy, 0.5)
        results.target(f"build {family} --num-proc {num_proc}: >= {PLAIN_PATH_TARGET}x the plain datasets path",
                       vs_plain, PLAIN_PATH_TARGET, detail=f"spread of the build's repetitions {_spread(build):.0%}")
    command = results.get(f"{section}/upload-command-num-proc-1")
    in_process = results.get(f"{section}/upload-num-proc-1")
    results.ratio(f"{section}/upload-command-1-vs-in-process", in_process.median / command.median, of=command.name,
                  over=in_process.name, how="medians; what start-up and imports cost a command-line run")
    results.target(f"build {family} as a command, --num-proc 1: >= 0.5 of raw-copy MB/s",
                   copy.median / command.median, 0.5, detail=f"spread {_spread(command):.0%}")
    one, two = results.get(f"{section}/upload-num-proc-1"), results.get(f"{section}/upload-num-proc-2")
    results.ratio(f"{section}/upload-2-vs-1", one.median / two.median, of=two.name, over=one.name, how="medians")
    one, two = command, results.get(f"{section}/upload-command-num-proc-2")
    results.ratio(f"{section}/upload-command-2-vs-1", one.median / two.median, of=two.name, over=one.name,
                  how="medians of whole command-line runs")
    results.target(f"build {family} as a command, --num-proc 2: >= 1.7x --num-proc 1", one.median / two.median, 1.7,
                   detail=f"spreads {_spread(one):.0%} / {_spread(two):.0%}; 2 cores, sources evicted, output fsynced")
    return published_dir



def _spread(measurement: Measurement) -> float:
    """How far the slowest repetition is above the fastest."""
    seconds = measurement.seconds
    return max(seconds) / min(seconds) - 1 if len(seconds) > 1 and min(seconds) > 0 else 0.0
