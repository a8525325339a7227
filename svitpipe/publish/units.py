"""Examples -> published shards, one unit of work at a time. The words: a **unit** is one piece of work, a **part**
is a Parquet file a unit writes, a **shard** is a published file.

A config is cut into units: one per builder shard (an SVIT range of records, or one SA-1B tar with its
captions). ``build_unit`` turns one unit into part files plus a small stats record; it is a pure function of its
input (same input, byte-identical files, names that depend only on the unit), so any engine, in any order, with
retries, gives the same result, and a re-run skips every unit whose parts and stats already exist under the same
fingerprint (options, layout, and the digest of what the unit reads: ``unit_sources``), so a changed source
rebuilds exactly the units that read it.
``finalize_config`` then links the parts, in unit order, to the shard names the Hub expects
(``data/<config>/train-00000-of-00012.parquet``), halving the largest parts where more shards are wanted, and
removes shards left from earlier runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import pyarrow.parquet as pq
from datasets.utils import logging

from ..bad_records import BadRecordLedger
from ..builder import SVITInternVL, iter_examples, make_config
from ..features import CONFIGS, features_for
from .parquet_layout import ParquetLayout, PartWriter, WrittenFile, write_batches
from .unit_sources import unit_sources_digest

logger = logging.get_logger(__name__)

_UNIT_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
SPLIT = "train"
HALVES_DIR = "halves"  # under a config's parts folder: the two halves of a part cut to reach the shard count


@dataclass(frozen=True)
class Unit:
    """One unit of work.

    Attributes:
        config_name: the config it belongs to.
        key: names the unit's part files; depends only on the input (``svit-00003-of-00016``, ``sa_000123``).
        gen_kwargs: what ``iter_examples`` needs to generate the unit's examples (one builder shard's).
    """

    config_name: str
    key: str
    gen_kwargs: dict


@dataclass
class UnitResult:
    """What a unit produced: its part files (in order) and the bad-record counts; ``rows_reported``: its row groups
    went to the ``on_row_group`` callback as they were written (built in the caller's process)."""

    config_name: str
    key: str
    files: list
    ledger: dict
    reused: bool = False
    rows_reported: bool = False

    @property
    def num_rows(self) -> int:
        return sum(f.num_rows for f in self.files)

    @property
    def num_bytes(self) -> int:
        return sum(f.num_bytes for f in self.files)


@dataclass
class ConfigBuild:
    """A finished config: its shards (relative to the output folder), counts, and the build's one ledger (the
    builder's planning counts plus every unit's)."""

    config_name: str
    shards: list
    ledger: BadRecordLedger = field(default_factory=BadRecordLedger)
    failed_units: list = field(default_factory=list)
    sa1b_images: str = "embed"  # how an sa1b-* config holds its images (SVITInternVLConfig.sa1b_images)

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.shards)

    @property
    def num_bytes(self) -> int:
        return sum(s.num_bytes for s in self.shards)

    @property
    def arrow_bytes(self) -> int:
        return sum(s.arrow_bytes for s in self.shards)


def make_builder(config_name: str, builder_kwargs: dict) -> SVITInternVL:
    return SVITInternVL(config_name=config_name, **builder_kwargs)


def plan_units(builder: SVITInternVL) -> list[Unit]:
    """The units of the builder's config, in output order (planning counts go to ``builder.ledger``)."""
    per_shard = builder.shard_gen_kwargs()
    name_unit = _UNIT_NAMES[CONFIGS[builder.config.name].family]
    return [
        Unit(builder.config.name, name_unit(position, len(per_shard), gen_kwargs), gen_kwargs)
        for position, gen_kwargs in enumerate(per_shard)
    ]


def _svit_unit_key(position: int, count: int, gen_kwargs: dict) -> str:
    return f"svit-{position:05d}-of-{count:05d}"


def _sa1b_unit_key(position: int, count: int, gen_kwargs: dict) -> str:
    (tar,) = gen_kwargs["tars"]
    return tar.stem


_UNIT_NAMES = {"svit": _svit_unit_key, "sa1b": _sa1b_unit_key}


def parts_directory(work_dir: str, config_name: str) -> str:
    return os.path.join(work_dir, config_name)


