"""``verify_published_folder`` passes a good build and names what is wrong with a broken one.

Every case breaks a fresh copy of the sample build in one way, as a failed or tampered build would.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from publish_fixtures import ALL_CONFIGS, copy_published, sample_build, shard_paths
from svitpipe.publish.checks import PublishCheckError, verify_published_folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture
def folder(built, tmp_path) -> Path:
    return copy_published(built, tmp_path / "copy")


def problems_of(folder: Path, configs=ALL_CONFIGS, **kwargs) -> list[str]:
    with pytest.raises(PublishCheckError) as raised:
        verify_published_folder(str(folder), list(configs), **kwargs)
    assert raised.value.problems, "PublishCheckError without problems"
    for problem in raised.value.problems:
        assert problem in str(raised.value)
    return raised.value.problems


def relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def rewrite(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_a_good_folder_passes(folder):
    verify_published_folder(str(folder), list(ALL_CONFIGS))


def test_truncated_shard(folder):
    shards = shard_paths(folder, "referring")
    total = sum(pq.ParquetFile(path).metadata.num_rows for path in shards)
    shard = shards[1]
    lost = pq.ParquetFile(shard).metadata.num_rows
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    problems = problems_of(folder)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{relative(folder, shard)}: does not open as Parquet: ")
    assert problems[1] == f"referring: shards hold {total - lost} rows, the infos say {total}"


def test_garbage_shard(folder):
    shard = shard_paths(folder, "sa1b-en-multi")[0]
    shard.write_bytes(b"this is not a parquet file\n" * 100)
    problems = problems_of(folder)
    assert any(p.startswith(f"{relative(folder, shard)}: does not open as Parquet") for p in problems), problems


def test_shard_with_a_column_dropped(folder):
    shard = shard_paths(folder, "sa1b-zh-single")[0]
    table = pq.read_table(shard)
    rewrite(shard, table.drop_columns(["caption"]))
    problems = problems_of(folder)
    assert problems == [f"{relative(folder, shard)}: schema differs from the declared features"]


def test_shard_with_a_column_of_another_type(folder):
    shard = shard_paths(folder, "description")[0]
    table = pq.read_table(shard)
    position = table.schema.get_field_index("width")
    table = table.set_column(position, "width", table.column("width").cast(pa.int64()))
    rewrite(shard, table.replace_schema_metadata(None))
    problems = problems_of(folder)
    assert problems == [f"{relative(folder, shard)}: schema differs from the declared features"]


def test_missing_shard_is_a_row_count_mismatch(folder):
    shards = shard_paths(folder, "conversation")
    assert len(shards) > 1
    removed_rows = pq.ParquetFile(shards[-1]).metadata.num_rows
    total = sum(pq.ParquetFile(path).metadata.num_rows for path in shards)
    shards[-1].unlink()
    problems = problems_of(folder)
    assert problems == [f"conversation: shards hold {total - removed_rows} rows, the infos say {total}"]


def test_config_without_shards(folder):
    for shard in shard_paths(folder, "reasoning"):
        shard.unlink()
    problems = problems_of(folder)
    assert problems == ["reasoning: no shards under data/reasoning/"]


def test_card_with_broken_yaml(folder):
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8")
    card.write_text(text.replace("configs:\n", "configs: [\n", 1), encoding="utf-8")
    problems = problems_of(folder)
    assert len(problems) == 1 and problems[0].startswith("README.md does not parse as a dataset card"), problems


def test_card_missing_a_config(folder):
    card = DatasetCard.load(folder / "README.md")
    card.data.configs = [entry for entry in card.data.configs if entry["config_name"] != "sa1b-zh-multi"]
    card.save(folder / "README.md")
    problems = problems_of(folder)
    assert any("card configs" in p and "!= built configs" in p for p in problems), problems


def test_card_without_a_config_s_dataset_info(folder):
    card = DatasetCard.load(folder / "README.md")
    card.data.dataset_info = [entry for entry in card.data.dataset_info if entry["config_name"] != "referring"]
    card.save(folder / "README.md")
    problems = problems_of(folder)
    assert problems == ["referring: missing from the card's dataset_info or from dataset_infos.json"]


def test_card_with_two_defaults(folder):
    card = DatasetCard.load(folder / "README.md")
    for entry in card.data.configs:
        if entry["config_name"] == "conversation":
            entry["default"] = True
    card.save(folder / "README.md")
    problems = problems_of(folder)
    assert problems == ["expected exactly one default config, found ['conversation', 'referring']"]


def test_duplicate_ids_across_shards(folder):
    first, second = shard_paths(folder, "sa1b-en-single")[:2]
    taken = pq.read_table(first).column("id")[0].as_py()
    table = pq.read_table(second)
    ids = table.column("id").to_pylist()
    ids[0] = taken
    table = table.set_column(table.schema.get_field_index("id"), table.schema.field("id"), pa.array(ids, pa.string()))
    rewrite(second, table)
    problems = problems_of(folder)
    assert problems == [f"{relative(folder, second)}: ids already used in this config: [{taken!r}]"]


def test_row_groups_over_the_limit(folder):
    problems = problems_of(folder, max_rows_per_row_group=1)
    multi_row_groups = [
        relative(folder, path)
        for name in ALL_CONFIGS
        for path in shard_paths(folder, name)
        if max(pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(path).metadata.num_row_groups)) > 1
    ]
    assert multi_row_groups
    assert sorted(p.split(":")[0] for p in problems) == sorted(multi_row_groups)
    assert all("row group holds" in p and "(limit 1)" in p for p in problems)


def test_every_problem_is_reported_together(folder):
    truncated = shard_paths(folder, "referring")[0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    missing = shard_paths(folder, "description")[-1]
    missing.unlink()
    problems = problems_of(folder)
    assert any(p.startswith(relative(folder, truncated)) for p in problems)
    assert any(p.startswith("description: shards hold") for p in problems)
