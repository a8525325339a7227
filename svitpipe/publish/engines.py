"""Engines that run units of work (``shard_units.build_unit``): this machine, or a Ray cluster.

Both give the same files, since a unit's output depends only on its input. A failing unit is retried up to
``retries`` more times, then reported with its cause while the other units finish; a re-run of the same command
reuses every finished unit, so it redoes only what failed.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Optional

from datasets.utils import logging

from ..bad_records import describe_error
from .parquet_layout import ParquetLayout
from .units import Unit, UnitResult, build_unit

logger = logging.get_logger(__name__)

ENGINES = ("local", "ray")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # svitpipe/, wherever it is installed


@dataclass(frozen=True)
class UnitFailure:
    """A unit that failed on every attempt."""

    config_name: str
    key: str
    attempts: int
    error: str


@dataclass
class EngineRun:
    """Results in unit order (None where the unit failed) and the failures."""

    results: list
    failures: list

    @property
    def succeeded(self) -> list[UnitResult]:
        return [result for result in self.results if result is not None]



def _ready() -> bool:
    return True


def _end_with_run(run_pid: int) -> None:
    """Worker initializer: the worker ends when the process that started the run ends, however it ends (SIGKILL
    included). A worker's parent is the fork server, which lives as long as any worker does, and a worker waits on
    a queue it holds both ends of, so without this a killed run leaves its workers, the fork server and the resource
    tracker behind; once the workers end, the other two end by themselves."""
    threading.Thread(target=_exit_after, args=(run_pid,), name="end-with-run", daemon=True).start()


def _exit_after(pid: int, use_pidfd: bool = True, interval: float = 1.0) -> None:
    wait_for_process_end(pid, use_pidfd, interval)
    os._exit(1)


def wait_for_process_end(pid: int, use_pidfd: bool = True, interval: float = 1.0) -> None:
    """Return once process ``pid`` has ended: at once through a pidfd (Linux), else by asking every ``interval``
    seconds whether the pid still exists."""
    if use_pidfd and hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:  # a kernel without pidfds (before Linux 5.3), or a sandbox that refuses them
            pass
        else:
            select.select([fd], [], [])  # readable once the process has ended, even before it is reaped
            os.close(fd)
            return
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # the pid exists (it may be another user's process now): keep asking
            pass
        time.sleep(interval)


def _worker_context():
    """How workers start. On Linux, when this process runs no other Python thread (as ``upload.py`` does when it
    starts its workers): forked from it, in milliseconds, with everything it has imported; Arrow and jemalloc
    re-initialise their own threads and locks in a forked child, as ``datasets``' and PyTorch's forked workers rely
    on. Otherwise (another Python thread could hold a lock the child would inherit held, or fork is unsafe or missing
    on the platform): from a fork server that imports what a unit needs (``datasets``, the builder: about a second)
    once, while this process plans."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return get_context("fork")
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


@dataclass
class LocalWorkers:
    """Worker processes for a whole run, next to this process, which builds units too.

    Attributes:
        pool: ``num_proc - 1`` worker processes.
        started: one trivial task per worker; a worker takes units once one of these is done, so units are not
            queued behind a worker that is still starting.
    """

    pool: ProcessPoolExecutor
    started: list

    @property
    def ready(self) -> int:
        return sum(future.done() for future in list(self.started))


@contextlib.contextmanager
def local_workers(num_proc: int):
    """``num_proc`` processes building units for the whole run: this one and ``num_proc - 1`` workers (None for
    one process). Workers start at once, so their start-up overlaps with planning and with this process's own
    units; a job shorter than that start-up is not slower than in one process."""
    if num_proc <= 1:
        yield None
        return
    count = num_proc - 1
    context = _worker_context()
    with ProcessPoolExecutor(max_workers=count, mp_context=context, initializer=_end_with_run,
                             initargs=(os.getpid(),)) as pool:
        workers = LocalWorkers(pool, [])

        def start() -> None:
            workers.started.extend(pool.submit(_ready) for _ in range(count))

        if context.get_start_method() == "fork":  # the first submit forks every worker, from this thread
            start()
            yield workers
            return
        # The first submit blocks until the fork server has imported the builder; this process has other work.
        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        try:
            yield workers
        finally:
            starter.join()


def _build_with_retries(unit: Unit, builder_kwargs: dict, work_dir: str, layout: ParquetLayout, retries: int,
                        on_row_group=None):
    """``(result, None)`` or ``(None, UnitFailure)``; runs in whichever process the engine chose."""
    last_error = None
    for attempt in range(1, retries + 2):
        try:
            return build_unit(unit, builder_kwargs, work_dir, layout, on_row_group), None
        except Exception as error:  # any failure of a unit is reported, not fatal to the run
            last_error = error
            logger.warning(f"unit {unit.config_name}/{unit.key} failed (attempt {attempt}): {describe_error(error)}")
            logger.debug(traceback.format_exc())
    return None, UnitFailure(unit.config_name, unit.key, retries + 1, describe_error(last_error))


