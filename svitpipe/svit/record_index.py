"""SVIT annotation file -> a local index of its records, so that any run of records is one sequential read.

SVIT ships each subset as one JSON array (several GB for the larger subsets, inside a zip). One streaming pass reads
it, from a zip or not, locally or through fsspec, and writes every element's bytes as they are in the file to
``records.bin``, each behind a small header: where the element was in the file, and, when its ``image_id`` repeats
the ``image_id`` of an earlier record, that record's index. ``entries.bin`` holds where each record's entry starts.
A shard is then a contiguous range of records (``record_ranges``): its examples come from one seek and one
sequential read, and no shard reads another shard's records again.

Duplicates are decided here, once, over the whole file: the first record with a valid ``image_id`` keeps it (a
record whose JSON is broken, or whose ``image_id`` is not valid, claims nothing), and every later record with the
same ``image_id`` is merged into the first one's row (``merges.json``: first record -> later records, in file order),
so the result does not depend on how the subset is sharded. A range yields a merged record with its first record,
and skips it where it stands. Elements are kept even when their JSON is broken; the shard that reads one reports it.
A broken array structure (which hides where later elements are) stops the pass, naming the file and byte offset.

The index is cached on local disk under a key made of the file's URL, size and modification stamp, like the SA-1B
caption index; memory stays bounded by the reader's window plus one integer per distinct ``image_id``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import xopen

from ..bad_records import InvalidRecord
from ..source_index_cache import SUMMARY_FILE, build_once, index_folder_name
from .json_array_reader import MAX_ELEMENT_BYTES, JSONArrayStructureError, iter_json_array
from .records import read_image_id

logger = logging.get_logger(__name__)

_INDEX_VERSION = 2
RECORDS_FILE = "records.bin"
ENTRIES_FILE = "entries.bin"
MERGES_FILE = "merges.json"
# Per record in records.bin: byte offset in the source, index of the earlier record holding the same image_id (-1:
# none), length of the element's bytes; then the bytes.
_ENTRY_HEADER = struct.Struct("<qqI")
_ENTRY_START = struct.Struct("<q")
_IO_BUFFER = 1 << 20


@dataclass(frozen=True)
class IndexedRecord:
    """One element of the array as the index holds it.

    Attributes:
        index: position in the array.
        offset: byte offset of the element in the (decompressed) source file.
        duplicate_of: index of the earlier record with the same ``image_id``, or -1.
        raw: the element's bytes, as in the file.
        merged: the later records with the same ``image_id``, in file order (their content joins this row).
    """

    index: int
    offset: int
    duplicate_of: int
    raw: bytes
    merged: tuple = ()


@dataclass(frozen=True)
class RecordRange:
    """Records ``[start, stop)`` of an indexed annotation file: one SVIT builder shard (one unit of work).

    Attributes:
        index_dir: the index folder.
        source: the annotation file's name for messages (``<url>`` or ``<zip url>::<member>``).
        position: the range's position among the subset's ranges.
        start: first record index.
        stop: one past the last record index.
    """

    index_dir: str
    source: str
    position: int
    start: int
    stop: int


@dataclass(frozen=True)
class SVITRecordIndex:
    """An indexed annotation file.

    Attributes:
        directory: the index folder.
        source: the annotation file's name for messages.
        num_records: elements in the array.
        num_duplicates: records whose ``image_id`` an earlier record already holds.
    """

    directory: str
    source: str
    num_records: int
    num_duplicates: int

    def record_ranges(self, num_shards: int) -> list[RecordRange]:
        """``num_shards`` contiguous ranges in file order, their sizes differing by one record at most. The first
        shards take the extra records, so that nodes or workers handed every k-th shard get equal shares."""
        per_shard, extra = divmod(self.num_records, num_shards)
        bounds = [shard * per_shard + min(shard, extra) for shard in range(num_shards + 1)]
        return [
            RecordRange(self.directory, self.source, shard, bounds[shard], bounds[shard + 1])
            for shard in range(num_shards)
        ]


def load_or_build_record_index(
    annotation_url: str,
    in_zip: bool,
    index_root: str,
    download_config: Optional[DownloadConfig] = None,
    max_element_bytes: int = MAX_ELEMENT_BYTES,
) -> SVITRecordIndex:
    """The cached index of the annotation file under ``index_root``, built first if absent (an element over
    ``max_element_bytes`` stops the build, naming the file and the element)."""
    options = ["svit-records", in_zip, _INDEX_VERSION]
    if max_element_bytes != MAX_ELEMENT_BYTES:  # the default keeps the index folders of earlier runs
        options.append(max_element_bytes)
    folder = index_folder_name(annotation_url, options, download_config)
    directory = os.path.join(index_root, folder)
    build_once(directory, lambda staging: _build(annotation_url, in_zip, staging, download_config, max_element_bytes))
    with open(os.path.join(directory, SUMMARY_FILE), encoding="utf-8") as f:
        summary = json.load(f)
    return SVITRecordIndex(directory, summary["source"], summary["num_records"], summary["num_duplicates"])


def iter_record_range(record_range: RecordRange) -> Iterator[IndexedRecord]:
    """The records of one range, in file order; a record that others merge into carries them (``merged``)."""
    if record_range.stop <= record_range.start:
        return
    directory = record_range.index_dir
    with open(os.path.join(directory, MERGES_FILE), encoding="utf-8") as f:
        merges = {int(first): later for first, later in json.load(f).items()}
    with open(os.path.join(directory, RECORDS_FILE), "rb", buffering=_IO_BUFFER) as records, open(
        os.path.join(directory, ENTRIES_FILE), "rb"
    ) as entries:
        records.seek(_entry_start(entries, record_range.start))
        for index in range(record_range.start, record_range.stop):
            record = _read_entry(records, directory, index)
            if index in merges:
                resume = records.tell()
                merged = []
                for later in merges[index]:
                    records.seek(_entry_start(entries, later))
                    merged.append(_read_entry(records, directory, later))
                records.seek(resume)
                record = IndexedRecord(record.index, record.offset, record.duplicate_of, record.raw, tuple(merged))
            yield record


def _entry_start(entries, index: int) -> int:
    entries.seek(index * _ENTRY_START.size)
    (position,) = _ENTRY_START.unpack(entries.read(_ENTRY_START.size))
    return position


def _read_entry(records, directory: str, index: int) -> IndexedRecord:
    header = records.read(_ENTRY_HEADER.size)
    if len(header) != _ENTRY_HEADER.size:
        raise ValueError(f"{directory}: index ends before record {index}; delete it to rebuild")
    offset, duplicate_of, length = _ENTRY_HEADER.unpack(header)
    raw = records.read(length)
    if len(raw) != length:
        raise ValueError(f"{directory}: index ends inside record {index}; delete it to rebuild")
    return IndexedRecord(index, offset, duplicate_of, raw)


@contextlib.contextmanager
def open_annotation(url: str, in_zip: bool, download_config: Optional[DownloadConfig] = None):
    """Yield ``(name for messages, binary stream)`` of the JSON array, from a zip (its one ``.json`` member) or not."""
    with xopen(url, "rb", download_config=download_config) as file:
        if not in_zip:
            yield url, file
            return
        with zipfile.ZipFile(file) as archive:
            members = [
                info
                for info in archive.infolist()
                if info.filename.endswith(".json") and not info.is_dir() and "__MACOSX" not in info.filename
            ]
            if len(members) != 1:
                names = [info.filename for info in archive.infolist()]
                raise ValueError(f"{url} should hold exactly one .json file, found {names}")
            with archive.open(members[0]) as stream:
                yield f"{url}::{members[0].filename}", stream


def _build(annotation_url: str, in_zip: bool, directory: str, download_config: Optional[DownloadConfig],
           max_element_bytes: int = MAX_ELEMENT_BYTES) -> None:
    first_record_of: dict[int, int] = {}
    merges: dict[int, list[int]] = {}
    num_records = num_duplicates = 0
    with open_annotation(annotation_url, in_zip, download_config) as (source, stream), open(
        os.path.join(directory, RECORDS_FILE), "wb", buffering=_IO_BUFFER
    ) as records, open(os.path.join(directory, ENTRIES_FILE), "wb", buffering=_IO_BUFFER) as entries:
        position = 0
        try:
            for element in iter_json_array(stream, max_element_bytes=max_element_bytes):
                duplicate_of = -1
                if element.ok:
                    with contextlib.suppress(InvalidRecord):
                        image_id, _ = read_image_id(element.value)
                        first = first_record_of.setdefault(image_id, element.index)
                        if first != element.index:
                            duplicate_of = first
                            merges.setdefault(first, []).append(element.index)
                            num_duplicates += 1
                entries.write(_ENTRY_START.pack(position))
                records.write(_ENTRY_HEADER.pack(element.offset, duplicate_of, len(element.raw)))
                records.write(element.raw)
                position += _ENTRY_HEADER.size + len(element.raw)
                num_records += 1
        except JSONArrayStructureError as err:
            err.args = (f"{source}: {err.args[0]}",)
            raise
        entries.write(_ENTRY_START.pack(position))
    summary = {
        "version": _INDEX_VERSION,
        "source": source,
        "num_records": num_records,
        "num_duplicates": num_duplicates,
    }
    with open(os.path.join(directory, MERGES_FILE), "w", encoding="utf-8") as f:
        json.dump({str(first): later for first, later in merges.items()}, f)
    with open(os.path.join(directory, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    logger.info(f"Indexed {source}: {num_records} records, {num_duplicates} merged into an earlier record's row")
