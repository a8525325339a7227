"""Scaling: units of work of ``sa1b-en-single`` (one SA-1B-like tar each) through the engines, with 1 and 2 workers:
the local engine (``run_local``: in this process, or a pool of spawned processes) and Ray (``run_ray``: a local
cluster with 1 or 2 CPUs, one task per unit).

The caption index is built once, before timing (it is per config, not per unit). Every repetition writes the parts
to a fresh folder, so nothing is reused. Measured:

* this machine's own limit: the same units built by one, then by two already running (forked, warmed-up) processes;
* the local engine end to end (a pool of spawned processes starts for every call) and the pool's fixed cost alone
  (every unit already complete); and its steady state: every unit twice (under other keys), rows arriving after
  each worker has delivered its first unit over the time to the last, which is what a long build sees;
* Ray: starting the local cluster, the first run (workers start and import), then runs with warm workers.

The projection in ``project`` turns the per-core rate into hours for the full build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import time
from dataclasses import replace

from .common import Measurement, Results, parallel_ceiling, timed, timed_interleaved


def build_units(units, kwargs: dict, base: str, layout) -> int:
    """Build ``units`` one after another in this process, into a fresh folder under ``base``."""
    import tempfile

    from svitpipe.publish.units import build_unit

    os.makedirs(base, exist_ok=True)
    out = tempfile.mkdtemp(dir=base)
    return sum(build_unit(unit, kwargs, out, layout).num_rows for unit in units)


def _units(config: str, kwargs: dict):
    from svitpipe.publish.units import make_builder, plan_units

    return plan_units(make_builder(config, kwargs))


def time_caption_index(results: Results, captions: str, work_dir: str) -> None:
    """One pass of the caption index over a large captions file (the driver does it once per config)."""
    from svitpipe.sa1b.caption_index import load_or_build_caption_index

    index_dir = os.path.join(work_dir, "scaling-index")
    shutil.rmtree(index_dir, ignore_errors=True)
    seconds, index = timed(lambda: load_or_build_caption_index(captions, index_dir, multi_image=False), 1)
    shutil.rmtree(index_dir, ignore_errors=True)
    results.add("scaling/sa1b", Measurement("caption-index", seconds, index.ledger.records_read,
                                            os.path.getsize(captions), "load_or_build_caption_index, one pass"))


def run(results: Results, facts: dict, work_dir: str, repeats: int, with_ray: bool = True,
        large_captions: str = None, ceiling_repeats: int = 5) -> dict:
    import datasets

    from svitpipe.publish.engines import ray_session, run_local, run_ray
    from svitpipe.publish.parquet_layout import ParquetLayout

    datasets.disable_progress_bars()
    section = "scaling/sa1b"
    root = os.path.join(work_dir, "scaling")
    shutil.rmtree(root, ignore_errors=True)
    kwargs = {
        "sa1b_captions_source": os.path.join(facts["root"], "captions"),
        "sa1b_images_source": os.path.join(facts["root"], "images"),
        "cache_dir": os.path.join(root, "datasets"),
        "index_dir": os.path.join(root, "caption-index"),
        "svit_shard_bytes": int(0.8 * 500e6),
    }
    layout = ParquetLayout()
    units = _units("sa1b-en-single", kwargs)
    rows, size = facts["images"], facts["source_bytes"]
    results.facts[section] = {"units": len(units), "rows": rows, "source_bytes": size}
    parts = os.path.join(root, "parts")

    def fresh():
        shutil.rmtree(parts, ignore_errors=True)
        return parts

    def check(run, expected=rows):
        if run.failures:
            raise RuntimeError(f"units failed: {run.failures}")
        built = sum(result.num_rows for result in run.succeeded)
        if built != expected:
            raise RuntimeError(f"built {built} rows, expected {expected}")
        return run

    measured = {}
    # This machine's limit: the same units built by one, then by two already running processes (half each).
    ideal = os.path.join(root, "ideal")
    one, two = parallel_ceiling(build_units, (units, kwargs, ideal, layout),
                                ((units[0::2], kwargs, ideal, layout), (units[1::2], kwargs, ideal, layout)),
                                ceiling_repeats)
    shutil.rmtree(ideal, ignore_errors=True)
    results.add(section, Measurement("ceiling-1-process", one, rows, size, "build_unit for every unit, 1 forked process"))
    results.add(section, Measurement("ceiling-2-processes", two, rows, size, "half the units in each of 2 forked "
                                     "processes at once (started before timing)"))
    # Best of k: interference from other tenants only ever slows a run down, and one slow run of either side would
    # make the ceiling meaningless (even above 2x).
    limit = results.ratio(f"{section}/machine-ceiling-2-vs-1", min(one) / min(two),
                          of="ceiling-2-processes", over="ceiling-1-process", how="best of k: this machine's limit")

    # The local engine end to end (a pool starts for every call when num_proc > 1) and its fixed cost alone (every
    # unit already complete, so nothing is built).
    cases = {f"local-{workers}": (lambda out, w=workers: check(run_local(units, kwargs, out, layout, num_proc=w)),
                                  fresh) for workers in (1, 2)}
    cases["local-2-fixed-cost"] = lambda: check(run_local(units, kwargs, parts, layout, num_proc=2))
    # Steady state: every unit twice (under other keys), timed between results as they arrive, from the moment
    # every worker has delivered its first unit to the last: the workers are running and warm, as in a long build.
    doubled = units + [replace(unit, key=f"{unit.key}-again") for unit in units]
    steady = {workers: [] for workers in (1, 2)}

    def steady_pass(out, workers):
        arrivals = []
        check(run_local(doubled, kwargs, out, layout, num_proc=workers,
                        on_result=lambda result: arrivals.append((time.perf_counter(), result.num_rows))), 2 * rows)
        start_time = arrivals[workers - 1][0]
        steady[workers].append((sum(n for _, n in arrivals[workers:]), arrivals[-1][0] - start_time))

    for workers in (1, 2):
        cases[f"local-{workers}-doubled"] = (lambda out, w=workers: steady_pass(out, w), fresh)
    timings = timed_interleaved(cases, repeats)
    notes = {"local-1": "run_local(num_proc=1), end to end", "local-2": "run_local(num_proc=2), end to end",
             "local-2-fixed-cost": "run_local(num_proc=2), every unit complete: pool start-up",
             "local-1-doubled": "every unit twice, end to end", "local-2-doubled": "every unit twice, end to end"}
    for name, (seconds, _) in timings.items():
        work = (None, None) if name.endswith("fixed-cost") else ((2 * rows, 2 * size) if "doubled" in name else (rows, size))
        measured[name] = results.add(section, Measurement(name, seconds, *work, notes[name]))
    per_row = size / rows
    for workers in (1, 2):
        window_rows = [n for n, _ in steady[workers]]
        measured[f"local-{workers}-steady"] = results.add(section, Measurement(
            f"local-{workers}-steady", [t * statistics.median(window_rows) / n for n, t in steady[workers]],
            int(statistics.median(window_rows)), int(statistics.median(window_rows) * per_row),
            "every unit twice: rows arriving after each worker's first unit / time to the last"))

    if with_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            results.errors[section + "/ray"] = "ray is not installed"
            with_ray = False
    if with_ray:
        for workers in (1, 2):
            started = time.perf_counter()
            with ray_session(None, workers):
                results.add(section, Measurement(f"ray-{workers}-session-start", [time.perf_counter() - started]))
                seconds, _ = timed(lambda out: check(run_ray(units, kwargs, out, layout, num_cpus=workers)), 1,
                                   setup=fresh)
                results.add(section, Measurement(f"ray-{workers}-first-run", seconds, rows, size,
                                                 "first run: workers start and import"))
                seconds, _ = timed(lambda out: check(run_ray(units, kwargs, out, layout, num_cpus=workers)),
                                   repeats, setup=fresh)
                measured[f"ray-{workers}"] = results.add(section, Measurement(
                    f"ray-{workers}", seconds, rows, size, f"run_ray on a local cluster of {workers} CPU(s), warm"))

    one = measured["local-1"]
    end_to_end = results.ratio(f"{section}/local-2-vs-1-end-to-end", one.median / measured["local-2"].median,
                               of="local-2", over="local-1", how="medians, pool start-up included")
    local = results.ratio(f"{section}/local-2-vs-1-steady", measured["local-1-steady"].median /
                          measured["local-2-steady"].median, of="local-2-steady", over="local-1-steady",
                          how="medians, workers running and warm")
    results.target("scaling local engine: 2 processes >= 1.7x one (workers running)", local, 1.7,
                   detail=f"end to end, start-up included: {end_to_end:.2f}x; machine ceiling {limit:.2f}x")
    if "ray-1" in measured:
        ray = results.ratio(f"{section}/ray-2-vs-1", measured["ray-1"].median / measured["ray-2"].median,
                            of="ray-2", over="ray-1", how="medians, warm workers")
        results.ratio(f"{section}/ray-1-vs-local-1", one.median / measured["ray-1"].median,
                      of="ray-1", over="local-1", how="medians")
        results.target("scaling Ray: 2 workers >= 1.7x one (warm workers)", ray, 1.7,
                       detail=f"machine ceiling {limit:.2f}x")

    # For the projection: hashing a shard (the Hub upload hashes every file) on one core.
    blob = os.urandom(64 << 20)
    seconds, _ = timed(lambda: hashlib.sha256(blob).digest(), 3)
    results.add("scaling", Measurement("sha256-one-core", seconds, None, len(blob), "hashlib.sha256, 64 MB"))
    shutil.rmtree(root, ignore_errors=True)
    if large_captions:
        time_caption_index(results, large_captions, work_dir)
    project(results)
    return measured


# ----------------------------------------------------------------------------------------------------------------------
# Projection: the full sa1b-en-single build (InternVL-SA-1B-Caption's 11M English captions over SA-1B)
# ----------------------------------------------------------------------------------------------------------------------

# Stated assumptions (not measured here); everything else comes from this run.
FULL = {
    "images": 11_000_000,  # one caption line per image
    "tars": 1000,
    "tar_bytes": 10.5e9,  # ~10-11 GB each, images plus SA-1B's per-image mask JSON
    "image_share": 0.85,  # of tar bytes that are JPEG (the mask JSON is read past, not parsed or stored)
    "captions_bytes": 11e9,  # the 11M-line jsonl, ~1 KB a line
    "shard_bytes": 500e6,  # upload.py --max-shard-size default
    "files_per_commit": 50,  # svitpipe.publish.hub_push.push_folder batch_size
    "commits_per_hour": 128,  # Hub limit per repo
    "cores_per_machine": 16,
    "nic_bytes_per_s": 1.25e9,  # 10 Gb/s per machine: tars in from Meta's CDN, parts out to the shared folder
    "shared_fs_bytes_per_s": 5e9,  # aggregate write rate of the shared filesystem --local-dir is on (Ray, >1 machine)
    "push_bytes_per_s": 1.25e9,  # 10 Gb/s from the one machine that pushes (upload.py pushes from its folder)
}


def project(results: Results, machines=(1, 8, 64)) -> dict:
    """Hours for the full build on ``machines`` machines of 16 cores, and what bounds each step.

    Steps, as upload.py runs them: the caption index (one pass over the captions file, on the driver); the units
    (in parallel); then the push (one machine, commits of ``files_per_commit`` files, each batch hashed, then
    uploaded). The per-core rate (the local engine's steady state), the parallel efficiency (its 2-process scaling
    / 2), the caption index rate, SHA-256 and JPEG decode rates are measured in this run.
    """
    section = "scaling/sa1b"
    one = results.measurements.get(f"{section}/local-1-steady")
    if one is None:
        return {}
    per_core_bytes = one.bytes / one.median
    per_core_rows = one.rows / one.median
    source = results.facts.get("sources/sa1b", {})
    image_share = source["image_bytes"] / source["source_bytes"] if source.get("image_bytes") else 1.0
    per_core_image_bytes = per_core_bytes * image_share
    scaling = results.ratios.get(f"{section}/local-2-vs-1-steady", {}).get("value", 2.0)
    efficiency = min(1.0, scaling / 2)
    index = results.measurements.get(f"{section}/caption-index")
    index_rate = index.bytes / index.median if index else None
    sha = results.measurements.get("scaling/sha256-one-core")
    sha_rate = sha.bytes / sha.median if sha else None
    decode = results.measurements.get("decode/sa1b/pillow-full-decode")
    decode_s = decode.median / decode.rows if decode else None

    total_in = FULL["tars"] * FULL["tar_bytes"]
    images_bytes = total_in * FULL["image_share"]
    files = images_bytes / (0.9 * FULL["shard_bytes"])  # shards close a little under the limit
    commits = files / FULL["files_per_commit"]
    hashing_h = images_bytes / sha_rate / 3600 if sha_rate else 0.0
    upload_h = images_bytes / FULL["push_bytes_per_s"] / 3600
    push = {"commit rate": commits / FULL["commits_per_hour"], "hash then upload, one machine": hashing_h + upload_h}
    push_bound = max(push, key=push.get)
    index_h = FULL["captions_bytes"] / index_rate / 3600 if index_rate else 0.0
    # CPU per image: the build's (bytes through Parquet dominate), plus a full decode with --image-check decode.
    image_s = max(images_bytes / per_core_image_bytes, FULL["images"] / per_core_rows) / FULL["images"]
    table = {}
    for m in machines:
        cores = m * FULL["cores_per_machine"] * efficiency
        bounds = {
            "CPU": FULL["images"] * image_s / cores / 3600,
            "network in": (total_in + (images_bytes if m > 1 else 0)) / (FULL["nic_bytes_per_s"] * m) / 3600,
        }
        if m > 1:
            bounds["shared filesystem"] = images_bytes / FULL["shared_fs_bytes_per_s"] / 3600
        build_bound = max(bounds, key=bounds.get)
        decode_cpu = FULL["images"] * (image_s + decode_s) / cores / 3600 if decode_s else None
        table[m] = {
            "cores": m * FULL["cores_per_machine"], "index_h": index_h, **{f"{k}_h": v for k, v in bounds.items()},
            "cpu_with_decode_check_h": decode_cpu, "build_h": bounds[build_bound], "build_bound": build_bound,
            "push_h": push[push_bound], "push_bound": push_bound,
            "total_h": index_h + bounds[build_bound] + push[push_bound],
        }
    out = {
        "assumptions": FULL, "per_core_source_mb_s": per_core_bytes / 1e6,
        "per_core_image_mb_s": per_core_image_bytes / 1e6, "per_core_rows_s": per_core_rows,
        "parallel_efficiency": efficiency, "caption_index_mb_s": index_rate / 1e6 if index_rate else None,
        "sha256_mb_s": sha_rate / 1e6 if sha_rate else None, "decode_ms": decode_s * 1e3 if decode_s else None,
        "files": files, "commits": commits, "push_h": push, "machines": table,
    }
    results.facts["projection"] = out
    return out
