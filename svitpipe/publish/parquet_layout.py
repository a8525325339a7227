"""Examples -> Parquet files laid out for the Hub: small row groups, raw image bytes, Xet-friendly pages.

Per leaf column:

* image bytes (``image.bytes``, ``images.list.element.bytes``): no compression (JPEG does not compress), PLAIN
  encoding, no dictionary, no statistics (min/max of image bytes would bloat the page index);
* everything else (text, ids, paths, sizes, boxes): zstd, dictionary encoding, statistics.

Every file gets a page index and content-defined chunking, so the Hub's Xet storage finds identical pages (the same
image in several configs, unchanged rows after a re-build) and stores and uploads them once. Row groups hold at most
``rows_per_row_group`` rows (100 by default: the Dataset Viewer and random access read one row group at a time).
The same examples give byte-identical files.
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
DEFAULT_CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


@dataclass(frozen=True)
class ParquetLayout:
    """How parts, and so the published shards made from them, are written.

    Attributes:
        max_shard_bytes: a part (and every shard) is closed before it would pass this size.
        rows_per_row_group: rows per row group.
        text_compression: codec for every column but image bytes.
        compress_images: compress image bytes too (off: JPEG bytes do not shrink, and it costs CPU on read).
        content_defined_chunking: cut pages at content-defined boundaries (Xet deduplication).
    """

    max_shard_bytes: int = 500 * 1000 * 1000
    rows_per_row_group: int = DEFAULT_ROWS_PER_ROW_GROUP
    text_compression: str = "zstd"
    compress_images: bool = False
    content_defined_chunking: bool = True


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


# Footer bytes one data page can add (its page-index entry, thrift-encoded); measured 3-12, bounded generously.
_FOOTER_BYTES_PER_PAGE = 32


def row_group_footer_bound(features: Features, layout: ParquetLayout, table: pa.Table, fixed_footer: int) -> int:
    """A bound on the footer bytes a row group like ``table`` adds, without writing its image bytes twice.

    The footer holds per-column metadata and statistics (image bytes have none) and a page-index entry per page.
    So the group is written in memory with empty image bytes, and each image column adds a bound on its pages:
    one per value plus one per ``min_chunk_size`` of bytes (content-defined chunking never cuts smaller pages
    within a value run), at ``_FOOTER_BYTES_PER_PAGE`` each.
    """
    pages = 0
    for name, in_list in image_columns(features):
        column = table.column(name)
        values = column.combine_chunks()
        structs, lengths = (values.flatten(), values) if in_list else (values, None)
        image_bytes = structs.field("bytes")
        total = pc.sum(pc.binary_length(image_bytes)).as_py() or 0
        pages += len(image_bytes) + total // DEFAULT_CDC_OPTIONS["min_chunk_size"] + 1
        empty = pa.StructArray.from_arrays(
            [pa.nulls(len(structs), pa.binary()), structs.field("path")], names=["bytes", "path"]
        )
        emptied = empty if lengths is None else pa.ListArray.from_arrays(lengths.offsets, empty, type=column.type)
        table = table.set_column(table.schema.get_field_index(name), name, emptied)
    return footer_bytes(features, layout, table) - fixed_footer + pages * _FOOTER_BYTES_PER_PAGE


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
        if len(self._rows) >= self.layout.rows_per_row_group:
            self._write_row_group()

    def close(self) -> list[WrittenFile]:
        if self._rows:
            self._write_row_group()
        self._close_file()
        return self.files

    def _write_row_group(self) -> None:
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        self._rows = []
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
    """Write record batches (already encoded rows) as one Parquet file, in row groups of ``rows_per_row_group`` rows
    counted from the first row; only about one row group is held in memory at a time. An existing file with the
    same bytes is left alone, and a different one is replaced by a new file rather than rewritten in place."""
    size = layout.rows_per_row_group
    rows = arrow_bytes = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    temporary = f"{path}.tmp"
    with pa.OSFile(temporary, "wb") as sink:
        with open_parquet_writer(sink, features, layout) as writer:

            def write(group: pa.Table) -> None:
                nonlocal rows, arrow_bytes
                writer.write_table(group, row_group_size=size)
                rows += len(group)
                arrow_bytes += group.nbytes

            for batch in batches:
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= size:
                    table = pa.Table.from_batches(pending, schema=features.arrow_schema)
                    full = pending_rows - pending_rows % size
                    for start in range(0, full, size):
                        write(table.slice(start, size))
                    pending = table.slice(full).to_batches()
                    pending_rows -= full
            if pending_rows:
                write(pa.Table.from_batches(pending, schema=features.arrow_schema))
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
