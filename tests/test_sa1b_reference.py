"""SA-1B without its images: ``upload.py --sa1b-images reference`` builds the four ``sa1b-*`` configs with
``image_ref(s)`` and no image bytes, and ``svitpipe.sa1b.attach_images`` turns them back into the embed build's rows,
byte for byte, from the sample's tars (or their extracted folders); missing tars and members follow the bad-record
policy; the join works under ``split_dataset_by_node``, in DataLoader workers and through the local Hub, where
reference configs are pushed without ``--allow-sa1b-redistribution``.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from datasets.distributed import split_dataset_by_node

import upload
from git_hub_client import GitHubClient
from local_hub import run_with_hub, serve_git_repos
from publish_fixtures import REPO_ROOT, SA1B_CONFIGS, sample_build, shard_paths, undecoded
from svitpipe.bad_records import MISSING_IMAGE, MISSING_TAR, BadRecordError
from svitpipe.builder import SVITInternVL
from svitpipe.features import features_for
from svitpipe.sa1b import AttachImages, attach_images
from svitpipe.sa1b.attach import output_features
from svitpipe.sa1b.reference import member_number
from svitpipe.sa1b.tar_member_index import build_tar_member_index
from svitpipe.sample import SAMPLE_DIR

SA1B = SAMPLE_DIR / "sa1b"
CAPTIONS = SAMPLE_DIR / "internvl-sa1b-caption"
MULTI = ["sa1b-en-multi", "sa1b-zh-multi"]
SINGLE = ["sa1b-en-single", "sa1b-zh-single"]


@pytest.fixture(scope="module")
def embed(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """``upload.py --sample --sa1b-images reference``: the sample's tars give sizes and tar order."""
    return sample_build(tmp_path_factory, "--sa1b-images", "reference", "--configs", *SA1B_CONFIGS)


@pytest.fixture(scope="module")
def captions_only(tmp_path_factory) -> Path:
    """The reference build from the captions alone: no SA-1B images anywhere."""
    out = tmp_path_factory.mktemp("captions-only") / "build"
    code = upload.main(["--local-dir", str(out), "--sa1b-images", "reference", "--configs", *SA1B_CONFIGS,
                        "--sa1b-captions-source", str(CAPTIONS)])
    assert code == 0
    return out


def plain(dataset) -> list[dict]:
    """Every row with images as ``{bytes, path}`` (no decoding), in order."""
    return list(dataset.cast(undecoded(dataset.features)))


def embed_rows(embed: Path, config: str, streaming: bool = True) -> list[dict]:
    return plain(load_dataset(str(embed), config, split="train", streaming=streaming))


def attached(folder: Path, config: str, tmp_path, streaming: bool = True, source=SA1B, **options):
    rows = load_dataset(str(folder), config, split="train", streaming=streaming)
    return attach_images(rows, str(source), index_dir=str(tmp_path / "index"), **options)


# --------------------------------------------------------------------------
# What reference mode builds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config", SA1B_CONFIGS)
def test_reference_shards_hold_no_image_bytes(reference, embed, config):
    for path in shard_paths(reference, config):
        schema = pq.read_schema(path)
        assert "image" not in schema.names and "images" not in schema.names
        assert not [field.name for field in schema if "binary" in str(field.type)], path
        assert datasets.Features.from_arrow_schema(schema) == features_for(config, "reference")
    refs = load_dataset(str(reference), config, split="train")
    image_column = "image_refs" if config in MULTI else "image_ref"
    for row, original in zip(refs, embed_rows(embed, config)):
        paths = original["image_paths"] if config in MULTI else [original["image_path"]]
        found = row[image_column] if config in MULTI else [row[image_column]]
        assert [ref["path"] for ref in found] == paths
        assert [f"{ref['tar']}/{ref['member']}" for ref in found] == paths
    ref_bytes = sum(path.stat().st_size for path in shard_paths(reference, config))
    embed_bytes = sum(path.stat().st_size for path in shard_paths(embed, config))
    assert ref_bytes < embed_bytes


def test_reference_infos_and_card_say_what_the_configs_hold(reference):
    infos = json.loads((reference / "dataset_infos.json").read_text(encoding="utf-8"))
    for config in SA1B_CONFIGS:
        assert datasets.Features.from_dict(infos[config]["features"]) == features_for(config, "reference")
        assert infos[config]["svit_internvl_report"]["sa1b_images"] == "reference"
    card = (reference / "README.md").read_text(encoding="utf-8")
    assert "image_ref" in card and "attach_images" in card
    assert "This repository holds no SA-1B images" in card
    builder = load_dataset_builder_for(reference, "sa1b-en-multi")
    assert builder.info.features == features_for("sa1b-en-multi", "reference")


