"""Engines that run units of work (``shard_units.build_unit``): this machine, or a Ray cluster.

Both give the same files, since a unit's output depends only on its input. A failing unit is retried up to
``retries`` more times, then reported with its cause while the other units finish; a re-run of the same command
reuses every finished unit, so it redoes only what failed.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Optional

from datasets.utils import logging

from .parquet_shards import ParquetLayout
from .shard_units import Unit, UnitResult, build_unit

logger = logging.get_logger(__name__)

ENGINES = ("local", "ray")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def use_jemalloc_for_arrow() -> None:
    """Give Arrow the jemalloc allocator, unless ``ARROW_DEFAULT_MEMORY_POOL`` chooses one. Building frees large
    row-group buffers all the time, and the default (mimalloc) keeps about 70 MB more of them mapped; jemalloc
    returns them to the system."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        if pa.default_memory_pool().backend_name != "jemalloc":
            pa.set_memory_pool(pa.jemalloc_memory_pool())


def _prepare_worker() -> None:
    """Runs once in each local worker: what every unit needs, imported while the driver plans."""
    use_jemalloc_for_arrow()
    import svit_internvl  # noqa: F401  (the builder, and datasets with it: about a second)


def _ready() -> bool:
    return True


@contextlib.contextmanager
def local_workers(num_proc: int):
    """A pool of ``num_proc`` spawned worker processes for the whole run (None for one process). The workers start
    and import at once, so their start-up overlaps with planning the first config."""
    if num_proc <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=num_proc, mp_context=get_context("spawn"), initializer=_prepare_worker) as pool:
        for _ in range(num_proc):
            pool.submit(_ready)
        yield pool


def _build_with_retries(unit: Unit, builder_kwargs: dict, work_dir: str, layout: ParquetLayout, retries: int,
                        on_row_group=None):
    """``(result, None)`` or ``(None, UnitFailure)``; runs in whichever process the engine chose."""
    use_jemalloc_for_arrow()
    last_error = None
    for attempt in range(1, retries + 2):
        try:
            return build_unit(unit, builder_kwargs, work_dir, layout, on_row_group), None
        except Exception as error:  # any failure of a unit is reported, not fatal to the run
            last_error = error
            logger.warning(f"unit {unit.config_name}/{unit.key} failed (attempt {attempt}): {_describe(error)}")
            logger.debug(traceback.format_exc())
    return None, UnitFailure(unit.config_name, unit.key, retries + 1, _describe(last_error))


def run_local(
    units: list[Unit],
    builder_kwargs: dict,
    work_dir: str,
    layout: ParquetLayout,
    *,
    num_proc: int = 1,
    workers: Optional[ProcessPoolExecutor] = None,
    retries: int = 2,
    on_result: Optional[Callable[[UnitResult], None]] = None,
    on_row_group: Optional[Callable[[int, int], None]] = None,
) -> EngineRun:
    """Build the units in this process, or in worker processes: ``workers`` (a pool from ``local_workers``, shared
    by every config of a run) or, without it, ``num_proc`` workers started for these units alone."""
    outcomes: dict[int, tuple] = {}
    if workers is None and num_proc > 1 and len(units) > 1:
        with local_workers(num_proc) as pool:
            return run_local(units, builder_kwargs, work_dir, layout, workers=pool, retries=retries,
                             on_result=on_result)
    if workers is None:
        for position, unit in enumerate(units):
            outcomes[position] = _build_with_retries(unit, builder_kwargs, work_dir, layout, retries, on_row_group)
            if on_result and outcomes[position][0] is not None:
                on_result(outcomes[position][0])
    else:
        futures = {
            workers.submit(_build_with_retries, unit, builder_kwargs, work_dir, layout, retries): position
            for position, unit in enumerate(units)
        }
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            if on_result and outcomes[futures[future]][0] is not None:
                on_result(outcomes[futures[future]][0])
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
                    outcomes[position] = (None, UnitFailure(unit.config_name, unit.key, retries + 1, _describe(error)))
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
    if address:
        runtime_env = {"working_dir": REPO_ROOT, "excludes": ["build/", ".venv/", ".git/", "**/__pycache__/"]}
    else:
        runtime_env = {"env_vars": {"PYTHONPATH": REPO_ROOT}}
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
