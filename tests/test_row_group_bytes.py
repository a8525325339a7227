"""Row groups end at ``rows_per_row_group`` rows or at the byte budget, whichever comes first; the checks before a
push reject a shard whose row group is over the budget; the card states the budget it was given.

Generated rows: real sample rows (their text and schema) carrying large synthetic image bytes, so that a small
budget cuts several rows per group by bytes long before 100 rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from publish_fixtures import ALL_CONFIGS, copy_published, sample_build, shard_paths
from svitpipe.features import features_for
from svitpipe.publish.checks import PublishCheckError, verify_published_folder
from svitpipe.publish.parquet_layout import (
    DEFAULT_ROW_GROUP_BYTES,
    VIEWER_ROW_GROUP_BYTES_LIMIT,
    ParquetLayout,
    PartWriter,
    footer_bytes,
    open_parquet_writer,
    row_group_bytes_bound,
    row_group_footer_bound,
    write_batches,
)
from svitpipe.publish.upload import parse_args

BUDGET = 100_000
IMAGE_BYTES = 10_000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sample_build(tmp_path_factory)


def sample_rows(folder, config):
    return [row for path in shard_paths(folder, config) for row in pq.read_table(path).to_pylist()]


def generated_rows(folder, config, count):
    """``count`` rows of ``config``: the sample's rows in turn, each with its own id and image bytes of
    ``IMAGE_BYTES`` (multi-image rows: every image), drawn from a seeded generator."""
    rng = np.random.default_rng(0)
    template = sample_rows(folder, config)
    rows = []
    for index in range(count):
        row = dict(template[index % len(template)], id=f"generated-{index}")
        if "images" in row:
            row["images"] = [dict(image, bytes=rng.bytes(IMAGE_BYTES)) for image in row["images"]]
        else:
            row["image"] = dict(row["image"], bytes=rng.bytes(IMAGE_BYTES))
        rows.append(row)
    return rows


def row_groups(path):
    parquet = pq.ParquetFile(path)
    return [parquet.metadata.row_group(i) for i in range(parquet.metadata.num_row_groups)], parquet


def check_cut_by_bytes(paths, rows, features, layout):
    """Every group within both limits; several rows per group, cut by bytes; each group as long as it may be (the
    next row would not fit); the rows are all there, in order."""
    read, lengths = [], []
    for path in paths:
        groups, parquet = row_groups(path)
        for index, group in enumerate(groups):
            assert group.total_byte_size <= layout.max_row_group_bytes, (path, index)
            lengths.append(group.num_rows)
        read += parquet.read().to_pylist()
    assert [row["id"] for row in read] == [row["id"] for row in rows]
    assert read == rows
    assert all(1 < length < layout.rows_per_row_group for length in lengths[:-1]), lengths
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    start = 0
    for length in lengths[:-1]:
        assert row_group_bytes_bound(table.slice(start, length), features) <= layout.max_row_group_bytes
        assert row_group_bytes_bound(table.slice(start, length + 1), features) > layout.max_row_group_bytes
        start += length
    return lengths


@pytest.mark.parametrize("config", ["referring", "sa1b-en-single", "sa1b-zh-multi"])
def test_part_writer_cuts_row_groups_by_bytes(built, tmp_path, config):
    features, layout = features_for(config), ParquetLayout(max_row_group_bytes=BUDGET)
    rows = generated_rows(built, config, 120)
    writer = PartWriter(str(tmp_path), "unit", features, layout)
    for row in rows:
        writer.add(row)
    files = writer.close()
    lengths = check_cut_by_bytes([tmp_path / written.name for written in files], rows, features, layout)
    assert sum(lengths) == 120 and len(lengths) >= 120 // (BUDGET // IMAGE_BYTES)


def test_write_batches_cuts_row_groups_the_same_way(built, tmp_path):
    features, layout = features_for("sa1b-en-single"), ParquetLayout(max_row_group_bytes=BUDGET)
    rows = generated_rows(built, "sa1b-en-single", 120)
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    batches = table.to_batches(max_chunksize=7)  # batch edges unrelated to group edges
    write_batches(str(tmp_path / "halved.parquet"), batches, features, layout)
    written = check_cut_by_bytes([tmp_path / "halved.parquet"], rows, features, layout)
    writer = PartWriter(str(tmp_path / "parts"), "unit", features, layout)
    for row in rows:
        writer.add(row)
    assert written == [group.num_rows for group in row_groups(tmp_path / "parts" / writer.close()[0].name)[0]]


def test_rows_cut_first_when_they_are_small(built, tmp_path):
    features, layout = features_for("description"), ParquetLayout(rows_per_row_group=4, max_row_group_bytes=BUDGET)
    rows = sample_rows(built, "description") * 3
    rows = [dict(row, id=str(index)) for index, row in enumerate(rows)]
    writer = PartWriter(str(tmp_path), "unit", features, layout)
    for row in rows:
        writer.add(row)
    groups, _ = row_groups(tmp_path / writer.close()[0].name)
    assert [group.num_rows for group in groups] == [4] * (len(rows) // 4) + ([len(rows) % 4] if len(rows) % 4 else [])


def test_a_row_over_the_budget_is_a_group_of_its_own(built, tmp_path):
    features, layout = features_for("sa1b-en-single"), ParquetLayout(max_row_group_bytes=2 * IMAGE_BYTES)
    rows = generated_rows(built, "sa1b-en-single", 5)
    rows[2]["image"] = dict(rows[2]["image"], bytes=bytes(3 * IMAGE_BYTES))
    writer = PartWriter(str(tmp_path), "unit", features, layout)
    for row in rows:
        writer.add(row)
    groups, parquet = row_groups(tmp_path / writer.close()[0].name)
    assert [group.num_rows for group in groups] == [1] * 5  # the fixed overhead leaves room for one image only
    assert groups[2].total_byte_size > layout.max_row_group_bytes
    assert parquet.read().to_pylist() == rows


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_the_bound_covers_what_parquet_records(built, config):
    features, layout = features_for(config), ParquetLayout()
    table = pa.Table.from_pylist(sample_rows(built, config), schema=features.arrow_schema)
    for rows in (1, len(table)):
        part = table.slice(0, rows)
        sink = pa.BufferOutputStream()
        writer = open_parquet_writer(sink, features, layout)
        writer.write_table(part, row_group_size=rows)
        writer.close()
        group = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata.row_group(0)
        assert group.total_byte_size <= row_group_bytes_bound(part, features), (config, rows)


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_the_bounds_of_a_slice_are_those_of_a_copy_of_its_rows(built, config):
    # A slice of one chunk (what PartWriter hands over) is read in place, several chunks are combined first: the
    # image counts, their bytes and the footer bound are those of a fresh copy of the same rows.
    features, layout = features_for(config), ParquetLayout()
    rows = generated_rows(built, config, 7)
    whole = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    fixed = footer_bytes(features, layout)
    for start, stop in ((0, 7), (2, 5), (3, 4), (6, 7)):
        part = whole.slice(start, stop - start)
        copy = pa.Table.from_pylist(rows[start:stop], schema=features.arrow_schema)
        chunked = pa.Table.from_batches(
            [pa.RecordBatch.from_pylist(rows[i : i + 1], schema=features.arrow_schema) for i in range(start, stop)]
        )
        assert part.column("id").num_chunks == 1 and chunked.column("id").num_chunks == stop - start
        images = {row_group_bytes_bound(table, features) - table.nbytes for table in (part, copy, chunked)}
        assert len(images) == 1
        assert row_group_footer_bound(features, layout, part, fixed) == row_group_footer_bound(
            features, layout, copy, fixed
        )


# --------------------------------------------------------------------------
# The checks before a push, the option, the card
# --------------------------------------------------------------------------


def test_the_checks_reject_a_row_group_over_the_budget(built, tmp_path):
    folder = copy_published(built, tmp_path / "copy")
    verify_published_folder(str(folder), list(ALL_CONFIGS))  # the sample is far under the default budget
    budget = 4_000
    over = []
    for name in ALL_CONFIGS:
        for path in shard_paths(folder, name):
            groups, _ = row_groups(path)
            over += [(path.relative_to(folder).as_posix(), i, g) for i, g in enumerate(groups) if g.total_byte_size > budget]
    assert over and len(over) < sum(len(shard_paths(folder, name)) for name in ALL_CONFIGS)
    with pytest.raises(PublishCheckError) as raised:
        verify_published_folder(str(folder), list(ALL_CONFIGS), max_row_group_bytes=budget)
    assert raised.value.problems == [
        f"{shard}: row group {index} ({group.num_rows} rows) holds {group.total_byte_size:,} bytes uncompressed, "
        f"over the row group budget of {budget:,} bytes"
        for shard, index, group in over
    ]


def test_upload_option_defaults_and_limits(capsys):
    args = parse_args(["--sample", "--local-dir", "x"])
    assert args.row_group_bytes == DEFAULT_ROW_GROUP_BYTES == 128_000_000 < VIEWER_ROW_GROUP_BYTES_LIMIT
    assert parse_args(["--sample", "--local-dir", "x", "--row-group-bytes", "20KB"]).row_group_bytes == 20_000
    for bad in ("301MB", "0", "lots"):
        with pytest.raises(SystemExit):
            parse_args(["--sample", "--local-dir", "x", "--row-group-bytes", bad])
        assert "--row-group-bytes" in capsys.readouterr().err


def test_the_card_states_the_budget_it_was_given(built, tmp_path_factory):
    assert "at most 100 rows and at most 128,000,000 bytes uncompressed" in DatasetCard.load(built / "README.md").text
    other = sample_build(tmp_path_factory, "--configs", "sa1b-en-multi", "--row-group-bytes", "30KB")
    assert "at most 100 rows and at most 30,000 bytes uncompressed" in DatasetCard.load(other / "README.md").text
    for path in shard_paths(other, "sa1b-en-multi"):
        assert all(group.total_byte_size <= 30_000 for group in row_groups(path)[0])