def load_dataset_builder_for(folder, config):
    return datasets.load_dataset_builder(str(folder), config)


@pytest.mark.parametrize("config", SINGLE)
def test_single_image_rows_are_in_tar_order(reference, captions_only, config):
    positions = {tar.stem: build_tar_member_index(str(tar)).positions() for tar in SA1B.glob("sa_*.tar")}
    for folder, key in ((reference, lambda ref: positions[ref["tar"]][ref["member"]]),
                        (captions_only, lambda ref: member_number(ref["member"]))):
        for path in shard_paths(folder, config):
            refs = pq.read_table(path, columns=["image_ref"]).column("image_ref").to_pylist()
            assert len({ref["tar"] for ref in refs}) == 1, "one tar per shard"
            assert [key(ref) for ref in refs] == sorted(key(ref) for ref in refs), path


def test_captions_alone_carry_the_declared_sizes_or_nulls(captions_only):
    rows = load_dataset(str(captions_only), "sa1b-en-single", split="train")
    lines = [json.loads(line) for line in (CAPTIONS / "internvl_sa1b_caption_11m_single_image_en.jsonl").open()]
    for row in rows:
        line = lines[int(row["id"]) - 1]
        assert (row["width"], row["height"]) == (line.get("width"), line.get("height"))
    assert {row["width"] for row in rows} - {None}, "the sample declares some sizes"


def test_reference_mode_needs_no_images_source(tmp_path):
    builder = SVITInternVL(config_name="sa1b-zh-multi", sa1b_images="reference", sa1b_captions_source=str(CAPTIONS),
                           cache_dir=str(tmp_path))
    rows = list(builder.as_streaming_dataset(split="train"))
    assert len(rows) == 3 and all(row["image_refs"] for row in rows)
    assert builder.info.features == features_for("sa1b-zh-multi", "reference")
    with pytest.raises(ValueError, match="sa1b_images must be one of"):
        SVITInternVL(config_name="sa1b-zh-multi", sa1b_images="links", cache_dir=str(tmp_path))


# --------------------------------------------------------------------------
# attach_images == the embed build
# --------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "dataset"])
@pytest.mark.parametrize("config", SA1B_CONFIGS)
def test_attach_images_gives_the_embed_rows_byte_for_byte(reference, embed, config, streaming, tmp_path):
    joined = attached(reference, config, tmp_path, streaming=streaming)
    assert isinstance(joined, datasets.IterableDataset if streaming else datasets.Dataset)
    expected = load_dataset(str(embed), config, split="train", streaming=streaming)
    assert joined.features == expected.features == features_for(config)
    rows, wanted = plain(joined), plain(expected)
    assert [list(row) for row in rows] == [list(row) for row in wanted]  # same columns, same order
    assert rows == wanted


@pytest.mark.parametrize("config", SA1B_CONFIGS)
def test_rows_built_from_the_captions_alone_join_to_the_embed_rows(captions_only, embed, config, tmp_path):
    rows = plain(attached(captions_only, config, tmp_path))
    by_id = lambda row: int(row["id"])  # noqa: E731 - only the order within a tar differs (tar order unknown)
    assert sorted(rows, key=by_id) == sorted(embed_rows(embed, config), key=by_id)


def test_extracted_folders_join_like_tars(reference, embed, tmp_path):
    folders = tmp_path / "extracted"
    for tar_path in SA1B.glob("sa_*.tar"):
        with tarfile.open(tar_path) as archive:
            archive.extractall(folders / tar_path.stem, filter="data")
    for config in ("sa1b-en-multi", "sa1b-zh-single"):
        assert plain(attached(reference, config, tmp_path, source=folders)) == embed_rows(embed, config)


def test_an_fsspec_url_joins_like_a_local_folder(reference, embed, tmp_path):
    import fsspec

    memory = fsspec.filesystem("memory")
    for tar_path in SA1B.glob("sa_*.tar"):
        memory.pipe(f"/i13-sa1b/{tar_path.name}", tar_path.read_bytes())
    try:
        rows = plain(attached(reference, "sa1b-en-multi", tmp_path, source="memory://i13-sa1b"))
    finally:
        memory.rm("/i13-sa1b", recursive=True)
    assert rows == embed_rows(embed, "sa1b-en-multi")