def run_local(
    units: list[Unit],
    builder_kwargs: dict,
    work_dir: str,
    layout: ParquetLayout,
    *,
    num_proc: int = 1,
    workers: Optional[LocalWorkers] = None,
    retries: int = 2,
    on_result: Optional[Callable[[UnitResult], None]] = None,
    on_row_group: Optional[Callable[[int, int], None]] = None,
) -> EngineRun:
    """Build the units in this process and, with ``workers`` (from ``local_workers``, shared by every config of a
    run) or ``num_proc > 1``, in worker processes: each ready worker is kept two units ahead (one building, one
    queued), and this process builds the next one itself whenever every ready worker has its two."""
    if workers is None and num_proc > 1 and len(units) > 1:
        with local_workers(num_proc) as started:
            return run_local(units, builder_kwargs, work_dir, layout, workers=started, retries=retries,
                             on_result=on_result, on_row_group=on_row_group)
    outcomes: dict[int, tuple] = {}

    def record(position: int, outcome: tuple) -> None:
        outcomes[position] = outcome
        if on_result and outcome[0] is not None:
            on_result(outcome[0])

    pending = list(enumerate(units))
    pending.reverse()  # popped from the end: unit order
    in_flight: dict = {}
    while pending or in_flight:
        if workers is not None:
            # Two units per ready worker: one it builds, and the next, queued, so that a worker never waits for
            # this process to finish a unit of its own before it gets more.
            while pending and len(in_flight) < 2 * workers.ready:
                position, unit = pending.pop()
                future = workers.pool.submit(_build_with_retries, unit, builder_kwargs, work_dir, layout, retries)
                in_flight[future] = position
            for future in [future for future in in_flight if future.done()]:
                record(in_flight.pop(future), future.result())
        if pending:
            position, unit = pending.pop()
            record(position, _build_with_retries(unit, builder_kwargs, work_dir, layout, retries, on_row_group))
        elif in_flight:
            wait(in_flight, return_when=FIRST_COMPLETED)
    return _collect(outcomes, len(units))


def _collect(outcomes: dict, count: int) -> EngineRun:
    results = [outcomes[position][0] for position in range(count)]
    failures = [outcomes[position][1] for position in range(count) if outcomes[position][1] is not None]
    return EngineRun(results, failures)


def run_ray(
    units: list[Unit],
    builder_kwargs: dict,
    work_dir: str,
    layout: ParquetLayout,
    *,
    address: Optional[str] = None,
    num_cpus: Optional[int] = None,
    retries: int = 2,
    on_result: Optional[Callable[[UnitResult], None]] = None,
) -> EngineRun:
    """Run every unit as a Ray task (one CPU each) on the cluster at ``address`` (None: a local cluster).

    Workers read their sources from wherever they are (shared folder, ``s3://``, ``https://``, ``hf://``) and
    write parts to ``work_dir``, which must be a folder every worker and the driver see (a shared filesystem).
    """
    import ray

    with ray_session(address, num_cpus):
        task = ray.remote(num_cpus=1)(_build_with_retries)
        pending = {
            task.remote(unit, builder_kwargs, work_dir, layout, retries): position
            for position, unit in enumerate(units)
        }
        outcomes: dict[int, tuple] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                position = pending.pop(ref)
                try:
                    outcomes[position] = ray.get(ref)
                except Exception as error:  # the worker itself died: report it like a failed unit
                    unit = units[position]
                    outcomes[position] = (None, UnitFailure(unit.config_name, unit.key, retries + 1, describe_error(error)))
                if on_result and outcomes[position][0] is not None:
                    on_result(outcomes[position][0])
        return _collect(outcomes, len(units))


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, num_cpus: Optional[int] = None):
    """Join the Ray cluster at ``address`` (None: start a local one) unless already connected; leave it after."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("--engine ray needs Ray: pip install -r requirements-ray.txt") from err
    if ray.is_initialized():
        yield
        return
    # The package itself goes to every worker (zipped once, cached by the cluster): workers need no checkout and no
    # install of it, only its dependencies.
    runtime_env = {"py_modules": [PACKAGE_DIR], "excludes": ["**/__pycache__/"]}
    ray.init(address=address, num_cpus=None if address else num_cpus, runtime_env=runtime_env,
             include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


class Throughput:
    """Units done, rows, bytes and rate, for progress lines."""

    def __init__(self, total_units: int):
        self.total_units = total_units
        self.units = 0
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()

    def add(self, result: UnitResult) -> str:
        self.units += 1
        self.rows += result.num_rows
        self.bytes += result.num_bytes
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return (f"{self.units}/{self.total_units} units, {self.rows:,} rows, {self.bytes / 1e6:.1f} MB, "
                f"{self.rows / elapsed:,.0f} rows/s, {self.bytes / 1e6 / elapsed:.1f} MB/s")
