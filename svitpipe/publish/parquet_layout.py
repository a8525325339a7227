"""Examples -> Parquet files laid out for the Hub: small row groups, raw image bytes, Xet-friendly pages.

Per leaf column:

* image bytes (``image.bytes``, ``images.list.element.bytes``): no compression (JPEG does not compress), PLAIN
  encoding, no dictionary, no statistics (min/max of image bytes would bloat the page index);
* everything else (text, ids, paths, sizes, boxes): zstd, dictionary encoding, statistics.

Every file gets a page index. Parquet's content-defined chunking is off by default (``content_defined_chunking``):
image bytes are stored as they are, in data pages of up to 16 MiB, so the Hub's Xet storage, which chunks files by
content itself, finds an image it already holds wherever it lands in a file. Measured with ``hf_xet``'s local
storage (``benchmarks/bench_xet.py``), a re-build after a small upstream change uploads 3.3% of SVIT's image shards
without it and 10.4% with it (SA-1B: 0.47% and 1.42%), and it costs half of ``write_table``'s time. A row group ends at
``rows_per_row_group`` rows (100 by default: the Dataset Viewer and random access read one row group at a time) or
before its uncompressed size would pass ``max_row_group_bytes`` (128 MB by default), whichever comes first: the
Dataset Viewer refuses to read more than 300,000,000 bytes of row groups at once, which three SA-1B-sized images
per row reach at 100 rows. A single row over the budget is a row group of its own (the checks before a push
report it). The same examples give byte-identical files.
"""

from __future__ import annotations

import filecmp
import json
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Features, Image

DEFAULT_ROWS_PER_ROW_GROUP = 100
DEFAULT_ROW_GROUP_BYTES = 128 * 1000 * 1000
# The Dataset Viewer's limit on the uncompressed bytes (row group total_byte_size) it reads at once; it does not fall
# back to smaller reads past it.
VIEWER_ROW_GROUP_BYTES_LIMIT = 300_000_000
DEFAULT_CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


@dataclass(frozen=True)
class ParquetLayout:
    """How parts, and so the published shards made from them, are written.

    Attributes:
        max_shard_bytes: a part (and every shard) is closed before it would pass this size.
        rows_per_row_group: most rows in a row group.
        max_row_group_bytes: most uncompressed bytes in a row group (bounded before writing, see
            ``row_group_bytes_bound``), unless one row alone is larger.
        text_compression: codec for every column but image bytes.
        compress_images: compress image bytes too (off: JPEG bytes do not shrink, and it costs CPU on read).
        content_defined_chunking: cut pages at content-defined boundaries (Parquet's CDC); off, since for image
            shards it made Xet deduplicate less, not more (module docstring).
        write_batch_size: values encoded at a time before the writer checks a page's size against
            ``data_page_bytes``. Parquet's default, 1024, puts a whole row group of images (100 rows, up to
            ``max_row_group_bytes``) in one data page, held in memory while it grows: about a row group more of peak
            memory, and 2-3x the writing time.
        data_page_bytes: a data page is closed once it holds this much. Parquet's default, 1 MiB, puts a page header
            every few VG images, at places that move with the rows, and Xet then deduplicates a re-build 4.5x worse
            (``benchmarks/bench_xet.py``); 16 MiB is as good as one page per row group, and holds 16 MiB at most.
    """

    max_shard_bytes: int = 500 * 1000 * 1000
    rows_per_row_group: int = DEFAULT_ROWS_PER_ROW_GROUP
    max_row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES
    text_compression: str = "zstd"
    compress_images: bool = False
    content_defined_chunking: bool = False
    write_batch_size: int = 16
    data_page_bytes: int = 16 << 20


@dataclass(frozen=True)
class WrittenFile:
    """One Parquet file: its name (relative to the directory it was written in), rows, bytes on disk, Arrow bytes."""

    name: str
    num_rows: int
    num_bytes: int
    arrow_bytes: int