def rewritten(dest: Path, drop_tar: str = None, drop_member: tuple = None) -> Path:
    """A copy of the sample's tars without one tar, or with one member of a tar left out."""
    dest.mkdir(parents=True)
    for tar_path in SA1B.glob("sa_*.tar"):
        if tar_path.stem == drop_tar:
            continue
        if drop_member and tar_path.stem == drop_member[0]:
            with tarfile.open(tar_path) as source, tarfile.open(dest / tar_path.name, "w") as out:
                for member in source.getmembers():
                    if member.name != drop_member[1]:
                        out.addfile(member, io.BytesIO(source.extractfile(member).read()))
        else:
            shutil.copy(tar_path, dest)
    return dest


def first_failure(row: dict, missing_tar: str, missing_member: str):
    for path in row.get("image_paths") or [row["image_path"]]:
        if path.startswith(missing_tar + "/"):
            return MISSING_TAR
        if path == missing_member:
            return MISSING_IMAGE
    return None


@pytest.mark.parametrize("config", SA1B_CONFIGS)
def test_missing_tars_and_members_are_counted_skips(reference, embed, config, tmp_path):
    source = rewritten(tmp_path / "partial", drop_tar="sa_000001", drop_member=("sa_000002", "sa_22733.jpg"))
    rows = load_dataset(str(reference), config, split="train", streaming=True)
    transform = AttachImages(str(source), on_bad_record="skip", index_dir=str(tmp_path / "index"))
    joined = plain(rows.map(transform, batched=True, batch_size=4, remove_columns=list(rows.features),
                            features=output_features(rows.features)))
    wanted = embed_rows(embed, config)
    reasons = Counter(first_failure(row, "sa_000001", "sa_000002/sa_22733.jpg") for row in wanted)
    assert joined == [row for row in wanted if first_failure(row, "sa_000001", "sa_000002/sa_22733.jpg") is None]
    ledger = transform.ledger
    assert dict(ledger.skipped) == {reason: count for reason, count in reasons.items() if reason}
    assert ledger.records_read == len(wanted) == ledger.examples_written + ledger.total_skipped
    assert ledger.total_skipped > 0


@pytest.mark.parametrize(
    "drop, message",
    [
        ({"drop_tar": "sa_000001"}, r"missing-tar: tar sa_000001 \(for member sa_\d+\.jpg\) is not under"),
        ({"drop_member": ("sa_000002", "sa_22733.jpg")}, r"missing-image: member sa_22733\.jpg is not in tar sa_000002"),
    ],
    ids=["tar", "member"],
)
def test_missing_tars_and_members_raise_naming_them(reference, drop, message, tmp_path):
    source = rewritten(tmp_path / "partial", **drop)
    with pytest.raises(BadRecordError, match=message):
        plain(attached(reference, "sa1b-en-multi", tmp_path, source=source))


def test_the_member_index_is_cached_and_rebuilt_when_the_tar_changes(reference, tmp_path):
    source = rewritten(tmp_path / "tars")
    index = tmp_path / "index"
    plain(attached(reference, "sa1b-zh-single", tmp_path, source=source))
    cached = {path.parent.name: path for path in index.glob("*/index.json")}
    assert sorted(name.rsplit("-", 1)[0] for name in cached) == ["sa_000000", "sa_000001", "sa_000002"]
    # A later join reads the cached index, not the tar's headers: an index edited to lose a member loses it.
    entry = cached[next(name for name in cached if name.startswith("sa_000000"))]
    stored = json.loads(entry.read_text())
    lost = "sa_1.jpg"  # the image of the config's first row
    stored["members"] = [entry for entry in stored["members"] if entry[0] != lost]
    entry.write_text(json.dumps(stored))
    with pytest.raises(BadRecordError, match=f"member {lost} is not in tar sa_000000"):
        plain(attached(reference, "sa1b-zh-single", tmp_path, source=source))
    # The tar rewritten (new size and modification time): its key changes and a new index is built.
    (source / "sa_000000.tar").write_bytes((SA1B / "sa_000000.tar").read_bytes() + b"\0" * 10240)
    plain(attached(reference, "sa1b-zh-single", tmp_path, source=source))
    assert len(list(index.glob("sa_000000-*/index.json"))) == 2


def test_the_transform_pickles_without_its_open_files(reference, tmp_path):
    transform = AttachImages(str(SA1B), index_dir=str(tmp_path / "index"), max_open_files=1)
    rows = load_dataset(str(reference), "sa1b-en-multi", split="train")
    batch = rows[:]
    first = transform(batch)
    assert transform.source.open_files == 1, "at most max_open_files tars stay open"
    copy = pickle.loads(pickle.dumps(transform))
    assert copy.source.open_files == 0
    assert copy(batch) == first
    with pytest.raises(TypeError, match="batched"):
        transform(rows[0])