def build_unit(
    unit: Unit,
    builder_kwargs: dict,
    work_dir: str,
    layout: ParquetLayout,
    on_row_group: Optional[Callable[[int, int], None]] = None,
) -> UnitResult:
    """Write one unit's part files and stats under ``work_dir/<config>/``; reuse them when already complete."""
    if not _UNIT_KEY.match(unit.key):
        raise ValueError(f"unit key {unit.key!r} is not a safe file name")
    directory = parts_directory(work_dir, unit.config_name)
    stats_path = os.path.join(directory, f"{unit.key}.json")
    fingerprint = unit_fingerprint(unit, builder_kwargs, layout)
    reused = _load_complete(stats_path, directory, unit, fingerprint)
    if reused is not None:
        return reused
    os.makedirs(directory, exist_ok=True)
    for stale in os.listdir(directory):
        if stale.startswith(f"{unit.key}-") and stale.endswith(".parquet"):
            os.remove(os.path.join(directory, stale))
    config = make_config(unit.config_name, builder_kwargs)
    ledger = BadRecordLedger(policy=config.on_bad_record)
    features = features_for(unit.config_name, config.sa1b_images)
    writer = PartWriter(directory, unit.key, features, layout, on_row_group=on_row_group)
    for _, _, example in iter_examples(config, ledger, **unit.gen_kwargs):
        writer.add(example)
    files = writer.close()
    result = UnitResult(unit.config_name, unit.key, files, ledger.to_dict(), rows_reported=on_row_group is not None)
    temporary = f"{stats_path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump({"fingerprint": fingerprint, "files": [asdict(f) for f in files], "ledger": result.ledger}, f, indent=1)
    os.replace(temporary, stats_path)  # written last: its presence marks the unit complete
    return result


# Raised when what a unit holds changes for the same key and options (2: SVIT units are contiguous record ranges;
# 3: rows carry upstream_extra and reference_issues, records of one image are merged; 4: sizes and regions in the
# EXIF-oriented frame, stricter header checks).
UNIT_FORMAT = 4
# Builder options that say where caches live, not what a unit writes.
_NOT_IN_FINGERPRINT = ("cache_dir", "index_dir")