def _leaf_paths(path: str, pa_type: pa.DataType) -> list[str]:
    if pa.types.is_struct(pa_type):
        return [leaf for field in pa_type for leaf in _leaf_paths(f"{path}.{field.name}", field.type)]
    if pa.types.is_list(pa_type) or pa.types.is_large_list(pa_type) or pa.types.is_fixed_size_list(pa_type):
        return _leaf_paths(f"{path}.list.element", pa_type.value_type)
    return [path]


def image_columns(features: Features) -> list[tuple[str, bool]]:
    """``(name, is a list of images)`` for every image column (``image``, ``images``)."""
    columns = []
    for name, feature in features.items():
        inner = feature.feature if hasattr(feature, "feature") else feature
        if isinstance(inner, Image):
            columns.append((name, inner is not feature))
    return columns


def image_bytes_columns(features: Features) -> set[str]:
    """Leaf paths of the image bytes columns (``image.bytes``, ``images.list.element.bytes``)."""
    return {f"{name}.list.element.bytes" if in_list else f"{name}.bytes" for name, in_list in image_columns(features)}


def writer_options(features: Features, layout: ParquetLayout) -> dict:
    schema = features.arrow_schema
    raw = image_bytes_columns(features)
    compression, dictionary, statistics, encoding = {}, [], [], {}
    for field in schema:
        for leaf in _leaf_paths(field.name, field.type):
            if leaf in raw:
                compression[leaf] = layout.text_compression if layout.compress_images else "none"
                encoding[leaf] = "PLAIN"
            else:
                compression[leaf] = layout.text_compression
                dictionary.append(leaf)
                statistics.append(leaf)
    options = {
        "compression": compression,
        "use_dictionary": dictionary,
        "column_encoding": encoding,
        "write_statistics": statistics,
        "write_page_index": True,
        "write_batch_size": layout.write_batch_size,
        "data_page_size": layout.data_page_bytes,
    }
    if layout.content_defined_chunking:
        options["use_content_defined_chunking"] = DEFAULT_CDC_OPTIONS
    return options


def open_parquet_writer(sink, features: Features, layout: ParquetLayout) -> pq.ParquetWriter:
    writer = pq.ParquetWriter(sink, features.arrow_schema, **writer_options(features, layout))
    if layout.content_defined_chunking:
        writer.add_key_value_metadata({"content_defined_chunking": json.dumps(DEFAULT_CDC_OPTIONS)})
    return writer


def footer_bytes(features: Features, layout: ParquetLayout, table: Optional[pa.Table] = None) -> int:
    """Bytes written after the last row group (page index, footer, magic) of a file holding no row group, or
    ``table`` as its one row group; measured by writing it in memory."""
    sink = pa.BufferOutputStream()
    writer = open_parquet_writer(sink, features, layout)
    if table is not None:
        writer.write_table(table, row_group_size=len(table))
    data_end = sink.tell()
    writer.close()
    return sink.tell() - data_end


_EMPTY_FILE_FOOTERS: dict = {}


def _empty_file_footer(features: Features, layout: ParquetLayout) -> int:
    """``footer_bytes(features, layout)``, measured once per process: it depends on nothing else."""
    key = (repr(features), layout)
    if key not in _EMPTY_FILE_FOOTERS:
        _EMPTY_FILE_FOOTERS[key] = footer_bytes(features, layout)
    return _EMPTY_FILE_FOOTERS[key]


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; a column of one chunk (a slice of what ``PartWriter`` converts) as it is, since
    combining would copy every image's bytes to read their lengths."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


# Footer bytes one data page can add (its page-index entry, thrift-encoded); measured 3-12, bounded generously.
_FOOTER_BYTES_PER_PAGE = 32


