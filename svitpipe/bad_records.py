"""What happens to a record that cannot become an example: raise (the default) or skip, counted, with the reason.

A build keeps one ``BadRecordLedger`` (``SVITInternVL.ledger``; ``upload.py`` adds its units' counts to the same
object), and every reader in the data path reports a bad record to it. Under ``on_bad_record="raise"`` the
ledger raises ``BadRecordError`` at once, naming the file, the record and what is wrong. Under ``"skip"`` it logs a
warning, counts the record under its reason, and keeps the first few messages per reason, so that at the end
``records_read == examples_written + skipped`` holds and can be reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from datasets.utils import logging

logger = logging.get_logger(__name__)

BadRecordPolicy = Literal["raise", "skip"]
BAD_RECORD_POLICIES = ("raise", "skip")

# Reasons, as stable short names for counts and reports.
MALFORMED_JSON = "malformed-json"
INVALID_RECORD = "invalid-record"
UNPARSEABLE_BOX = "unparseable-box"
MISSING_IMAGE = "missing-image"
CORRUPT_IMAGE = "corrupt-image"
MISSING_TAR = "missing-tar"
DUPLICATE_ID = "duplicate-id"
DAMAGED_TAR = "damaged-tar"
DAMAGED_ZIP = "damaged-zip"
# An image refused by its size before it is read whole or decoded: bytes over ``max_image_bytes``, or more pixels
# than Pillow's decompression-bomb limit.
IMAGE_TOO_LARGE = "image-too-large"
# An image path in an extracted folder that is not a regular file (a directory, FIFO, device, socket).
NOT_A_FILE = "not-a-regular-file"
# Not a bad record: lines of SA-1B tars left out of a partial build (``sa1b_tars``), counted under either policy.
TAR_NOT_SELECTED = "tar-not-selected"

# Flags: a problem in a view the project derives from the upstream text (regions, sizes, ids). The row is kept and
# carries the problem; the ledger counts it by kind. Never raised, whatever the policy.
REFERENCE_UNPARSED = "unparsed"
REFERENCE_OUT_OF_RANGE = "out-of-range"
REFERENCE_INVERTED = "inverted"
MERGED_DUPLICATE = "merged-duplicate"
DECLARED_SIZE_MISMATCH = "declared-size-mismatch"
IMAGE_ID_AS_STRING = "image-id-as-string"
UPSTREAM_EXTRA_KEYS = "upstream-extra-keys"
EMPTY_CONVERSATION = "empty-conversation"
NO_SINGLE_CAPTION = "no-single-caption"
# An image with an EXIF orientation: its row's sizes (and SVIT regions) are those of the decoded, turned image.
EXIF_ORIENTED = "exif-oriented"

_EXAMPLES_KEPT_PER_REASON = 5


def describe_error(error: BaseException) -> str:
    """``"ReadError: unexpected end of data"``: an exception as one line of a report."""
    return f"{type(error).__name__}: {error}"


class BadRecordError(ValueError):
    """A record that cannot be turned into an example, under the default ``on_bad_record="raise"`` policy."""

    def __init__(self, source: str, location: str, reason: str, detail: str):
        hint = " (pass on_bad_record='skip' to skip and count such records instead)"
        super().__init__(f"{source}, {location}: {reason}: {detail}{hint}")
        self.source = source
        self.location = location
        self.reason = reason
        self.detail = detail


class InvalidRecord(ValueError):
    """Raised by the pure record converters; the reader that knows the file and index turns it into a report."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class BadRecordLedger:
    """Counts records read, examples written and records skipped (per reason) for one piece of work.

    Attributes:
        policy: ``"raise"`` or ``"skip"``.
        records_read: records taken from the source (a JSON array element, a jsonl line).
        examples_written: examples yielded.
        skipped: count per reason.
        samples: the first few messages per reason (and per flag kind), for reports.
        flagged: rows kept with a problem in a derived view, count per kind (``flag``); not skips.
    """

    policy: BadRecordPolicy = "raise"
    records_read: int = 0
    examples_written: int = 0
    skipped: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)
    flagged: Counter = field(default_factory=Counter)

    def __post_init__(self):
        if self.policy not in BAD_RECORD_POLICIES:
            raise ValueError(f"on_bad_record must be one of {BAD_RECORD_POLICIES}, got {self.policy!r}")

    def bad(self, source: str, location: str, reason: str, detail: str, count: int = 1) -> None:
        """Report a bad record (or ``count`` records sharing one cause): raise under the raise policy, else count."""
        if self.policy == "raise":
            raise BadRecordError(source, location, reason, detail)
        message = f"{source}, {location}: {detail}"
        logger.warning(f"Skipping {count} bad record(s) ({reason}): {message}")
        self.skipped[reason] += count
        kept = self.samples.setdefault(reason, [])
        if len(kept) < _EXAMPLES_KEPT_PER_REASON:
            kept.append(message)

    def flag(self, source: str, location: str, kind: str, detail: str, count: int = 1) -> None:
        """Count a problem in a derived view of a record that is kept (its row carries the problem): under either
        policy, never raised; the first few messages per kind are kept for reports."""
        self.flagged[kind] += count
        kept = self.samples.setdefault(kind, [])
        if len(kept) < _EXAMPLES_KEPT_PER_REASON:
            kept.append(f"{source}, {location}: {detail}")

    def read(self, count: int = 1) -> None:
        """Count ``count`` records as taken from the source."""
        self.records_read += count

    def left_out(self, reason: str, count: int) -> None:
        """Count ``count`` records as read and deliberately not built (a chosen subset, not bad records): skipped
        under ``reason`` whatever the policy."""
        self.records_read += count
        self.skipped[reason] += count

    def take_skips(self, other: "BadRecordLedger") -> None:
        """Add the records ``other`` skipped, as read and skipped here. Its other records are not counted: they are
        read (and counted) again where they become examples, as an index's good lines are."""
        self.records_read += other.total_skipped
        self.skipped.update(other.skipped)
        self._add_samples(other, other.skipped)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: "BadRecordLedger") -> None:
        """Add every count of ``other`` (another piece of the same build) to this ledger."""
        self.records_read += other.records_read
        self.examples_written += other.examples_written
        self.skipped.update(other.skipped)
        self.flagged.update(other.flagged)
        self._add_samples(other, other.samples)

    def _add_samples(self, other: "BadRecordLedger", reasons) -> None:
        for reason in reasons:
            if other.samples.get(reason):
                kept = self.samples.setdefault(reason, [])
                kept.extend(other.samples[reason][: _EXAMPLES_KEPT_PER_REASON - len(kept)])

    def is_balanced(self) -> bool:
        """Whether every record read is in the output (a row of its own, or merged into the row of an earlier record
        with the same id) or in a counted skip."""
        return self.records_read == self.examples_written + self.flagged[MERGED_DUPLICATE] + self.total_skipped

    def summary(self) -> str:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items())) or "none"
        summary = f"{self.records_read} records read, {self.examples_written} examples written, skipped: {skipped}"
        if self.flagged:
            summary += ", flagged: " + ", ".join(f"{kind}: {count}" for kind, count in sorted(self.flagged.items()))
        return summary

    def to_dict(self) -> dict:
        return {
            "records_read": self.records_read,
            "examples_written": self.examples_written,
            "skipped": dict(sorted(self.skipped.items())),
            "flagged": dict(sorted(self.flagged.items())),
            "samples": {reason: list(messages) for reason, messages in sorted(self.samples.items())},
        }

    @classmethod
    def from_dict(cls, data: dict, policy: BadRecordPolicy = "skip") -> "BadRecordLedger":
        return cls(
            policy=policy,
            records_read=data["records_read"],
            examples_written=data["examples_written"],
            skipped=Counter(data["skipped"]),
            flagged=Counter(data.get("flagged", {})),
            samples={reason: list(messages) for reason, messages in data.get("samples", {}).items()},
        )
