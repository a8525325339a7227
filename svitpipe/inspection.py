"""Say what a build would find, before the long work: every annotation record read, every image checked (header
only), nothing written.

``inspect_config`` plans the config as a build would, then runs ``iter_examples`` over every unit under the skip
policy, so that every problem is counted instead of stopping the pass: counted skips and flags by kind with their
first messages, the ``upstream_extra`` key paths with counts (indices folded: ``conversations[*].source``), and
whether a build under the chosen policy would finish. ``svit-internvl upload --inspect`` prints it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Optional

from .bad_records import TAR_NOT_SELECTED, BadRecordError
from .builder import SVITInternVL, iter_examples

EXAMPLES_SHOWN = 3
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class ConfigInspection:
    """What one config holds.

    Attributes:
        config_name: the config.
        records_read: upstream records read (JSON array elements, jsonl lines).
        rows: rows a build would write.
        skipped: records that would be counted skips, per reason.
        flagged: problems rows would carry, per kind.
        examples: the first few messages per reason or kind (file, record, excerpt).
        upstream_extra_paths: undeclared key paths, with the rows that carry them.
        would_finish: whether a build under ``policy`` finishes (``raise`` stops at the first counted skip).
        policy: the ``on_bad_record`` policy the verdict is for.
        error: why the config cannot be read at all (a source missing, an array structure broken), or None.
    """

    config_name: str
    policy: str
    records_read: int = 0
    rows: int = 0
    skipped: dict = field(default_factory=dict)
    flagged: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)
    upstream_extra_paths: dict = field(default_factory=dict)
    would_finish: bool = True
    error: Optional[str] = None


def folded_path(path: str) -> str:
    """``conversations[2].content[0].lang`` -> ``conversations[*].content[*].lang``."""
    return _INDEX.sub("[*]", path)


def inspect_config(config_name: str, options: dict, policy: str) -> ConfigInspection:
    """Read the config's sources as a build with ``options`` would, under the skip policy; judge for ``policy``."""
    result = ConfigInspection(config_name, policy)
    builder = SVITInternVL(config_name=config_name, **{**options, "on_bad_record": "skip"})
    paths: Counter = Counter()
    try:
        for gen_kwargs in builder.shard_gen_kwargs():
            for _, _, example in iter_examples(builder.config, builder.ledger, **gen_kwargs):
                result.rows += 1
                if example["upstream_extra"]:
                    paths.update({folded_path(path) for path in json.loads(example["upstream_extra"])})
    except (BadRecordError, FileNotFoundError, ValueError, OSError) as err:
        result.error = f"{type(err).__name__}: {err}"
    ledger = builder.ledger
    result.records_read = ledger.records_read
    result.skipped = dict(sorted(ledger.skipped.items()))
    result.flagged = dict(sorted(ledger.flagged.items()))
    result.examples = {kind: messages[:EXAMPLES_SHOWN] for kind, messages in sorted(ledger.samples.items())}
    result.upstream_extra_paths = dict(paths.most_common())
    bad = {reason for reason in ledger.skipped if reason != TAR_NOT_SELECTED}  # left out by choice: not bad records
    result.would_finish = result.error is None and (policy == "skip" or not bad)
    return result


def format_inspection(result: ConfigInspection) -> str:
    verdict = "yes" if result.would_finish else "no"
    lines = [f"{result.config_name}: {result.records_read:,} records -> {result.rows:,} rows; a build with "
             f"on_bad_record={result.policy!r} would finish: {verdict}"]
    if result.error:
        lines.append(f"  cannot be read: {result.error}")
    for label, counts in (("skipped", result.skipped), ("flagged", result.flagged)):
        for kind, count in counts.items():
            lines.append(f"  {label} {kind}: {count:,}")
            lines += [f"      e.g. {message}" for message in result.examples.get(kind, [])]
    if result.upstream_extra_paths:
        shown = ", ".join(f"{path}: {count:,}" for path, count in result.upstream_extra_paths.items())
        lines.append(f"  upstream_extra keys (rows): {shown}")
    if not (result.skipped or result.flagged or result.error):
        lines.append("  nothing to report: every record becomes a clean row")
    return "\n".join(lines)


def inspection_report(results: list[ConfigInspection]) -> dict:
    """The JSON form of ``--report``."""
    return {"would_finish": all(r.would_finish for r in results), "configs": [asdict(r) for r in results]}