def row_group_footer_bound(features: Features, layout: ParquetLayout, table: pa.Table, fixed_footer: int) -> int:
    """A bound on the footer bytes a row group like ``table`` adds, without writing its image bytes twice.

    The footer holds per-column metadata and statistics (image bytes have none) and a page-index entry per page.
    So the group is written in memory with empty image bytes, and each image column adds a bound on its pages:
    one per value plus one per ``min_chunk_size`` of bytes (neither content-defined chunking nor the default 1 MiB
    data pages cut smaller pages within a value run), at ``_FOOTER_BYTES_PER_PAGE`` each.
    """
    pages = 0
    for name, in_list in image_columns(features):
        column = table.column(name)
        values = _one_array(column)
        structs, lengths = (values.flatten(), values) if in_list else (values, None)
        image_bytes = structs.field("bytes")
        total = pc.sum(pc.binary_length(image_bytes)).as_py() or 0
        pages += len(image_bytes) + total // DEFAULT_CDC_OPTIONS["min_chunk_size"] + 1
        empty = pa.StructArray.from_arrays(
            [pa.nulls(len(structs), pa.binary()), structs.field("path")], names=["bytes", "path"]
        )
        if lengths is not None:  # offsets counted from the slice's first list, as flatten() gives its values
            offsets = lengths.offsets
            offsets = pc.subtract(offsets, offsets[0]) if offsets[0].as_py() else offsets
        emptied = empty if lengths is None else pa.ListArray.from_arrays(offsets, empty, type=column.type)
        table = table.set_column(table.schema.get_field_index(name), name, emptied)
    return footer_bytes(features, layout, table) - fixed_footer + pages * _FOOTER_BYTES_PER_PAGE


# What a row group's uncompressed Parquet size can exceed its Arrow size by: page headers (with their statistics)
# and definition/repetition levels, measured at 20-40 bytes per leaf column for a one-row group, bounded generously;
# plus a header per data page of the image bytes (one per value, one per min_chunk_size of bytes at most).
_GROUP_BYTES_PER_LEAF = 1024
_PAGE_HEADER_BYTES = 64


def _image_values_and_bytes(table: pa.Table, features: Features) -> tuple[int, int]:
    values = total = 0
    for name, in_list in image_columns(features):
        column = _one_array(table.column(name))
        structs = column.flatten() if in_list else column
        image_bytes = structs.field("bytes")
        values += len(image_bytes)
        total += pc.sum(pc.binary_length(image_bytes)).as_py() or 0
    return values, total


def row_group_bytes_bound(table: pa.Table, features: Features) -> int:
    """A bound on the uncompressed bytes (``total_byte_size``, what the Dataset Viewer counts) of ``table`` written
    as one row group: its Arrow size (which dictionary encoding and levels only shrink once there are a few rows)
    plus page headers and levels per leaf column and per image page."""
    leaves = sum(len(_leaf_paths(field.name, field.type)) for field in features.arrow_schema)
    values, image_bytes = _image_values_and_bytes(table, features)
    pages = values + image_bytes // DEFAULT_CDC_OPTIONS["min_chunk_size"] + 1
    return table.nbytes + leaves * _GROUP_BYTES_PER_LEAF + pages * _PAGE_HEADER_BYTES


def row_group_lengths(table: pa.Table, features: Features, layout: ParquetLayout) -> list[int]:
    """How ``table`` is cut into row groups, first to last: each as many rows as fit in both ``rows_per_row_group``
    and ``max_row_group_bytes`` (by :func:`row_group_bytes_bound`), and at least one row."""
    lengths, start = [], 0
    while start < len(table):
        most = min(layout.rows_per_row_group, len(table) - start)
        if row_group_bytes_bound(table.slice(start, most), features) <= layout.max_row_group_bytes:
            fit = most
        else:  # the bound grows with the rows: the longest run that fits, or one row
            low, high = 1, most - 1
            while low < high:
                middle = (low + high + 1) // 2
                if row_group_bytes_bound(table.slice(start, middle), features) <= layout.max_row_group_bytes:
                    low = middle
                else:
                    high = middle - 1
            fit = low
        lengths.append(fit)
        start += fit
    return lengths