def test_embed_rows_are_refused_with_a_clear_message(embed, tmp_path):
    rows = load_dataset(str(embed), "sa1b-en-single", split="train", streaming=True)
    with pytest.raises(ValueError, match="image_ref"):
        attach_images(rows, str(SA1B), index_dir=str(tmp_path))


# --------------------------------------------------------------------------
# Distributed and DataLoader workers
# --------------------------------------------------------------------------


def test_join_under_split_dataset_by_node(reference, embed, tmp_path):
    config = "sa1b-en-single"
    stream = load_dataset(str(reference), config, split="train", streaming=True)
    ranks = [
        plain(attach_images(split_dataset_by_node(stream, rank=rank, world_size=2), str(SA1B),
                            index_dir=str(tmp_path / "index")))
        for rank in range(2)
    ]
    assert all(ranks)
    ids = [row["id"] for rows in ranks for row in rows]
    assert len(ids) == len(set(ids))
    by_id = lambda row: int(row["id"])  # noqa: E731
    assert sorted(ranks[0] + ranks[1], key=by_id) == sorted(embed_rows(embed, config), key=by_id)


def test_join_in_two_dataloader_workers(reference, embed, tmp_path):
    torch = pytest.importorskip("torch")
    config = "sa1b-en-single"
    joined = attached(reference, config, tmp_path).decode(False)
    loader = torch.utils.data.DataLoader(joined, num_workers=2, batch_size=4, collate_fn=list)
    rows = [row for batch in loader for row in batch]
    by_id = lambda row: int(row["id"])  # noqa: E731
    assert sorted(rows, key=by_id) == sorted(embed_rows(embed, config), key=by_id)


# --------------------------------------------------------------------------
# Publishing: no redistribution flag, and the join through the local Hub
# --------------------------------------------------------------------------

LOAD_AND_ATTACH = r"""
import hashlib, json
import datasets
from svitpipe.sa1b import attach_images
datasets.disable_progress_bars()
stream = datasets.load_dataset("acme/captions", "sa1b-en-multi", split="train", streaming=True)
rows = list(attach_images(stream, {source!r}, index_dir={index!r}).decode(False))
print(json.dumps({{
    "configs": sorted(datasets.get_dataset_config_names("acme/captions")),
    "rows": [[row["id"], [hashlib.sha256(image["bytes"]).hexdigest() for image in row["images"]], row["widths"],
              row["upstream_extra"]] for row in rows],
}}))
"""


def test_reference_configs_are_pushed_without_the_redistribution_flag(embed, tmp_path, monkeypatch):
    import hashlib

    import huggingface_hub

    client = GitHubClient(tmp_path / "remote")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *args, **kwargs: client)
    out = tmp_path / "captions"
    code = upload.main(["--repo-id", "acme/captions", "--local-dir", str(out), "--sa1b-images", "reference",
                        "--configs", *SA1B_CONFIGS, "--sa1b-captions-source", str(CAPTIONS)])
    assert code == 0
    pushed = client.files("acme/captions")
    assert sorted({path.split("/")[1] for path in pushed if path.startswith("data/")}) == sorted(SA1B_CONFIGS)
    with serve_git_repos({"acme/captions": client.git_dir("acme/captions")}, tmp_path / "hub") as endpoint:
        code = LOAD_AND_ATTACH.format(source=str(SA1B), index=str(tmp_path / "index"))
        out = json.loads(run_with_hub(code, endpoint, cwd=REPO_ROOT, timeout=240).strip().splitlines()[-1])
    assert out["configs"] == sorted(SA1B_CONFIGS)
    wanted = [[row["id"], [hashlib.sha256(image["bytes"]).hexdigest() for image in row["images"]], row["widths"],
               row["upstream_extra"]] for row in embed_rows(embed, "sa1b-en-multi")]
    assert sorted(out["rows"]) == sorted(wanted)


def test_embedding_sa1b_images_still_needs_the_flag(tmp_path, capsys):
    out = tmp_path / "never-built"
    code = upload.main(["--repo-id", "acme/x", "--local-dir", str(out), "--sa1b-images", "embed",
                        "--configs", "sa1b-en-single", "--sa1b-captions-source", str(CAPTIONS),
                        "--sa1b-images-source", str(SA1B)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--allow-sa1b-redistribution" in err and "--sa1b-images reference" in err
    assert not out.exists()
