"""The bundled sample is reproducible and has the structure it promises.

Run with::

    python -m pytest tests/test_sample.py -q
"""

from __future__ import annotations

import io
import json
import runpy
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from svitpipe.sample import SAMPLE_DIR
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    draw_jpeg,
    write_sa1b_captions_source,
    write_sa1b_images_source,
    write_svit_source,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "make_sample.py"
SAMPLE = SAMPLE_DIR
SVIT = SAMPLE / "svit"
CAPTIONS = SAMPLE / "internvl-sa1b-caption"
SA1B = SAMPLE / "sa1b"

SVIT_STEMS = ("conversation", "complex_reasoning", "detail_description", "referring_qa")
IMAGE_ZIPS = {"VG_100K": "images.zip", "VG_100K_2": "images2.zip"}


def tree(root: Path) -> dict[str, bytes]:
    """The sample's files under ``root``, without the Python module that makes the folder a package."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    }


def svit_records(stem: str) -> list[dict]:
    with zipfile.ZipFile(SVIT / "data" / f"{stem}.zip") as archive:
        assert archive.namelist() == [f"{stem}.json"]
        return json.loads(archive.read(f"{stem}.json").decode("utf-8"))


def zip_image_names(folder: str) -> list[str]:
    with zipfile.ZipFile(SVIT / "raw" / IMAGE_ZIPS[folder]) as archive:
        return archive.namelist()


def tar_members(stem: str) -> list[str]:
    with tarfile.open(SA1B / f"{stem}.tar") as archive:
        return archive.getnames()


def caption_lines(config: str) -> list[dict]:
    text = (CAPTIONS / SA1B_CAPTION_FILES[config]).read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def line_images(line: dict) -> list[str]:
    return [line["image"]] if isinstance(line["image"], str) else line["image"]


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT), run_name="make_sample")


# --------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------


def test_regenerated_sample_is_byte_identical(tmp_path, script):
    assert SAMPLE.is_dir(), "run python -m scripts.make_sample to create svitpipe/sample/"
    script["write_sample"](tmp_path)
    committed, fresh = tree(SAMPLE), tree(tmp_path)
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in committed if committed[name] != fresh[name]]
    assert changed == [], f"svitpipe/sample/ is stale, rerun python -m scripts.make_sample: {changed}"


def test_script_cli_writes_into_out(tmp_path, script):
    out = tmp_path / "s"
    (out / "svit").mkdir(parents=True)
    (out / "svit" / "stale.txt").write_text("left over")
    (out / "keep.txt").write_text("not ours")
    assert script["main"](["--out", str(out)]) == 0
    assert not (out / "svit" / "stale.txt").exists()
    assert (out / "keep.txt").read_text() == "not ours"
    assert (out / "README.md").is_file()


# --------------------------------------------------------------------------
# SVIT structure
# --------------------------------------------------------------------------


def test_svit_images_live_in_exactly_one_folder():
    names = {folder: zip_image_names(folder) for folder in IMAGE_ZIPS}
    ids = {}
    for folder, members in names.items():
        for member in members:
            prefix, _, file_name = member.partition("/")
            assert prefix == folder and file_name.endswith(".jpg")
            ids.setdefault(int(file_name[:-4]), []).append(folder)
    assert all(len(folders) == 1 for folders in ids.values())

    for stem in SVIT_STEMS:
        records = svit_records(stem)
        used_folders = set()
        for record in records:
            assert {"image_id", "conversations"} <= set(record)
            image_id = int(record["image_id"])
            assert len(ids.get(image_id, [])) == 1, (stem, image_id)
            used_folders.update(ids[image_id])
        assert used_folders == set(IMAGE_ZIPS), f"{stem} should use both folders"


def test_svit_images_decode_with_varied_shapes():
    sizes = []
    for folder, zip_name in IMAGE_ZIPS.items():
        with zipfile.ZipFile(SVIT / "raw" / zip_name) as archive:
            for info in archive.infolist():
                assert info.compress_type == zipfile.ZIP_STORED
                with Image.open(io.BytesIO(archive.read(info))) as image:
                    assert image.format == "JPEG"
                    sizes.append(image.size)
    assert max(max(size) for size in sizes) <= 240
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)
    assert any(w == h for w, h in sizes)


def test_svit_subset_shapes(script):
    for stem in SVIT_STEMS:
        for record in svit_records(stem):
            for conversation in record["conversations"]:
                roles = [turn["from"] for turn in conversation["content"]]
                assert roles and roles == ["user", "gpt"] * (len(roles) // 2)

    convs = [c for r in svit_records("conversation") for c in r["conversations"]]
    with_topic = [c for c in convs if "topic" in c]
    assert 0 < len(with_topic) < len(convs)

    detail = svit_records("detail_description")
    assert all(len(r["conversations"]) == 1 for r in detail)
    assert all(len(r["conversations"][0]["content"]) == 2 for r in detail)
    answers = [r["conversations"][0]["content"][1]["value"] for r in detail]
    assert sum("message is empty" in answer for answer in answers) == 1


def test_referring_qa_hard_cases(script):
    referring_boxes = script["referring_boxes"]
    turns = [
        turn
        for record in svit_records("referring_qa")
        for conversation in record["conversations"]
        if conversation != script["REFERRING_ODD_CONVERSATION"]  # the odd references: see test_upstream_oddities
        for turn in conversation["content"]
    ]
    texts = [turn["value"] for turn in turns]
    joined = "\n".join(texts)
    for role in ("user", "gpt"):
        assert any("<st>" in t["value"] for t in turns if t["from"] == role)
    assert any("<st>" not in text for text in texts)
    assert "<ed>[" in joined  # no space before the box
    assert "[0.1,0.2 , 0.3,  0.4]" in joined  # irregular spacing
    assert "reads [OPEN]" in joined  # brackets that are not a box
    refs = [ref for text in texts for ref in referring_boxes(text)]
    assert sum(text.count("<st>") for text in texts) == len(refs)
    assert any(len(boxes) > 1 for _, boxes in refs)
    assert any("," in phrase for phrase, _ in refs)
    assert any(box == (0, 0.25, 1, 0.9) for _, boxes in refs for box in boxes)
    for _, boxes in refs:
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1


# --------------------------------------------------------------------------
# InternVL-SA-1B-Caption / SA-1B structure
# --------------------------------------------------------------------------


def test_sa1b_tars_pair_each_image_with_its_annotation():
    for tar_path in sorted(SA1B.glob("*.tar")):
        with tarfile.open(tar_path) as archive:
            members = archive.getmembers()
            names = [m.name for m in members]
            assert names[0::2] == [n[:-5] + ".jpg" for n in names[1::2]]
            numbers = [int(n[3:-4]) for n in names[0::2]]
            assert numbers != sorted(numbers), f"{tar_path.name} is in numeric order"
            for member in members:
                assert member.mtime == 0 and member.uid == member.gid == 0
                data = archive.extractfile(member).read()
                if member.name.endswith(".json"):
                    header = json.loads(data)["image"]
                    assert header["file_name"] == member.name[:-5] + ".jpg"
                else:
                    with Image.open(io.BytesIO(data)) as image:
                        assert image.format == "JPEG"


def test_every_captioned_image_exists_in_its_tar():
    tars = {p.stem: set(tar_members(p.stem)) for p in SA1B.glob("*.tar")}
    assert sorted(tars) == ["sa_000000", "sa_000001", "sa_000002"]
    for config in SA1B_CAPTION_FILES:
        for line in caption_lines(config):
            assert "id" not in line
            images = line_images(line)
            human, gpt = line["conversations"][:2]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"].count("<image>") == len(images)
            for path in images:
                stem, _, name = path.partition("/")
                assert name in tars[stem], (config, path)


def test_en_single_covers_every_image_out_of_tar_order():
    tar_order = [
        f"{p.stem}/{name}"
        for p in sorted(SA1B.glob("*.tar"))
        for name in tar_members(p.stem)
        if name.endswith(".jpg")
    ]
    lines = [line["image"] for line in caption_lines("sa1b-en-single")]
    assert set(lines) == set(tar_order)
    assert len(lines) == len(set(lines)) + 1  # one image captioned twice
    first_seen = list(dict.fromkeys(lines))
    assert first_seen != tar_order
    assert first_seen != sorted(tar_order)
    tars_in_line_order = [path.split("/")[0] for path in lines]
    assert tars_in_line_order != sorted(tars_in_line_order)  # tars interleave


def test_zh_files_hold_raw_utf8():
    for config in ("sa1b-zh-single", "sa1b-zh-multi"):
        raw = (CAPTIONS / SA1B_CAPTION_FILES[config]).read_bytes()
        assert any(byte > 127 for byte in raw)
        assert b"\\u" not in raw
        assert any(
            any(ord(ch) > 127 for ch in line["conversations"][1]["value"])
            for line in caption_lines(config)
        )


def test_multi_lines_span_tars():
    for config in ("sa1b-en-multi", "sa1b-zh-multi"):
        lines = caption_lines(config)
        assert all(isinstance(line["image"], list) and len(line["image"]) >= 2 for line in lines)
        spans = [len({p.split("/")[0] for p in line["image"]}) for line in lines]
        assert any(n > 1 for n in spans)
    en_spans = [
        len({p.split("/")[0] for p in line["image"]}) for line in caption_lines("sa1b-en-multi")
    ]
    assert sum(n > 1 for n in en_spans) >= 2 and 1 in en_spans


# --------------------------------------------------------------------------
# fake_upstream building blocks
# --------------------------------------------------------------------------


def test_draw_jpeg_is_deterministic():
    assert draw_jpeg(64, 48, seed=5, label="x") == draw_jpeg(64, 48, seed=5, label="x")
    assert draw_jpeg(64, 48, seed=5) != draw_jpeg(64, 48, seed=6)


def test_extracted_layouts_match_packed_ones(tmp_path):
    jpeg = draw_jpeg(32, 24, seed=1)
    annotations = {"conversation": [{"image_id": 1, "conversations": []}], "referring_qa": b"[{"}
    images = {"VG_100K": {"1.jpg": jpeg}, "VG_100K_2": {}}
    write_svit_source(tmp_path / "packed", annotations, images)
    write_svit_source(tmp_path / "flat", annotations, images, extracted=True)
    with zipfile.ZipFile(tmp_path / "packed" / "data" / "referring_qa.zip") as archive:
        assert archive.read("referring_qa.json") == b"[{"
    assert (tmp_path / "flat" / "data" / "referring_qa.json").read_bytes() == b"[{"
    with zipfile.ZipFile(tmp_path / "packed" / "raw" / "images2.zip") as archive:
        assert archive.namelist() == []
    assert (tmp_path / "flat" / "raw" / "VG_100K" / "1.jpg").read_bytes() == jpeg
    assert (tmp_path / "flat" / "raw" / "VG_100K_2").is_dir()

    members = [("sa_3.jpg", jpeg), ("sa_3.json", b"{}")]
    write_sa1b_images_source(tmp_path / "tars", {"sa_000000": members})
    write_sa1b_images_source(tmp_path / "dirs", {"sa_000000": members}, extracted=True)
    with tarfile.open(tmp_path / "tars" / "sa_000000.tar") as archive:
        assert [(m.name, archive.extractfile(m).read()) for m in archive] == members
    assert (tmp_path / "dirs" / "sa_000000" / "sa_3.json").read_bytes() == b"{}"

    write_sa1b_captions_source(tmp_path / "cap", {"a.jsonl": [{"t": "中"}, "{broken"]})
    assert (tmp_path / "cap" / "a.jsonl").read_bytes() == '{"t": "中"}\n{broken\n'.encode()


def test_writers_are_byte_deterministic(tmp_path):
    jpeg = draw_jpeg(16, 16, seed=2)
    for run in ("a", "b"):
        write_svit_source(tmp_path / run, {"conversation": []}, {"VG_100K": {"7.jpg": jpeg}})
        write_sa1b_images_source(tmp_path / run / "t", {"sa_000009": [("sa_9.jpg", jpeg)]})
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_upstream_oddities(script):
    """The sample carries one of each oddity the builder keeps (sample/README.md lists them)."""
    conversation = svit_records("conversation")
    assert conversation[0]["source"] == "vg-scene-graph"
    assert conversation[1]["conversations"][0]["content"][0]["lang"] == "en"
    ids = [record["image_id"] for record in conversation]
    assert len(ids) == len(set(ids)) + 1  # one image has a second record
    assert "topic" in svit_records("complex_reasoning")[0]["conversations"][0]
    assert any(isinstance(record["image_id"], str) for record in svit_records("detail_description"))
    odd = [record for record in svit_records("referring_qa") if record["image_id"] == script["REFERRING_ODD_IMAGE"]]
    assert odd[0]["conversations"][-1] == script["REFERRING_ODD_CONVERSATION"]
    text = " ".join(turn["value"] for turn in script["REFERRING_ODD_CONVERSATION"]["content"])
    assert "[0.1, 0.2, 0.3]" in text and "-0.05" in text and "[0.7, 0.9, 0.2, 0.95]" in text and "<ed>\n[" in text
    single = caption_lines("sa1b-en-single")
    assert (single[0]["width"], single[0]["height"]) == (1500, 1000) and single[1]["quality"] == "high"
    assert len(caption_lines("sa1b-en-multi")[0]["conversations"]) == 4