def _example_image_bytes(example: dict, columns: list[tuple[str, bool]]) -> int:
    """The image bytes of one example: what can fill a row group (text is small next to them); only decides when
    pending rows are cut, the cut itself is :func:`row_group_lengths`."""
    total = 0
    for name, in_list in columns:
        for image in (example.get(name) or ()) if in_list else (example.get(name),):
            data = image.get("bytes") if isinstance(image, dict) else None
            total += len(data) if data is not None else 0
    return total


class PartWriter:
    """Writes one unit's encoded examples to its part files, ``<directory>/<prefix>-NNNNN.parquet``, starting a new
    part before the size limit (so that every published shard made from a part is under it too)."""

    def __init__(
        self,
        directory: str,
        prefix: str,
        features: Features,
        layout: ParquetLayout,
        on_row_group: Optional[Callable[[int, int], None]] = None,
    ):
        self.directory = directory
        self.on_row_group = on_row_group
        self.prefix = prefix
        self.features = features
        self.layout = layout
        self.schema = features.arrow_schema
        self.files: list[WrittenFile] = []
        self._rows: list[dict] = []
        self._pending_bytes = 0
        self._image_columns = image_columns(features)
        self._check_at = layout.max_row_group_bytes
        self._sink: Optional[pa.OSFile] = None
        self._writer: Optional[pq.ParquetWriter] = None
        self._file_rows = 0
        self._file_arrow_bytes = 0
        self._file_groups = 0
        self._largest_group = 0
        # The footer (page index, row group metadata, schema) is written when a file is closed and counts towards
        # its size: the part every file has is measured exactly, the part each row group adds is bounded from the
        # first group (row_group_footer_bound), then raised to what closed files show.
        self._fixed_footer = _empty_file_footer(features, layout)
        self._group_footer: Optional[int] = None
        os.makedirs(directory, exist_ok=True)

    def add(self, example: dict) -> None:
        """Add one example in storage form (images as ``{"bytes", "path"}``), as the builder's generators yield
        them; ``pa.Table.from_pylist`` checks every value against the schema."""
        self._rows.append(example)
        self._pending_bytes += _example_image_bytes(example, self._image_columns)
        if len(self._rows) >= self.layout.rows_per_row_group or self._pending_bytes > self._check_at:
            self._write_full_row_groups()

    def close(self) -> list[WrittenFile]:
        self._write_full_row_groups(closing=True)
        self._close_file()
        return self.files

    def _write_full_row_groups(self, closing: bool = False) -> None:
        """Write the pending rows as row groups (:func:`row_group_lengths`); a last group that is not full (short of
        ``rows_per_row_group`` and not cut by bytes) stays pending, unless ``closing``."""
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        lengths = row_group_lengths(table, self.features, self.layout)
        start = 0
        for index, length in enumerate(lengths):
            last = index == len(lengths) - 1
            if last and not closing and length < self.layout.rows_per_row_group:
                break
            self._write_row_group(table.slice(start, length))
            start += length
        self._rows = self._rows[start:]
        self._pending_bytes = sum(_example_image_bytes(row, self._image_columns) for row in self._rows)
        # Look again once the rows added since could fill what room the kept rows leave.
        room = self.layout.max_row_group_bytes
        if self._rows:
            room -= row_group_bytes_bound(table.slice(start), self.features)
        self._check_at = self._pending_bytes + max(room, 0)

    def _write_row_group(self, table: pa.Table) -> None:
        if self._group_footer is None:
            self._group_footer = row_group_footer_bound(self.features, self.layout, table, self._fixed_footer)
        if self._writer is not None and self._size_with(table) > self.layout.max_shard_bytes:
            self._close_file()
        if self._writer is None:
            self._open_file()
        before = self._sink.tell()
        self._writer.write_table(table, row_group_size=len(table))
        written = self._sink.tell() - before
        self._largest_group = max(self._largest_group, written)
        if self.on_row_group is not None:
            self.on_row_group(len(table), written)
        self._file_rows += len(table)
        self._file_arrow_bytes += table.nbytes
        self._file_groups += 1

    def _size_with(self, table: pa.Table) -> int:
        """The current file's size once closed, were ``table`` added: the group's bytes are bounded by the largest
        group so far and by its Arrow size; each group's footer share is doubled (statistics vary by group)."""
        groups = self._file_groups + 1
        data = self._sink.tell() + max(self._largest_group, table.nbytes)
        return data + self._fixed_footer + 2 * groups * self._group_footer

    def _current_name(self) -> str:
        return f"{self.prefix}-{len(self.files):05d}.parquet"

    def _open_file(self) -> None:
        self._sink = pa.OSFile(os.path.join(self.directory, self._current_name()), "wb")
        self._writer = open_parquet_writer(self._sink, self.features, self.layout)
        self._file_rows = 0
        self._file_arrow_bytes = 0
        self._file_groups = 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        name = self._current_name()
        data_end = self._sink.tell()
        self._writer.close()
        self._sink.close()
        size = os.path.getsize(os.path.join(self.directory, name))
        per_group = -(-(size - data_end - self._fixed_footer) // max(self._file_groups, 1))
        self._group_footer = max(self._group_footer or 0, per_group)
        self.files.append(WrittenFile(name, self._file_rows, size, self._file_arrow_bytes))
        self._writer = None
        self._sink = None


def write_batches(path: str, batches: Iterable[pa.RecordBatch], features: Features, layout: ParquetLayout) -> WrittenFile:
    """Write record batches (already encoded rows) as one Parquet file, in row groups cut as
    :func:`row_group_lengths` does, counted from the first row; only about one row group is held in memory at a time.
    An existing file with the same bytes is left alone, and a different one is replaced by a new file rather than
    rewritten in place."""
    rows = arrow_bytes = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    temporary = f"{path}.tmp"
    with pa.OSFile(temporary, "wb") as sink:
        with open_parquet_writer(sink, features, layout) as writer:

            def write_groups(table: pa.Table, closing: bool) -> pa.Table:
                """Write ``table``'s full row groups (all of them when ``closing``); return the rows left."""
                nonlocal rows, arrow_bytes
                lengths = row_group_lengths(table, features, layout)
                if not closing and lengths[-1] < layout.rows_per_row_group:
                    lengths = lengths[:-1]
                start = 0
                for length in lengths:
                    group = table.slice(start, length)
                    writer.write_table(group, row_group_size=length)
                    rows += length
                    arrow_bytes += group.nbytes
                    start += length
                return table.slice(start)

            for batch in batches:
                pending.append(batch)
                pending_rows += batch.num_rows
                pending_bytes += batch.nbytes
                if pending_rows >= layout.rows_per_row_group or pending_bytes > layout.max_row_group_bytes:
                    left = write_groups(pa.Table.from_batches(pending, schema=features.arrow_schema), closing=False)
                    pending, pending_rows, pending_bytes = left.to_batches(), len(left), left.nbytes
            if pending_rows:
                write_groups(pa.Table.from_batches(pending, schema=features.arrow_schema), closing=True)
    _put_in_place(temporary, path)
    return WrittenFile(os.path.basename(path), rows, os.path.getsize(path), arrow_bytes)


def _put_in_place(temporary: str, path: str) -> None:
    """Keep an existing ``path`` with the same bytes; otherwise replace it by ``temporary`` (a new file, never a
    rewrite in place: published shards are hard links to these files and must never be seen half-written)."""
    if os.path.exists(path) and filecmp.cmp(path, temporary, shallow=False):
        os.remove(temporary)
    else:
        os.replace(temporary, path)


def write_table(path: str, table: pa.Table, features: Features, layout: ParquetLayout) -> WrittenFile:
    """Write an Arrow table (already encoded rows) as one Parquet file, put in place as ``write_batches`` does."""
    return write_batches(path, table.to_batches(), features, layout)