def unit_fingerprint(unit: Unit, builder_kwargs: dict, layout: ParquetLayout) -> str:
    """What a unit's files depend on besides its key: the builder options, the Parquet layout, and what the unit
    reads (``unit_sources``: its records or caption lines, the stamps of its image archives or folders). A unit
    finished under another fingerprint (a changed source, ``--image-check``, shard size...) is built again."""
    options = {key: value for key, value in builder_kwargs.items() if key not in _NOT_IN_FINGERPRINT}
    payload = {
        "unit_format": UNIT_FORMAT,
        "config": unit.config_name,
        "key": unit.key,
        "options": options,
        "layout": asdict(layout),
        "sources": unit_sources_digest(CONFIGS[unit.config_name].family, unit.gen_kwargs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def _load_complete(stats_path: str, directory: str, unit: Unit, fingerprint: str) -> Optional[UnitResult]:
    if not os.path.exists(stats_path):
        return None
    with open(stats_path, encoding="utf-8") as f:
        stats = json.load(f)
    if stats.get("fingerprint") != fingerprint:
        return None
    files = [WrittenFile(**entry) for entry in stats["files"]]
    for written in files:
        path = os.path.join(directory, written.name)
        if not os.path.exists(path) or os.path.getsize(path) != written.num_bytes:
            return None
    return UnitResult(unit.config_name, unit.key, files, stats["ledger"], reused=True)


def shard_file_name(index: int, count: int) -> str:
    return f"{SPLIT}-{index:05d}-of-{count:05d}.parquet"


PARALLEL_ROWS = 2048  # "a few thousand rows": from here on a config gets at least MIN_PARALLEL_SHARDS shards
MIN_PARALLEL_SHARDS = 16
SHARD_MULTIPLE = 8  # split_dataset_by_node hands out whole shards for 1, 2, 4 or 8 nodes


def target_shard_count(num_rows: int, num_parts: int) -> int:
    """How many shards a config gets: never fewer than its parts (each is under the size limit), at least 16 once
    it has a few thousand rows, and a multiple of 8 wherever there are rows enough (one row at least per shard)."""
    target = num_parts
    if num_rows >= PARALLEL_ROWS:
        target = max(target, MIN_PARALLEL_SHARDS)
    rounded = -(-target // SHARD_MULTIPLE) * SHARD_MULTIPLE
    return rounded if rounded <= num_rows else target


def finalize_config(
    config_name: str,
    results: list[UnitResult],
    work_dir: str,
    out_dir: str,
    layout: ParquetLayout,
    ledger: Optional[BadRecordLedger] = None,
    sa1b_images: str = "embed",
) -> ConfigBuild:
    """Make the config's shards from the units' parts and link them to
    ``out_dir/data/<config>/train-XXXXX-of-NNNNN.parquet``, dropping shards left from earlier runs. The units'
    counts are added to ``ledger`` (the build's, ``builder.ledger``; None: a new one), which the result holds.

    Parts are kept in unit order; to reach ``target_shard_count`` the part with the most bytes (of those with two
    rows or more) is split in two, repeatedly, so shards stay under the size limit and the result depends only on
    the parts.
    """
    directory = parts_directory(work_dir, config_name)
    parts = [(directory, written) for result in results for written in result.files]
    target = target_shard_count(sum(w.num_rows for _, w in parts), len(parts))
    if len(parts) < target:
        parts = _halve_parts(parts, target, os.path.join(directory, HALVES_DIR), features_for(config_name, sa1b_images), layout)
    data_dir = os.path.join(out_dir, "data", config_name)
    os.makedirs(data_dir, exist_ok=True)
    shards, wanted = [], set()
    for index, (folder, written) in enumerate(parts):
        name = shard_file_name(index, len(parts))
        wanted.add(name)
        _link_or_copy(os.path.join(folder, written.name), os.path.join(data_dir, name))
        shards.append(WrittenFile(f"data/{config_name}/{name}", written.num_rows, written.num_bytes, written.arrow_bytes))
    for name in os.listdir(data_dir):
        if name not in wanted:
            os.remove(os.path.join(data_dir, name))
    if ledger is None:
        ledger = BadRecordLedger(policy="skip")
    for result in results:
        ledger.merge(BadRecordLedger.from_dict(result.ledger))
    mode = sa1b_images if CONFIGS[config_name].family == "sa1b" else "embed"
    return ConfigBuild(config_name, shards, ledger, sa1b_images=mode)


def _halve_parts(parts: list, target: int, halves_dir: str, features, layout: ParquetLayout) -> list:
    os.makedirs(halves_dir, exist_ok=True)
    parts = list(parts)
    while len(parts) < target:
        candidates = [i for i, (_, written) in enumerate(parts) if written.num_rows >= 2]
        if not candidates:
            break
        position = max(candidates, key=lambda i: (parts[i][1].num_bytes, -i))
        folder, written = parts[position]
        stem = written.name.removesuffix(".parquet")
        targets = [os.path.join(halves_dir, f"{stem}.{suffix}.parquet") for suffix in ("a", "b")]
        halves = _halve_file(os.path.join(folder, written.name), written.num_rows // 2, targets, features, layout)
        parts[position : position + 1] = [(halves_dir, half) for half in halves]
    return parts


def _halve_file(path: str, half: int, targets: list, features, layout: ParquetLayout) -> list:
    """Rows ``[0, half)`` of a Parquet file to ``targets[0]``, the rest to ``targets[1]``, reading one row group at
    a time (a part can be as large as a shard: reading it whole would hold it all in memory). ``pre_buffer=False``:
    pyarrow's default pre-buffers every row group the iterator will read, the whole file."""
    batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=layout.rows_per_row_group)
    carried = []

    def head():
        remaining = half
        for batch in batches:
            if batch.num_rows > remaining:
                yield batch.slice(0, remaining)
                carried.append(batch.slice(remaining))
                return
            remaining -= batch.num_rows
            yield batch
            if remaining == 0:
                return

    first = write_batches(targets[0], head(), features, layout)
    second = write_batches(targets[1], itertools.chain(carried, batches), features, layout)
    return [first, second]


def _link_or_copy(source: str, target: str) -> None:
    if os.path.exists(target):
        if os.path.samefile(source, target):
            return
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)

