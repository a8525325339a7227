"""Group an InternVL-SA-1B-Caption jsonl file by SA-1B tar, so that each tar can be joined with its captions alone.

One pass streams the captions file (11 GB for the English single-image file) line by line and appends each line,
with its line number, to a bucket file of the tar that holds its (first) image. Memory stays bounded: buckets are
flushed to disk when their buffers pass a few MB in total. The result is cached on local disk under a key made of
the file's URL, size and modification stamp, so later runs (and every DataLoader worker) reuse it.

Lines that are not JSON, or whose ``image`` field is not a valid SA-1B path, are bad records: under the raise policy
the pass stops at the first one; under skip they are counted in the index summary and reported by every run that
uses the index.
"""

from __future__ import annotations

import codecs
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator, Optional

from datasets.download.download_config import DownloadConfig
from datasets.utils import logging
from datasets.utils.file_utils import xopen

from ..bad_records import MALFORMED_JSON, BadRecordLedger, BadRecordPolicy, InvalidRecord
from ..json_text import decode_json
from ..source_index_cache import SUMMARY_FILE, build_once, index_folder_name
from .records import line_image_refs

logger = logging.get_logger(__name__)

_INDEX_VERSION = 1
_FLUSH_BYTES = 8 << 20


@dataclass(frozen=True)
class CaptionIndex:
    """A captions file grouped by tar.

    Attributes:
        directory: where the buckets are (``<directory>/<tar stem>.tsv``).
        source: the captions file's URL.
        lines_per_tar: number of caption lines per tar stem (by the tar of the line's first image).
        tars_referenced: every tar stem any line's image is in (multi-image lines can span tars).
        ledger: lines read and bad lines found by the indexing pass.
    """

    directory: str
    source: str
    lines_per_tar: dict
    tars_referenced: tuple
    ledger: BadRecordLedger

    def bucket_path(self, tar_stem: str) -> str:
        return os.path.join(self.directory, f"{tar_stem}.tsv")


def iter_bucket(path: str) -> Iterator[tuple[int, str]]:
    """``(line number in the captions file, 1-based; the line's text)`` for every line of a bucket, in file order."""
    with open(path, encoding="utf-8", newline="\n") as bucket:  # lines end at \n only: a bare \r is JSON whitespace
        for entry in bucket:
            number, text = entry.rstrip("\n").split("\t", 1)
            yield int(number), text


def load_or_build_caption_index(
    captions_url: str,
    index_root: str,
    *,
    multi_image: bool,
    policy: BadRecordPolicy = "raise",
    download_config: Optional[DownloadConfig] = None,
) -> CaptionIndex:
    """The cached index of ``captions_url`` under ``index_root``, built first if absent."""
    directory = os.path.join(
        index_root, index_folder_name(captions_url, [multi_image, _INDEX_VERSION], download_config)
    )
    build_once(directory, lambda staging: _build(captions_url, staging, multi_image, policy, download_config))
    summary_path = os.path.join(directory, SUMMARY_FILE)
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    ledger = BadRecordLedger.from_dict(summary["ledger"], policy="skip")
    index = CaptionIndex(directory, captions_url, summary["lines_per_tar"], tuple(summary["tars_referenced"]), ledger)
    if policy == "raise" and ledger.total_skipped:
        # The index was built under the skip policy by an earlier run; this run must not pass over them.
        first = next(iter(ledger.samples.values()))[0]
        raise ValueError(
            f"{captions_url} has {ledger.total_skipped} bad line(s), first: {first} "
            "(pass on_bad_record='skip' to skip and count them)"
        )
    return index


def _build(captions_url, directory, multi_image, policy, download_config) -> None:
    ledger = BadRecordLedger(policy=policy)
    buffers: dict[str, list[str]] = defaultdict(list)
    buffered = 0
    lines_per_tar: Counter = Counter()
    tars_referenced: set = set()
    with xopen(captions_url, "rb", download_config=download_config) as captions:
        for number, raw in enumerate(captions, start=1):
            text = _decode(raw[3:] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw)
            if text is None:
                ledger.records_read += 1
                ledger.bad(captions_url, f"line {number}", MALFORMED_JSON, "not valid UTF-8")
                continue
            if not text.strip():
                continue
            ledger.records_read += 1
            value, error = decode_json(text)
            if error is not None:
                ledger.bad(captions_url, f"line {number}", MALFORMED_JSON, error)
                continue
            try:
                refs = line_image_refs(value, multi_image)
            except InvalidRecord as err:
                ledger.bad(captions_url, f"line {number}", err.reason, err.detail)
                continue
            tar = refs[0].tar
            tars_referenced.update(ref.tar for ref in refs)
            buffers[tar].append(f"{number}\t{text}\n")
            lines_per_tar[tar] += 1
            buffered += len(text)
            if buffered > _FLUSH_BYTES:
                _flush(directory, buffers)
                buffered = 0
    _flush(directory, buffers)
    summary = {
        "version": _INDEX_VERSION,
        "source": captions_url,
        "multi_image": multi_image,
        "lines_per_tar": dict(sorted(lines_per_tar.items())),
        "tars_referenced": sorted(tars_referenced),
        "ledger": ledger.to_dict(),
    }
    with open(os.path.join(directory, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=1)
    logger.info(f"Indexed {captions_url} by SA-1B tar: {ledger.records_read} lines in {len(lines_per_tar)} tars")


def _decode(raw: bytes) -> Optional[str]:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None


def _flush(directory: str, buffers: dict) -> None:
    for tar, entries in buffers.items():
        if entries:
            with open(os.path.join(directory, f"{tar}.tsv"), "a", encoding="utf-8", newline="\n") as bucket:
                bucket.writelines(entries)
    buffers.clear()
