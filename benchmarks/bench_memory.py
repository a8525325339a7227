"""Memory: peak RSS of building and of streaming a config whose upstream annotation file is large, against loading
the same file whole.

* SVIT ``referring``: a generated ``data/referring_qa.json`` (one JSON array, extracted layout) over tiny images in
  ``raw/images.zip`` / ``raw/images2.zip`` (one per record, ~110K for 1 GB, like Visual Genome's 108K), two units
  (``--svit-num-shards 2``; the record index reads the array once, then each unit its own range of records).
  Baseline: ``json.load`` of the file.
* SA-1B ``sa1b-en-single``: a generated captions jsonl (11K lines per tar, as in SA-1B) over small tars of tiny
  images. Baseline: ``json.loads`` of every line into one list (``json.load`` cannot read jsonl).

Each measurement is its own process (``benchmarks.rss_probe``); peak RSS is ``ru_maxrss``, checked against ``VmHWM``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from .common import Results

PROBE = f"{__package__}.rss_probe"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MB = 300
GROWTH_LIMIT_MB = 60  # what a stream may add to its imports
# In the order a training or publishing process meets them; each is measured on top of those before it.
IMPORT_ORDER = ("numpy", "PIL.Image", "pyarrow", "pyarrow.parquet", "pandas", "fsspec", "huggingface_hub",
                "datasets", "svitpipe.builder", "svitpipe.publish.upload", "svitpipe.training", "torch",
                "torch.utils.data", "cv2", "matplotlib.pyplot")


def _start(mode: str, params: dict, log_dir: str, extra_env: dict = None) -> tuple:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    tag = mode + "".join(f"-{value}" for value in (extra_env or {}).values())
    out = open(os.path.join(log_dir, f"{tag}.out"), "w+")
    err = open(os.path.join(log_dir, f"{tag}.err"), "w+")
    process = subprocess.Popen([sys.executable, "-m", PROBE, mode, json.dumps(params)], stdout=out, stderr=err,
                               text=True, env=env, cwd=REPO_ROOT, start_new_session=True)
    return process, out, err, time.monotonic()


def _wait_any(running: dict, timeout: float) -> str:
    """The name of a process that has ended, or been killed for running longer than ``timeout``."""
    while True:
        for name, (process, _, _, started) in running.items():
            if process.poll() is None and time.monotonic() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process.poll() is not None:
                return name
        time.sleep(0.1)


def _finish(mode: str, handle: tuple) -> dict:
    process, out, err, started = handle
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    out.close()
    err.close()
    if process.returncode != 0:
        raise RuntimeError(f"{mode} failed or was stopped ({process.returncode}) after "
                           f"{time.monotonic() - started:.0f} s:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    if abs(result["peak_kb"] - result["hwm_kb"]) > 1024:
        raise RuntimeError(f"{mode}: ru_maxrss {result['peak_kb']} kB is not this process's own (VmHWM "
                           f"{result['hwm_kb']} kB)")
    return result


def run(results: Results, svit: dict, sa1b: dict, work_dir: str, timeout: float, sa1b_tars: int,
        allocator_variant: bool = False) -> None:
    scratch = os.path.join(work_dir, "scratch-memory")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    captions_root = os.path.join(sa1b["root"], "captions")
    images_root = os.path.join(sa1b["root"], "images")
    tars = [f"sa_{i:06d}" for i in range(min(sa1b_tars, sa1b["tars"]))]
    cases = {
        "svit/build": ("svit-build", {"argv": ["--configs", "referring", "--svit-source", svit["root"],
                                               "--svit-num-shards", "2", "--local-dir", f"{scratch}/svit-build"]}),
        "svit/stream": ("svit-stream", {"config": "referring", "cache_dir": f"{scratch}/svit-cache",
                                        "kwargs": {"svit_source": svit["root"], "svit_num_shards": 2}}),
        "svit/json.load": ("json-load", {"path": svit["annotation"]}),
        "sa1b/build": ("sa1b-build", {"argv": ["--configs", "sa1b-en-single", "--sa1b-captions-source",
                                               captions_root, "--sa1b-images-source", images_root,
                                               "--local-dir", f"{scratch}/sa1b-build", "--sa1b-tars", *tars]}),
        "sa1b/stream": ("sa1b-stream", {"config": "sa1b-en-single", "cache_dir": f"{scratch}/sa1b-cache",
                                        "kwargs": {"sa1b_captions_source": captions_root,
                                                   "sa1b_images_source": images_root,
                                                   "index_dir": f"{scratch}/sa1b-index",
                                                   "sa1b_tars": tars}}),
        "sa1b/json.loads-every-line": ("jsonl-load", {"path": sa1b["captions"]}),
    }
    results.facts["memory/inputs"] = {
        "svit_annotation_bytes": svit["annotation_bytes"], "svit_records": svit["records"],
        "sa1b_captions_bytes": sa1b["captions_bytes"], "sa1b_lines": sa1b["lines"], "sa1b_tars": sa1b["tars"],
        "sa1b_tars_built_and_streamed": len(tars),
    }
    measured = {}
    probe = _start("imports", {"modules": list(IMPORT_ORDER)}, scratch)
    probe[0].wait(timeout)
    imports = _finish("imports", probe)["imports"]
    results.facts["memory/import-costs"] = _import_table(imports)
    # Two at a time (one per core), longest first: peak RSS is per process, so running side by side changes the
    # time, not the peak.
    queue = ["svit/build", "svit/stream", "sa1b/build", "sa1b/stream", "svit/json.load", "sa1b/json.loads-every-line"]
    # Streaming where torch is not installed: datasets imports torch (~180 MB) whenever it creates an IterableDataset
    # and torch is there; USE_TORCH=0 makes it behave as without torch.
    environments = {"svit/stream-without-torch": {"USE_TORCH": "0"}, "sa1b/stream-without-torch": {"USE_TORCH": "0"}}
    cases["svit/stream-without-torch"] = ("svit-stream", {**cases["svit/stream"][1],
                                                          "cache_dir": f"{scratch}/svit-cache-without-torch"})
    cases["sa1b/stream-without-torch"] = ("sa1b-stream", {**cases["sa1b/stream"][1],
                                                          "cache_dir": f"{scratch}/sa1b-cache-without-torch"})
    queue[2:2] = ["svit/stream-without-torch"]
    queue[5:5] = ["sa1b/stream-without-torch"]
    if allocator_variant:
        # The same build with Arrow allocating through jemalloc instead of its default (mimalloc here).
        mode, params = cases["svit/build"]
        argv = [value if value != f"{scratch}/svit-build" else f"{scratch}/svit-build-jemalloc" for value in params["argv"]]
        cases["svit/build-arrow-jemalloc"] = (mode, {"argv": argv})
        environments["svit/build-arrow-jemalloc"] = {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
        queue.insert(1, "svit/build-arrow-jemalloc")
    running = {}
    while queue or running:
        while queue and len(running) < 2:
            name = queue.pop(0)
            running[name] = _start(*cases[name], scratch, environments.get(name))
        finished = _wait_any(running, timeout)
        handle = running.pop(finished)
        try:
            entry = _finish(cases[finished][0], handle)
        except RuntimeError as err:
            results.errors[f"memory/{finished}"] = str(err)
            continue
        entry["peak_mb"] = entry["peak_kb"] * 1024 / 1e6
        entry["after_imports_mb"] = entry["baseline_kb"] * 1024 / 1e6
        entry["growth_mb"] = (entry["peak_kb"] - entry["baseline_kb"]) * 1024 / 1e6
        measured[finished] = entry
        results.facts[f"memory/{finished}"] = entry
    shutil.rmtree(scratch, ignore_errors=True)
    if "svit/build-arrow-jemalloc" in measured and "svit/build" in measured:
        results.ratio("memory/svit/build-arrow-jemalloc-vs-default", measured["svit/build-arrow-jemalloc"]["peak_mb"]
                      / measured["svit/build"]["peak_mb"], of="svit build, ARROW_DEFAULT_MEMORY_POOL=jemalloc",
                      over="svit build, Arrow's default allocator", how="peak RSS")
    for family, size, baseline in (("svit", svit["annotation_bytes"], "json.load"),
                                   ("sa1b", sa1b["captions_bytes"], "json.loads-every-line")):
        whole = measured.get(f"{family}/{baseline}")
        for what in ("build", "stream", "stream-without-torch"):
            entry = measured.get(f"{family}/{what}")
            if entry is None:
                continue
            if whole is not None:
                results.ratio(f"memory/{family}/{what}-vs-{baseline}", entry["peak_mb"] / whole["peak_mb"],
                              of=f"{family} {what}", over=baseline, how="peak RSS")
            if what != "build":  # a build holds a row group of images per config being written: its peak is the target
                results.target(
                    f"memory {family} {what} from a {size / 1e6:.0f} MB annotation file: growth over imports "
                    f"< {GROWTH_LIMIT_MB} MB", entry["growth_mb"], GROWTH_LIMIT_MB, higher_is_better=False,
                    unit=" MB", detail=f"peak {entry['peak_mb']:.0f} MB = imports {entry['after_imports_mb']:.0f} MB "
                                      "+ growth",
                )
            results.target(
                f"memory {family} {what} from a {size / 1e6:.0f} MB annotation file: peak RSS < {LIMIT_MB} MB",
                entry["peak_mb"], LIMIT_MB, higher_is_better=False, unit=" MB",
                detail=f"after imports {entry['after_imports_mb']:.0f} MB, grew {entry['growth_mb']:.0f} MB; "
                       f"{baseline}: {whole['peak_mb']:.0f} MB" if whole else "")


def _import_table(imports: list) -> dict:
    """module -> {"resident_mb": after it, "adds_mb": over the one before, "seconds"}; None where not installed."""
    table, before = {}, None
    for name, resident_kb, seconds in imports:
        if resident_kb is None:
            table[name] = None
            continue
        table[name] = {"resident_mb": round(resident_kb * 1024 / 1e6, 1),
                       "adds_mb": None if before is None else round((resident_kb - before) * 1024 / 1e6, 1),
                       "seconds": None if seconds is None else round(seconds, 3)}
        before = resident_kb
    return table
