"""Streaming a large SVIT subset keeps memory bounded; ``json.load`` of the same file does not.

A ~150 MB ``data/referring_qa.json`` (extracted layout, unique image ids, one tiny JPEG reused for every id under
``raw/VG_100K/``) is written with ``svitpipe.testing.fake_upstream``. Two subprocesses then run side by side: one streams the
whole ``referring`` config, the other ``json.load``s the file. Each reports its peak RSS (``ru_maxrss``) against its
RSS right after its imports. The streaming peak must grow by well under the file size; the ``json.load`` baseline
must grow by more than the file size, which shows that the measurement can tell the two apart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from svitpipe.testing.fake_upstream import draw_jpeg, write_svit_source

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_BYTES = 150 * 1000 * 1000
FILLER = "The scene goes on, described sentence after sentence, with nothing in brackets here. " * 600

MEASURE = r"""
import gc, json, os, resource, sys, tempfile, time

if os.environ.get("MEASURE_FRESH") != "1":
    # Linux keeps ru_maxrss across exec, and subprocess starts children with vfork: a child of pytest would report
    # pytest's peak. Fork from this small process and exec again, so that the peak is the measurement's own.
    pid = os.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, MEASURE_FRESH="1"))
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

def hwm_kb():
    # This process image's own peak RSS, to check that ru_maxrss was not inherited.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

mode, root, annotation = sys.argv[1:4]
if mode == "stream":
    import importlib.util
    import datasets
    datasets.disable_progress_bars()
    from svit_internvl import SVITInternVL
    if importlib.util.find_spec("torch") is not None:
        import torch  # datasets imports it (about 180 MB) when it creates any IterableDataset: an import, not data
    gc.collect()
    baseline = peak_kb()
    assert baseline <= hwm_kb() + 1024, ("ru_maxrss inherited", baseline, hwm_kb())
    start = time.time()
    # Two shards: each shard pass is a fresh reader over the whole file, so the shard count does not change the
    # memory profile; two (not the default 16) keeps the test fast.
    builder = SVITInternVL(config_name="referring", svit_source=root, cache_dir=tempfile.mkdtemp(), svit_num_shards=2)
    rows = regions = 0
    ids = set()
    for row in builder.as_streaming_dataset(split="train"):
        rows += 1
        ids.add(row["id"])
        regions += sum(len(region["boxes"]) for conv in row["conversations"] for turn in conv["content"]
                       for region in turn["regions"])
    result = {"rows": rows, "unique_ids": len(ids), "regions": regions}
else:
    gc.collect()
    baseline = peak_kb()
    assert baseline <= hwm_kb() + 1024, ("ru_maxrss inherited", baseline, hwm_kb())
    start = time.time()
    with open(annotation, "rb") as f:
        data = json.load(f)
    result = {"rows": len(data)}
result.update(baseline_kb=baseline, peak_kb=peak_kb(), hwm_kb=hwm_kb(), seconds=time.time() - start)
print(json.dumps(result))
"""


def write_large_referring_source(root: Path) -> tuple[Path, int, int]:
    """A referring_qa.json of about TARGET_BYTES with unique image ids; return (its path, size, records)."""
    def record(image_id: int) -> str:
        return json.dumps({
            "image_id": image_id,
            "conversations": [{"content": [
                {"from": "user", "value": f"What is <st>the cup {image_id}<ed> [0.1, 0.2, 0.3, 0.4] next to? {FILLER}"},
                {"from": "gpt", "value": f"<st>The plates<ed> [0.5, 0.5, 0.9, 0.9], [0, 0, 1, 1]. {FILLER}"},
            ]}],
        })

    per_record = len(record(1)) + 2  # the shortest record: the file reaches TARGET_BYTES
    count = TARGET_BYTES // per_record + 1
    payload = ("[" + ",\n".join(record(i) for i in range(1, count + 1)) + "]").encode()
    jpeg = draw_jpeg(8, 6, seed=0)
    write_svit_source(
        root,
        {"referring_qa": payload},
        {"VG_100K": {f"{i}.jpg": jpeg for i in range(1, count + 1)}, "VG_100K_2": {}},
        extracted=True,
    )
    return root / "data" / "referring_qa.json", len(payload), count


def test_streaming_a_large_subset_keeps_memory_bounded(tmp_path):
    root = tmp_path / "svit"
    try:
        measure(tmp_path, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # pytest keeps recent tmp dirs: do not keep 150 MB around


def measure(tmp_path: Path, root: Path) -> None:
    started = time.time()
    annotation, size, count = write_large_referring_source(root)
    assert annotation.stat().st_size == size >= TARGET_BYTES
    script = tmp_path / "measure.py"
    script.write_text(MEASURE)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    runs = {
        mode: subprocess.Popen(
            [sys.executable, str(script), mode, str(root), str(annotation)],
            cwd=str(REPO_ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, with the re-executed child
        )
        for mode in ("stream", "json-load")
    }
    results = {}
    try:
        for mode, process in runs.items():
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, f"{mode} failed:\n{err[-3000:]}"
            results[mode] = json.loads(out.strip().splitlines()[-1])
    finally:
        for process in runs.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    stream, load = results["stream"], results["json-load"]
    assert stream["rows"] == stream["unique_ids"] == count == load["rows"]
    assert stream["regions"] == 3 * count  # every record's references were parsed: 3 boxes each
    for result in (stream, load):
        assert abs(result["peak_kb"] - result["hwm_kb"]) <= 1024, result  # the peak is this process's own
    stream_growth = (stream["peak_kb"] - stream["baseline_kb"]) * 1024
    load_growth = (load["peak_kb"] - load["baseline_kb"]) * 1024
    report = (
        f"file {size / 1e6:.0f} MB, {count} records; streaming grew {stream_growth / 1e6:.1f} MB "
        f"in {stream['seconds']:.1f} s; json.load grew {load_growth / 1e6:.1f} MB; total {time.time() - started:.1f} s"
    )
    print(report)
    assert stream_growth < size / 3, report
    assert load_growth > size, report
