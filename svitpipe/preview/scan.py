"""One streaming pass over a config's shards: a seeded sample of rows and fixed-bin histograms, in bounded memory.

The pass reads one row group at a time. Its text columns feed the histograms (vectorised with ``pyarrow.compute``);
which rows enter the sample depends only on their position and the seed (reservoir sampling, Li's Algorithm L), so
a row group's image column is read only when one of its rows is chosen, and only the chosen rows are kept. Memory is
one row group of text, the sample's rows and a fixed number of bins, whatever the config's size.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..features import CONFIGS
from .folder import BuiltConfig, BuiltFolder

__all__ = [
    "FixedHistogram",
    "Reservoir",
    "SampledRow",
    "ConfigScan",
    "histograms_for",
    "scan_config",
]

IMAGE_COLUMNS = ("image", "images")


class Reservoir:
    """A uniform sample of ``size`` positions from a stream of unknown length, seeded (Li's Algorithm L).

    ``offer(n)`` advances the stream by ``n`` positions and returns ``[(offset, slot), ...]``: the positions among
    them (offsets from the start of the ``n``) that enter the sample, and the slot each takes (a later entry into
    the same slot replaces an earlier one). The same seed gives the same positions.
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError(f"a sample size is >= 0, got {size}")
        self.size = size
        self.seen = 0
        self._rng = random.Random(seed)
        self._weight = 1.0
        self._next = size  # the position of the next entry once the first `size` positions are in
        if size:
            self._advance()

    def _uniform(self) -> float:
        value = self._rng.random()
        while value == 0.0:
            value = self._rng.random()
        return value

    def _advance(self) -> None:
        self._weight *= math.exp(math.log(self._uniform()) / self.size)
        if self._weight >= 1.0:  # cannot happen in exact arithmetic; keeps log(1 - w) finite
            self._weight = math.nextafter(1.0, 0.0)
        self._next += int(math.log(self._uniform()) / math.log1p(-self._weight)) + 1

    def offer(self, n: int) -> list[tuple[int, int]]:
        entries = []
        end = self.seen + n
        position = self.seen
        while position < min(end, self.size):
            entries.append((position - self.seen, position))
            position += 1
        while self.size and self._next - 1 < end:
            chosen = self._next - 1  # Algorithm L counts positions from 1
            if chosen >= self.size:
                entries.append((chosen - self.seen, self._rng.randrange(self.size)))
            self._advance()
        self.seen = end
        return entries


@dataclass
class FixedHistogram:
    """Counts of values in bins fixed before any value is seen: ``edges[i] <= v < edges[i + 1]``, plus the values
    below the first edge (``under``) and at or above the last (``over``); also count, sum, min and max."""

    name: str
    title: str
    unit: str
    edges: np.ndarray
    integer: bool = False
    counts: np.ndarray = field(init=False)
    under: int = 0
    over: int = 0
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        if len(self.edges) < 2 or np.any(np.diff(self.edges) <= 0):
            raise ValueError(f"{self.name}: bin edges must increase, got {self.edges}")
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def add(self, values: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        self.count += int(values.size)
        self.total += float(values.sum())
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        index = np.searchsorted(self.edges, values, side="right") - 1
        self.under += int(np.count_nonzero(index < 0))
        self.over += int(np.count_nonzero(index >= len(self.counts)))
        inside = index[(index >= 0) & (index < len(self.counts))]
        self.counts += np.bincount(inside, minlength=len(self.counts))

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def bin_label(self, i: int) -> str:
        low, high = self.edges[i], self.edges[i + 1]
        if self.integer and high - low == 1:
            return f"{low:g}"
        if self.integer:
            return f"{low:g}-{high - 1:g}"
        return f"{low:g}-{high:g}"


def _integer_edges(top: int) -> np.ndarray:
    return np.arange(0, top + 1)


def histograms_for(config_name: str) -> list[FixedHistogram]:
    """The histograms a config gets, with their fixed bins."""
    facts = CONFIGS[config_name]
    found = [
        FixedHistogram("text_length", "Text length per row", "characters in all turns",
                       np.concatenate([[0], 2.0 ** np.arange(5, 18)]), integer=True),
        FixedHistogram("turns", "Turns per row", "turns", _integer_edges(128), integer=True),
    ]
    if config_name == "referring":
        found += [
            FixedHistogram("boxes_per_turn", "Boxes per turn", "boxes", _integer_edges(64), integer=True),
            FixedHistogram("box_area", "Box area", "fraction of the image", np.linspace(0.0, 1.0, 21)),
        ]
    if facts.multi_image:
        found.append(FixedHistogram("images", "Images per row", "images", _integer_edges(64), integer=True))
    return found


@dataclass
class SampledRow:
    """A chosen row: its position in the config (shards in order), its shard, and its values (images undecoded)."""

    position: int
    shard: str
    values: dict


@dataclass
class ConfigScan:
    config: BuiltConfig
    sample: list[SampledRow]
    histograms: list[FixedHistogram]
    rows_read: int = 0
    flagged_turns: int = 0
    rows_with_upstream_extra: int = 0
    row_groups_read_for_images: int = 0


def _turns(table: pa.Table, family: str) -> tuple[pa.Array, np.ndarray]:
    """Every turn of the table's rows, flattened, and the row each belongs to."""
    conversations = table.column("conversations").combine_chunks()
    if family == "svit":
        conversation_row = pc.list_parent_indices(conversations).to_numpy()
        content = pc.struct_field(pc.list_flatten(conversations), "content")
        turns = pc.list_flatten(content)
        return turns, conversation_row[pc.list_parent_indices(content).to_numpy()]
    return pc.list_flatten(conversations), pc.list_parent_indices(conversations).to_numpy()


def _per_row(rows: int, owners: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(owners, weights=weights, minlength=rows)[:rows]


def add_table(scan: ConfigScan, table: pa.Table) -> None:
    """Add one row group's text columns to the scan's histograms and counts."""
    rows = table.num_rows
    histograms = {h.name: h for h in scan.histograms}
    turns, turn_row = _turns(table, CONFIGS[scan.config.name].family)
    lengths = pc.fill_null(pc.utf8_length(pc.struct_field(turns, "value")), 0).to_numpy(zero_copy_only=False)
    histograms["text_length"].add(_per_row(rows, turn_row, lengths.astype(np.float64)))
    histograms["turns"].add(_per_row(rows, turn_row))
    if "images" in histograms:
        histograms["images"].add(pc.fill_null(pc.list_value_length(table.column("image_paths")), 0).to_numpy())
    if "boxes_per_turn" in histograms:
        regions = pc.struct_field(turns, "regions")
        flat_regions = pc.list_flatten(regions)
        boxes = pc.struct_field(flat_regions, "boxes")
        boxes_per_region = pc.fill_null(pc.list_value_length(boxes), 0).to_numpy().astype(np.float64)
        region_turn = pc.list_parent_indices(regions).to_numpy()
        histograms["boxes_per_turn"].add(_per_row(len(turns), region_turn, boxes_per_region))
        corners = pc.list_flatten(pc.list_flatten(boxes)).to_numpy(zero_copy_only=False).reshape(-1, 4)
        histograms["box_area"].add((corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1]))
        issues = pc.struct_field(turns, "reference_issues")
        scan.flagged_turns += int(pc.sum(pc.greater(pc.list_value_length(issues), 0)).as_py() or 0)
    scan.rows_with_upstream_extra += rows - table.column("upstream_extra").null_count
    scan.rows_read += rows


def _rows(table: pa.Table, offsets: Iterable[int]) -> list[dict]:
    return [table.slice(offset, 1).to_pylist()[0] for offset in offsets]


def scan_config(folder: BuiltFolder, config: BuiltConfig, rows: int, seed: int) -> ConfigScan:
    """Read ``config``'s shards once: ``rows`` rows sampled (seeded by ``seed`` and the config's name, so configs
    of one page are sampled independently), in position order, and the config's histograms."""
    reservoir = Reservoir(rows, seed=f"{seed}:{config.name}")
    slots: dict[int, SampledRow] = {}
    scan = ConfigScan(config, [], histograms_for(config.name))
    for shard in config.shards:
        with folder.open(shard.path) as file:
            parquet = pq.ParquetFile(file)
            names = parquet.schema_arrow.names
            text_columns = [name for name in names if name not in IMAGE_COLUMNS]
            image_columns = [name for name in names if name in IMAGE_COLUMNS]
            for group in range(parquet.num_row_groups):
                start = reservoir.seen
                table = parquet.read_row_group(group, columns=text_columns)
                add_table(scan, table)
                entries = reservoir.offer(table.num_rows)
                if not entries:
                    continue
                images = parquet.read_row_group(group, columns=image_columns)
                scan.row_groups_read_for_images += 1
                offsets = [offset for offset, _ in entries]
                for (offset, slot), text, image in zip(entries, _rows(table, offsets), _rows(images, offsets)):
                    slots[slot] = SampledRow(start + offset, shard.name, {**text, **image})
    scan.sample = sorted(slots.values(), key=lambda row: row.position)
    return scan
