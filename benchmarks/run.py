"""Benchmarks of svit-internvl: build, read, layout, decode, memory and scaling, each against a baseline measured in
the same run.

    python -m benchmarks.run                  # the full run (~32 min on 2 cores; data generated once, then cached);
                                              # python benchmarks/run.py is the same
    python -m benchmarks.run --quick          # about a minute, smaller data and fewer repetitions
    python -m benchmarks.run --only build read --scale 0.5 --out results.json

Inputs are generated with ``svitpipe.testing.fake_upstream`` under the work dir (default ``benchmarks/.data/``) and reused
by later runs. Prints one table of measurements, one of ratios and one of targets (PASS/MISS), and writes every
figure to a JSON file (default ``<work dir>/results-<full|quick>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # also in spawned workers
if not __package__:  # run as a file (python benchmarks/run.py): run again as the module, from this checkout
    python_path = os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.run", *sys.argv[1:]],
              {**os.environ, "PYTHONPATH": python_path})

from . import datagen  # noqa: E402
from .common import Results  # noqa: E402

SECTIONS = ("build", "read", "layout", "decode", "memory", "scaling", "inspect", "join", "xet")


@dataclass(frozen=True)
class Plan:
    sizes: datagen.Sizes
    repeats: dict
    decode_rows: dict  # family -> rows decoded by each reader
    loader_rows: dict  # family -> rows through each DataLoader
    decode_images: int  # SA-1B-sized images in the decode benchmark
    memory_sa1b_tars: int  # tars built and streamed from the large captions file (the index reads all of it)
    memory_timeout: float
    join_images_per_tar: int  # SA-1B-sized images per tar in the join benchmark (one tar)


def make_plan(quick: bool, scale: float) -> Plan:
    def scaled(value: float, minimum: int = 1) -> int:
        return max(minimum, int(round(value * scale)))

    if quick:
        return Plan(
            sizes=datagen.Sizes(vg_images=scaled(120, 16), sa1b_tars=8, sa1b_images_per_tar=scaled(5),
                                memory_mb=scaled(100, 10)),
            repeats={"build": 1, "bytes": 2, "decode": 1, "loader": 1, "scaling": 1, "ceiling": 1, "inspect": 1,
                     "ceiling_seconds": 0.3},
            decode_rows={"svit": scaled(48), "sa1b": scaled(16)},
            loader_rows={"svit": scaled(100), "sa1b": scaled(60)},
            decode_images=scaled(4),
            memory_sa1b_tars=1,
            memory_timeout=300,
            join_images_per_tar=scaled(20, 4),
        )
    return Plan(
        sizes=datagen.Sizes(vg_images=scaled(5200, 16), sa1b_tars=16, sa1b_images_per_tar=scaled(40),
                            memory_mb=scaled(1000, 10)),
        repeats={"build": 3, "bytes": 5, "decode": 5, "loader": 3, "scaling": 3, "ceiling": 5, "inspect": 2,
                 "ceiling_seconds": 1.0},
        decode_rows={"svit": scaled(304), "sa1b": scaled(80)},
        loader_rows={"svit": scaled(500), "sa1b": scaled(320)},
        decode_images=scaled(24),
        memory_sa1b_tars=8,
        memory_timeout=1200,
        join_images_per_tar=scaled(200, 4),
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, fewer repetitions: about a minute")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the data sizes and decoded rows")
    parser.add_argument("--out", help="JSON file for every figure (default: <work dir>/results-<full|quick>.json)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="NAME",
                        help=f"run only these sections: {', '.join(SECTIONS)}")
    parser.add_argument("--work-dir", default=os.path.join(BENCH_DIR, ".data"),
                        help="generated inputs (cached between runs) and scratch space")
    parser.add_argument("--ray", choices=("auto", "yes", "no"), default="auto",
                        help="Ray in the scaling section (auto: in the full run, not with --quick: its two local "
                        "clusters take ~10 s to start)")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------------


class Context:
    def __init__(self, args, plan: Plan, results: Results):
        self.args, self.plan, self.results = args, plan, results
        self.work_dir = os.path.abspath(args.work_dir)
        self._sources = {}

    def source(self, family: str) -> dict:
        if family not in self._sources:
            started = time.perf_counter()
            sizes = self.plan.sizes
            if family == "svit":
                facts = datagen.svit_source(self.work_dir, sizes.vg_images)
            elif family == "sa1b":
                facts = datagen.sa1b_source(self.work_dir, sizes.sa1b_tars, sizes.sa1b_images_per_tar)
            elif family == "svit-large":
                facts = datagen.large_svit_source(self.work_dir, sizes.memory_mb)
            else:
                facts = datagen.large_sa1b_source(self.work_dir, sizes.memory_mb)
            self._sources[family] = facts
            self.results.facts[f"sources/{family}"] = {
                key: value for key, value in facts.items() if key != "source_files"
            } | {"files": len(facts["source_files"]), "ready_in_s": time.perf_counter() - started}
        return self._sources[family]

    def published(self, family: str) -> str:
        return os.path.join(self.work_dir, "published", family, self.source_key(family))

    def source_key(self, family: str) -> str:
        return os.path.basename(self.source(family)["root"])


FAMILIES = {"svit": ("referring", "image"), "sa1b": ("sa1b-en-single", "image")}


def section_build(ctx: Context) -> None:
    from . import bench_build

    for family in FAMILIES:
        bench_build.run(ctx.results, family, ctx.source(family), ctx.work_dir, ctx.published(family),
                        ctx.plan.repeats)


def ensure_published(ctx: Context, family: str) -> str:
    """The published folder of ``family`` (built untimed when the build section did not run in this process)."""
    from . import bench_build

    folder = ctx.published(family)
    if f"published/{FAMILIES[family][0]}" not in ctx.results.facts:
        inputs = bench_build.family_inputs(family, ctx.source(family))
        bench_build.upload_build(inputs, folder, 1)  # finished units are reused
    return folder


def section_read(ctx: Context) -> None:
    from . import bench_read

    for family, (config, column) in FAMILIES.items():
        bench_read.run(ctx.results, family, ensure_published(ctx, family), config, column, ctx.work_dir,
                       ctx.plan.repeats, ctx.plan.decode_rows[family], ctx.plan.loader_rows[family])


def section_layout(ctx: Context) -> None:
    from . import bench_read

    for family, (config, _) in FAMILIES.items():
        bench_read.run_layouts(ctx.results, family, ensure_published(ctx, family), config, ctx.work_dir,
                               ctx.plan.repeats)


def section_decode(ctx: Context) -> None:
    from . import bench_decode

    bench_decode.run(ctx.results, os.path.join(ctx.source("sa1b")["root"], "images"), ctx.plan.decode_images,
                     ctx.plan.repeats["decode"])


def section_memory(ctx: Context) -> None:
    from . import bench_memory

    bench_memory.run(ctx.results, ctx.source("svit-large"), ctx.source("sa1b-large"), ctx.work_dir,
                     ctx.plan.memory_timeout, ctx.plan.memory_sa1b_tars, allocator_variant=not ctx.args.quick)


def section_scaling(ctx: Context) -> None:
    from . import bench_scaling

    bench_scaling.run(ctx.results, ctx.source("sa1b"), ctx.work_dir, ctx.plan.repeats["scaling"],
                      ceiling_repeats=ctx.plan.repeats["ceiling"],
                      with_ray=ctx.args.ray == "yes" or (ctx.args.ray == "auto" and not ctx.args.quick),
                      large_captions=ctx.source("sa1b-large")["captions"])


def section_inspect(ctx: Context) -> None:
    from . import bench_inspect

    bench_inspect.run(ctx.results, ctx.source("svit-large"), ctx.source("sa1b-large"), ctx.work_dir,
                      ctx.plan.repeats["inspect"], ctx.plan.memory_sa1b_tars)


def section_xet(ctx: Context) -> None:
    from . import bench_xet

    bench_xet.run(ctx.results, ctx.source("svit"), ctx.source("sa1b"), ctx.work_dir)


def section_join(ctx: Context) -> None:
    from . import bench_sa1b_join

    bench_sa1b_join.run(ctx.results, ctx.work_dir, 1, ctx.plan.join_images_per_tar, ctx.plan.repeats["loader"])


RUNNERS = {
    "build": section_build, "read": section_read, "layout": section_layout, "decode": section_decode,
    "memory": section_memory, "scaling": section_scaling, "inspect": section_inspect, "join": section_join,
    "xet": section_xet,
}


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------


def _table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def line(cells):
        return "  ".join(str(c).ljust(w) if i in (0, len(cells) - 1) else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def report(results: Results) -> str:
    rows = []
    for key, m in results.measurements.items():
        median, best = m.rate("median"), m.rate("best")
        spread = (max(m.seconds) - min(m.seconds)) / m.median if m.median else 0
        rows.append((
            key, len(m.seconds), f"{m.median:.3f}", f"{m.best:.3f}", f"{spread:.0%}",
            f"{median['rows_per_s']:,.0f}" if "rows_per_s" in median else "",
            f"{median['mb_per_s']:,.1f}" if "mb_per_s" in median else "",
            f"{best['mb_per_s']:,.1f}" if "mb_per_s" in best else "",
            m.notes[:60],
        ))
    out = ["MEASUREMENTS (rates from the median; MB/s of the bytes named in the notes)",
           _table(("measurement", "n", "median s", "best s", "spread", "rows/s", "MB/s", "best MB/s", "notes"), rows)]
    rows = [(name, f"{r['value']:.2f}", r["how"]) for name, r in results.ratios.items()]
    out += ["", "RATIOS (<measured>-vs-<baseline>, both from this run; > 1: faster, or larger for sizes and RSS)",
            _table(("ratio", "value", "how"), rows)]
    rows = [("PASS" if t["pass"] else "MISS", t["target"], f"{t['value']:.2f}{t['unit']}",
             f"{t['comparison']} {t['threshold']}{t['unit']}", t["detail"][:100]) for t in results.targets]
    out += ["", "TARGETS", _table(("", "target", "value", "needs", "detail"), rows)]
    memory = {k: v for k, v in results.facts.items() if k.startswith("memory/") and "peak_mb" in v}
    if memory:
        rows = [(k, f"{v['peak_mb']:.0f}", f"{v['after_imports_mb']:.0f}", f"{v['growth_mb']:.0f}",
                 f"{v['seconds']:.1f}") for k, v in memory.items()]
        out += ["", "PEAK RSS (MB)", _table(("process", "peak", "after imports", "growth", "seconds"), rows)]
    projection = results.facts.get("projection")
    if projection:
        hours = lambda value: f"{value:.2f}" if value is not None else "-"  # noqa: E731
        rows = [(m, p["cores"], hours(p["index_h"]), hours(p["CPU_h"]), hours(p["cpu_with_decode_check_h"]),
                 hours(p["network in_h"]), hours(p.get("shared filesystem_h")), f"{p['build_h']:.2f} ({p['build_bound']})",
                 f"{p['push_h']:.2f} ({p['push_bound']})", f"{p['total_h']:.1f}") for m, p in projection["machines"].items()]
        out += ["", f"PROJECTION: the full sa1b-en-single build, hours (per core: {projection['per_core_image_mb_s']:.0f} "
                f"MB/s of images, {projection['per_core_rows_s']:.0f} rows/s; parallel efficiency "
                f"{projection['parallel_efficiency']:.2f}; assumptions in the JSON)",
                _table(("machines", "cores", "index", "cpu", "cpu+decode check", "net in", "shared fs", "build",
                        "push", "total"), rows)]
    if results.errors:
        out += ["", "ERRORS"] + [f"{k}: {v.strip().splitlines()[-1]}" for k, v in results.errors.items()]
    return "\n".join(out)


def environment() -> dict:
    import datasets
    import PIL
    import pyarrow

    try:
        commit = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "-C", REPO_ROOT, "status", "--porcelain", "svitpipe", "upload.py",
                                "svit_internvl.py"], capture_output=True, text=True).stdout
    except OSError:
        commit, dirty = "", ""
    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "datasets": datasets.__version__, "pyarrow": pyarrow.__version__, "pillow": PIL.__version__,
        "commit": commit.strip(), "uncommitted_changes": dirty.split("\n") if dirty.strip() else [],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = make_plan(args.quick, args.scale)
    results = Results()
    started = time.perf_counter()
    ctx = Context(args, plan, results)
    os.makedirs(ctx.work_dir, exist_ok=True)
    datagen.prune_stale(ctx.work_dir)
    import datasets

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    results.facts["run"] = {
        "mode": "quick" if args.quick else "full", "scale": args.scale, "sizes": datagen.describe(plan.sizes),
        "repeats": plan.repeats, "decode_rows": plan.decode_rows, "loader_rows": plan.loader_rows,
        "environment": environment(), "load_average_start": os.getloadavg(),
    }
    sections = [name for name in SECTIONS if not args.only or name in args.only]
    for name in sections:
        section_started = time.perf_counter()
        load = os.getloadavg()
        print(f"[{time.perf_counter() - started:6.1f} s] {name} ...", flush=True)
        try:
            RUNNERS[name](ctx)
        except Exception:  # a failing section is reported; the others still run
            results.errors[name] = traceback.format_exc()
            print(results.errors[name], file=sys.stderr)
        results.facts[f"section/{name}"] = {"seconds": time.perf_counter() - section_started,
                                            "load_average_before": load, "load_average_after": os.getloadavg()}
    results.facts["run"]["seconds"] = time.perf_counter() - started
    results.facts["run"]["load_average_end"] = os.getloadavg()
    print()
    if args.quick:
        print("QUICK RUN: small inputs and single repetitions check that everything runs; start-up costs dominate, "
              "so the ratios below are not the project's figures (run without --quick for those).\n")
    print(report(results))
    out = args.out or os.path.join(ctx.work_dir, f"results-{'quick' if args.quick else 'full'}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results.to_dict(), f, indent=1, default=str)
    total = results.facts["run"]["seconds"]
    missed = sum(not t["pass"] for t in results.targets)
    print(f"\n{len(results.targets) - missed} PASS, {missed} MISS, {len(results.errors)} error(s); "
          f"{total:.0f} s; every figure in {out}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
