"""Timing, results and file helpers shared by the benchmarks.

Every figure goes into one ``Results`` object: measurements (with every repetition's time), ratios (a measurement
over its baseline, both from this run) and targets (a ratio or a figure against a threshold, PASS or MISS).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@contextlib.contextmanager
def quiet():
    """Silence upload.py's progress bars and summary table."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


@dataclass
class Measurement:
    """One timed operation, repeated: seconds per repetition, and the work done per repetition."""

    name: str
    seconds: list
    rows: Optional[int] = None
    bytes: Optional[int] = None
    notes: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def rate(self, which: str = "median") -> dict:
        seconds = self.best if which == "best" else self.median
        out = {}
        if self.rows is not None:
            out["rows_per_s"] = self.rows / seconds
        if self.bytes is not None:
            out["mb_per_s"] = self.bytes / 1e6 / seconds
        return out

    def to_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "median_s": self.median,
            "best_s": self.best,
            "rows": self.rows,
            "bytes": self.bytes,
            "median": self.rate("median"),
            "best": self.rate("best"),
            "notes": self.notes,
        }


def timed(function: Callable, repeats: int, *, setup: Optional[Callable[[], object]] = None,
          warmup: bool = False) -> tuple[list, object]:
    """Seconds of each of ``repeats`` calls; the last result. With ``setup``, each call is ``function(setup())`` and
    only ``function`` is timed; without, ``function()``. ``warmup``: one untimed call first."""
    def once():
        if setup is None:
            gc.collect()
            started = time.perf_counter()
            return function(), time.perf_counter() - started
        prepared = setup()
        gc.collect()
        started = time.perf_counter()
        return function(prepared), time.perf_counter() - started

    if warmup:
        once()
    seconds, result = [], None
    for _ in range(repeats):
        result, elapsed = once()
        seconds.append(elapsed)
    return seconds, result


@dataclass
class Results:
    measurements: dict = field(default_factory=dict)
    ratios: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)

    def add(self, section: str, measurement: Measurement) -> Measurement:
        self.measurements[f"{section}/{measurement.name}"] = measurement
        return measurement

    def get(self, key: str) -> Measurement:
        return self.measurements[key]

    def ratio(self, name: str, value: float, *, of: str, over: str, how: str = "") -> float:
        """``value`` = ``of`` / ``over`` (names of what was measured), recorded under ``name``."""
        self.ratios[name] = {"value": value, "of": of, "over": over, "how": how}
        return value

    def target(self, name: str, value: float, threshold: float, *, higher_is_better: bool = True,
               unit: str = "x", detail: str = "") -> bool:
        passed = value >= threshold if higher_is_better else value < threshold
        self.targets.append({
            "target": name, "value": value, "threshold": threshold, "unit": unit,
            "comparison": ">=" if higher_is_better else "<", "pass": passed, "detail": detail,
        })
        return passed

    def to_dict(self) -> dict:
        return {
            "facts": self.facts,
            "measurements": {key: m.to_dict() for key, m in self.measurements.items()},
            "ratios": self.ratios,
            "targets": self.targets,
            "errors": self.errors,
        }


def files_under(root: str, suffix: str = "") -> list[str]:
    return sorted(
        os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names if name.endswith(suffix)
    )


def evict(paths) -> None:
    """Ask the kernel to drop these files' clean pages from the page cache, so the next read comes from the disk
    (``posix_fadvise(DONTNEED)``: no root needed; a no-op where unsupported)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (OSError, AttributeError):
            pass
        finally:
            os.close(fd)


def fsync_files(paths) -> None:
    """Make written files durable (what a copy to the disk must do too); hard links are synced once."""
    seen = set()
    for path in paths:
        stat = os.stat(path)
        if (stat.st_dev, stat.st_ino) in seen:
            continue
        seen.add((stat.st_dev, stat.st_ino))
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size}"


def _ready(_=None) -> None:
    return None


def parallel_ceiling(function, one: tuple, two: tuple, repeats: int) -> tuple[list, list]:
    """This machine's own limit for running work side by side: seconds of ``function(*one)`` in one worker process,
    then of ``function(*two[0])`` and ``function(*two[1])`` at once in two (forked, started and warmed up before
    timing, so no start-up is counted)."""
    from multiprocessing import get_context

    single, double = [], []
    with get_context("fork").Pool(2) as pool:
        pool.map(_ready, [0, 0], chunksize=1)
        for args in two:  # warm-up: first-touch memory and lazy imports in both workers
            pool.apply(function, args)
        for _ in range(repeats):
            started = time.perf_counter()
            pool.apply(function, one)
            single.append(time.perf_counter() - started)
            started = time.perf_counter()
            pending = [pool.apply_async(function, args) for args in two]
            for result in pending:
                result.get()
            double.append(time.perf_counter() - started)
    return single, double


def timed_interleaved(cases: dict, repeats: int, *, warmup: bool = False) -> dict:
    """Like ``timed`` for several cases at once, run in turn (A B C, A B C, ...) so that a noisy spell of the machine
    falls on all of them rather than on one. ``cases``: name -> function or (function, setup). Returns name ->
    (seconds per repetition, last result)."""
    normal = {name: case if isinstance(case, tuple) else (case, None) for name, case in cases.items()}
    out = {name: ([], None) for name in normal}
    for round_ in range(repeats + (1 if warmup else 0)):
        for name, (function, setup) in normal.items():
            seconds, result = timed(function, 1, setup=setup)
            if warmup and round_ == 0:
                continue
            out[name] = (out[name][0] + seconds, result)
    return out
