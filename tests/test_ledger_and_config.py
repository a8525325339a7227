"""One ledger per build, its bookkeeping methods, and ``make_config`` / ``iter_examples``: what a worker runs
without a builder."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import new_builder
from publish_fixtures import SAMPLE
from svitpipe.bad_records import MISSING_TAR, TAR_NOT_SELECTED, BadRecordError, BadRecordLedger
from svitpipe.builder import SVITInternVL, iter_examples, make_config
from svitpipe.features import CONFIGS
from svitpipe.publish.parquet_layout import ParquetLayout
from svitpipe.publish.units import build_unit, finalize_config, plan_units
from svitpipe.publish.upload import build_config, builder_kwargs, parse_args


def skip_ledger(**skipped) -> BadRecordLedger:
    ledger = BadRecordLedger(policy="skip")
    for reason, count in skipped.items():
        ledger.bad("file.jsonl", f"{count} line(s)", reason, "detail", count=count)
    return ledger


@pytest.mark.parametrize(
    "steps, read, written, skipped",
    [
        ([("read", 3)], 3, 0, {}),
        ([("read", 2), ("left_out", TAR_NOT_SELECTED, 5)], 7, 0, {TAR_NOT_SELECTED: 5}),
        ([("take_skips", {"malformed-json": 2, "invalid-record": 1})], 3, 0, {"malformed-json": 2, "invalid-record": 1}),
        ([("merge", 4, 3, {"corrupt-image": 1})], 4, 3, {"corrupt-image": 1}),
    ],
)
def test_ledger_bookkeeping(steps, read, written, skipped):
    ledger = BadRecordLedger(policy="raise")
    for step in steps:
        if step[0] == "read":
            ledger.read(step[1])
        elif step[0] == "left_out":
            ledger.left_out(step[1], step[2])  # not a bad record: counted under the raise policy too
        elif step[0] == "take_skips":
            other = skip_ledger(**{reason.replace("-", "_"): count for reason, count in step[1].items()})
            other.skipped = Counter(step[1])
            other.records_read = 100  # its good records are counted again where they are built, not here
            ledger.take_skips(other)
        else:
            other = BadRecordLedger(policy="skip", records_read=step[1], examples_written=step[2],
                                    skipped=Counter(step[3]))
            ledger.merge(other)
    assert (ledger.records_read, ledger.examples_written, dict(ledger.skipped)) == (read, written, skipped)


def test_take_skips_keeps_the_messages_of_what_it_takes():
    source = skip_ledger(malformed_json=2)
    ledger = BadRecordLedger(policy="skip")
    ledger.take_skips(source)
    assert ledger.samples == source.samples and ledger.records_read == 2


def test_one_ledger_per_build_counts_planning_and_generation(tmp_path):
    """A partial SA-1B build: lines of tars left out (planning) and lines built (generation) in one object."""
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_tars=["sa_000000"])
    rows = list(builder.as_streaming_dataset(split="train").decode(False))
    ledger = builder.ledger
    assert ledger.skipped[TAR_NOT_SELECTED] > 0 and ledger.examples_written == len(rows) > 0
    assert ledger.is_balanced()
    lines = sum(1 for line in (SAMPLE / "internvl-sa1b-caption" / CONFIGS["sa1b-en-single"].upstream_file)
                .read_text(encoding="utf-8").splitlines() if line.strip())
    assert ledger.records_read == lines


def test_a_new_plan_starts_a_new_ledger(tmp_path):
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_tars=["sa_000000"])
    builder.shard_gen_kwargs()
    first = builder.ledger
    builder.shard_gen_kwargs()
    assert builder.ledger is not first and builder.ledger.to_dict() == first.to_dict()


def test_upload_reports_the_builders_own_ledger(tmp_path):
    args = parse_args(["--sample", "--local-dir", str(tmp_path / "out"), "--configs", "sa1b-en-single",
                       "--sa1b-tars", "sa_000001"])
    work_dir = str(tmp_path / "out" / ".cache")
    kwargs = builder_kwargs(args, work_dir)
    build, failures, _ = build_config("sa1b-en-single", kwargs, work_dir, str(tmp_path / "out"), ParquetLayout(), args)
    assert failures == [] and build.ledger.is_balanced()
    assert build.ledger.skipped[TAR_NOT_SELECTED] > 0 and build.ledger.examples_written == build.num_rows


def test_finalize_adds_the_units_counts_to_the_ledger_it_is_given(tmp_path):
    builder = new_builder(tmp_path / "cache", "description")
    units = plan_units(builder)
    options = {**{key: getattr(builder.config, key) for key in ("svit_source", "on_bad_record", "image_check")}}
    layout = ParquetLayout()
    results = [build_unit(unit, options, str(tmp_path / "work"), layout) for unit in units]
    build = finalize_config("description", results, str(tmp_path / "work"), str(tmp_path / "out"), layout,
                            ledger=builder.ledger)
    assert build.ledger is builder.ledger
    assert builder.ledger.examples_written == build.num_rows == sum(r.num_rows for r in results) > 0


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_make_config_is_the_builders_config(tmp_path, config_name):
    options = {"svit_source": "/data/svit", "sa1b_images_source": "/data/sa1b", "on_bad_record": "skip",
               "image_check": "decode", "sa1b_tars": ("sa_000002", "sa_000001"), "svit_num_shards": 3}
    built = SVITInternVL(config_name=config_name, cache_dir=str(tmp_path), **options).config
    made = make_config(config_name, {**options, "cache_dir": str(tmp_path)})
    assert made == built and made.sa1b_tars == ("sa_000001", "sa_000002")


@pytest.mark.parametrize(
    "config_name, options, error",
    [
        ("nope", {}, "unknown config 'nope'"),
        ("referring", {"on_bad_record": "ignore"}, "on_bad_record must be one of"),
        ("referring", {"image_check": "pixels"}, "image_check must be one of"),
        ("referring", {"svit_num_shards": 0}, "svit_num_shards must be a positive integer"),
    ],
)
def test_make_config_rejects_what_the_builder_rejects(tmp_path, config_name, options, error):
    with pytest.raises(ValueError, match=error):
        make_config(config_name, options)
    with pytest.raises(ValueError, match=error.replace("unknown config 'nope'", "BuilderConfig 'nope' not found")):
        SVITInternVL(config_name=config_name, cache_dir=str(tmp_path), **options)


def test_iter_examples_dispatches_on_the_config_family(tmp_path):
    for config_name in ("reasoning", "sa1b-zh-multi"):
        builder = new_builder(tmp_path / config_name, config_name)
        ledger = BadRecordLedger()
        examples = [example for kwargs in builder.shard_gen_kwargs()
                    for _, _, example in iter_examples(builder.config, ledger, **kwargs)]
        assert set(examples[0]) == set(builder.info.features)
        assert ledger.examples_written == len(examples) > 0


def test_missing_tar_is_read_and_reported_under_raise(tmp_path):
    images = tmp_path / "sa1b"
    images.mkdir()
    (images / "sa_000000.tar").write_bytes((SAMPLE / "sa1b" / "sa_000000.tar").read_bytes())
    builder = new_builder(tmp_path / "cache", "sa1b-en-single", sa1b_images_source=str(images))
    with pytest.raises(BadRecordError) as caught:
        builder.shard_gen_kwargs()
    assert caught.value.reason == MISSING_TAR
