"""Child process of ``bench_memory``: do one thing, print its peak RSS as a JSON line.

    python -m benchmarks.rss_probe MODE '{"...": ...}'

Linux keeps ``ru_maxrss`` across ``exec``, and ``subprocess`` starts children with ``vfork``, so a child of a large
process would report its parent's peak. The probe therefore forks once from its own small process and ``exec``s
again; the peak it reports is checked against ``VmHWM`` (the peak of this process image only).

Modes:
    svit-build / sa1b-build: ``upload.main`` for the config, ``--num-proc 1`` (everything in this process);
    svit-stream / sa1b-stream: iterate every row of ``SVITInternVL(...).as_streaming_dataset("train")`` (with
        ``USE_TORCH=0``, ``datasets`` does not import torch, as where torch is not installed);
    json-load: ``json.load`` of the file; jsonl-load: ``json.loads`` of every line into one list;
    imports: import ``params["modules"]`` one after the other, the resident size after each (what each costs).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time

if os.environ.get("RSS_PROBE_FRESH") != "1":
    pid = os.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", __spec__.name, *sys.argv[1:]],
                  dict(os.environ, RSS_PROBE_FRESH="1"))
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def import_costs(modules: list) -> list:
    """``[module, resident kB after importing it, seconds]`` for each module in turn (each on top of the ones
    before, as a program imports them); a module that is not installed is reported as such."""
    import importlib

    out = [["(interpreter)", status_kb("VmRSS"), 0.0]]
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except ImportError:
            out.append([name, None, None])
            continue
        out.append([name, status_kb("VmRSS"), time.perf_counter() - started])
    return out


def main() -> None:
    mode, params = sys.argv[1], json.loads(sys.argv[2])
    if mode == "imports":
        print(json.dumps({"mode": mode, "imports": import_costs(params["modules"]), "peak_kb": peak_kb(),
                          "hwm_kb": status_kb("VmHWM"), "baseline_kb": 0}))
        return
    if mode.endswith("-build") or mode.endswith("-stream"):
        import contextlib
        import io

        import datasets

        datasets.disable_progress_bars()
        import upload  # noqa: F401  (the same imports for both: builder, pyarrow, datasets)
        from svit_internvl import SVITInternVL

        if mode.endswith("-stream") and os.environ.get("USE_TORCH", "AUTO").upper() not in ("0", "FALSE", "NO", "OFF"):
            import torch  # noqa: F401  datasets imports it when it creates an IterableDataset: an import, not data
    gc.collect()
    baseline = peak_kb()
    assert baseline <= status_kb("VmHWM") + 1024, ("ru_maxrss inherited", baseline, status_kb("VmHWM"))
    started = time.perf_counter()
    result: dict = {}
    if mode.endswith("-build"):
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            status = upload.main(params["argv"])
        if status != 0:
            raise SystemExit(f"upload.main returned {status}:\n{sink.getvalue()[-3000:]}")
        result["summary"] = [line for line in sink.getvalue().splitlines() if line.strip()][-4:]
    elif mode.endswith("-stream"):
        builder = SVITInternVL(config_name=params["config"], cache_dir=params["cache_dir"], **params["kwargs"])
        rows = 0
        for _ in builder.as_streaming_dataset(split="train"):
            rows += 1
        result["rows"] = rows
    elif mode == "json-load":
        with open(params["path"], "rb") as f:
            data = json.load(f)
        result["rows"] = len(data)
    elif mode == "jsonl-load":
        with open(params["path"], "rb") as f:
            data = [json.loads(line) for line in f]
        result["rows"] = len(data)
    else:
        raise SystemExit(f"unknown mode {mode}")
    result.update(
        mode=mode,
        seconds=time.perf_counter() - started,
        baseline_kb=baseline,
        peak_kb=peak_kb(),
        hwm_kb=status_kb("VmHWM"),
        children_peak_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
