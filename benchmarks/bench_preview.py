"""How long the preview page takes, and its peak memory, for the sample and for a 20,000-row ``referring`` config.

    python -m benchmarks.bench_preview                 # generates and builds the 20,000-row config once (cached)
    python -m benchmarks.bench_preview --rows 5000     # a smaller config

Each case runs in a fresh child process that reports its own peak RSS (``VmHWM``). The baseline, measured in the
same run and also in a child, is reading every shard's text columns with ``pyarrow`` (what the histograms must read
anyway); the ratio is the preview's time over it. Images are small drawings (320x240), so the sizes are those of the
text, and the time is the pass over the shards plus the sampled rows' thumbnails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

GENERATOR_VERSION = 1


def _peak_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def child(mode: str, data: str, out: str) -> None:
    start = time.perf_counter()
    if mode == "preview":
        from svitpipe.preview import build_preview

        build_preview(data, out)
    else:
        import pyarrow.parquet as pq

        from svitpipe.preview.folder import open_built_folder

        folder = open_built_folder(data)
        for config in folder.configs.values():
            for shard in config.shards:
                names = pq.ParquetFile(shard.path).schema_arrow.names
                pq.read_table(shard.path, columns=[n for n in names if n not in ("image", "images")])
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_kb() / 1024}))


def run_child(mode: str, data: str, out: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_preview", "--child", mode, data, out],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def referring_build(work_dir: str, rows: int) -> str:
    """A built folder holding one ``referring`` config of ``rows`` rows (generated and built once, then reused)."""
    from svitpipe.testing.fake_upstream import draw_jpeg, write_svit_source

    from . import datagen

    root = os.path.join(work_dir, "preview", f"referring-{rows}-v{GENERATOR_VERSION}")
    built = os.path.join(root, "built")
    if os.path.exists(os.path.join(root, ".done")):
        return built
    ids = list(range(1, rows + 1))
    records = [datagen.referring_record(i, qa_pairs=random.Random(-i).randint(4, 10)) for i in ids]
    images = {f"{i}.jpg": draw_jpeg(320, 240, seed=i) for i in ids}
    first = int(rows * 0.6)  # both Visual Genome folders, as upstream
    folders = {"VG_100K": dict(list(images.items())[:first]), "VG_100K_2": dict(list(images.items())[first:])}
    write_svit_source(os.path.join(root, "svit"), {"referring_qa": records}, folders)
    import upload

    code = upload.main(["--svit-source", os.path.join(root, "svit"), "--configs", "referring", "--local-dir", built])
    if code != 0:
        raise SystemExit(f"upload.py exited with {code}")
    open(os.path.join(root, ".done"), "w").close()
    return built


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the generated referring config")
    parser.add_argument("--work-dir", default=os.path.join(BENCH_DIR, ".data"))
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    import upload

    sample = os.path.join(args.work_dir, "preview", "sample-built")
    if not os.path.exists(os.path.join(sample, "dataset_infos.json")):
        assert upload.main(["--sample", "--local-dir", sample]) == 0
    big = referring_build(args.work_dir, args.rows)
    table = []
    for name, data in (("sample (8 configs)", sample), (f"referring, {args.rows:,} rows", big)):
        out = os.path.join(args.work_dir, "preview", "pages", os.path.basename(os.path.dirname(data)) + "-page")
        baseline = run_child("read-text", data, out)
        preview = run_child("preview", data, out)
        table.append((name, preview, baseline))
    print(f"{'case':<26} {'preview s':>9} {'peak RSS':>9} {'text read s':>11} {'peak RSS':>9} {'ratio':>6}")
    for name, preview, baseline in table:
        print(f"{name:<26} {preview['seconds']:>9.2f} {preview['peak_rss_mb']:>6.0f} MB "
              f"{baseline['seconds']:>11.2f} {baseline['peak_rss_mb']:>6.0f} MB "
              f"{preview['seconds'] / baseline['seconds']:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
