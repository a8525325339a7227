"""Tests for svitpipe.training.view: one training view of every config, and mixtures of all eight.

The data is the sample build (``upload.py --sample``, shared with the publishing tests), read back with
``load_dataset`` as a stream or as a ``Dataset``. Expected rows are counted from the Parquet shards with pyarrow and
from the sample's upstream files, not through the code under test.
"""

from __future__ import annotations

import io
from collections import Counter

import datasets
import PIL.Image
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Features, Image, List, Value

from conftest import sample_svit_records
from publish_fixtures import ALL_CONFIGS, sample_build, shard_paths
from svitpipe.features import CONFIGS, features_for
from svitpipe.svit.referring_regions import scan_references
from svitpipe.training import mix, training_view
from svitpipe.training.boxes import render_referring_text
from svitpipe.training.view import BOX_FORMS, VIEW_FEATURES, view_batch
from tiny_vlm import IMAGE_TOKEN, IMAGE_TOKENS, offline, tiny_processor  # noqa: F401 (offline is a fixture)

EXPECTED_FEATURES = Features({
    "messages": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
    "images": List(Image()),
    "source": Value("string"),
    "id": Value("string"),
})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sample_build(tmp_path_factory)


@pytest.fixture(autouse=True)
def short_shutdown_sleep(monkeypatch):
    """Interleaved Parquet streams sleep ``SLEEP_TIME_ON_THREADS_SHUTDOWN`` (5 s) whenever an iterator ends
    (apache/arrow#45214, see test_training_recipe.py); 0.1 s is enough here."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.1)


def stream(folder, config):
    return datasets.load_dataset(str(folder), config, split="train", streaming=True)


def streams(folder, configs=ALL_CONFIGS):
    return {config: stream(folder, config) for config in configs}


def expected_ids(folder, config, per="conversation") -> list[str]:
    """The view's ids of ``config``, from its shards' ``id`` and ``conversations`` columns read with pyarrow."""
    ids = []
    for path in shard_paths(folder, config):
        for row in pq.read_table(path, columns=["id", "conversations"]).to_pylist():
            if CONFIGS[config].family != "svit":
                ids.append(row["id"])
                continue
            for c, conversation in enumerate(row["conversations"]):
                if per == "conversation":
                    ids.append(f"{row['id']}-c{c}")
                else:
                    ids += [f"{row['id']}-c{c}-q{q}" for q in range(len(conversation["content"]) // 2)]
    return ids


def stored_images(folder, config) -> dict[str, list[bytes]]:
    """``row id -> [image bytes]`` as stored in the shards."""
    column = "images" if CONFIGS[config].multi_image else "image"
    table = pq.read_table(shard_paths(folder, config), columns=["id", column])
    return {row["id"]: [image["bytes"] for image in (row[column] if column == "images" else [row[column]])]
            for row in table.to_pylist()}


def pixels(data: bytes):
    with PIL.Image.open(io.BytesIO(data)) as image:
        return image.size, image.tobytes()


def source_id(view_id: str, config: str) -> str:
    return view_id.split("-c")[0] if CONFIGS[config].family == "svit" else view_id


def test_view_features_are_the_documented_ones():
    assert VIEW_FEATURES == EXPECTED_FEATURES


def test_piece_counts_match_the_sample_readme(folder):
    # svitpipe/sample/README.md: conversations and QA pairs per SVIT file
    table = {"conversation": (23, 49), "reasoning": (8, 21), "description": (10, 10), "referring": (9, 30)}
    assert {name: (len(expected_ids(folder, name)), len(expected_ids(folder, name, "qa"))) for name in table} == table


# --------------------------------------------------------------------------
# One config at a time
# --------------------------------------------------------------------------


@pytest.mark.parametrize("per", ["conversation", "qa"])
@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_view_of_every_config_streamed(folder, config, per):
    view = training_view(stream(folder, config), config, per=per)
    assert isinstance(view, datasets.IterableDataset)
    assert view.features == EXPECTED_FEATURES
    rows = list(view)
    assert sorted(row["id"] for row in rows) == sorted(expected_ids(folder, config, per))
    images = stored_images(folder, config)
    for row in rows:
        assert set(row) == set(EXPECTED_FEATURES) and row["source"] == config
        assert all(isinstance(image, PIL.Image.Image) for image in row["images"])
        originals = images[source_id(row["id"], config)]
        assert [(image.size, image.tobytes()) for image in row["images"]] == [pixels(data) for data in originals]
        parts = [part for message in row["messages"] for part in message["content"]]
        assert sum(part["type"] == "image" for part in parts) == len(row["images"]) >= 1
        assert all(part["type"] in ("image", "text") for part in parts)
        assert {message["role"] for message in row["messages"]} == {"user", "assistant"}
        if per == "qa" and CONFIGS[config].family == "svit":
            assert [message["role"] for message in row["messages"]] == ["user", "assistant"]
    # the bytes themselves, undecoded
    undecoded = list(view.decode(False))
    assert [[image["bytes"] for image in row["images"]] for row in undecoded] == [
        images[source_id(row["id"], config)] for row in undecoded]


@pytest.mark.parametrize("config", ["referring", "sa1b-en-multi"])
def test_view_of_a_dataset(folder, config):
    dataset = datasets.load_dataset(str(folder), config, split="train")
    view = training_view(dataset, config, per="qa")
    assert isinstance(view, datasets.Dataset) and view.features == EXPECTED_FEATURES
    assert sorted(view["id"]) == sorted(expected_ids(folder, config, "qa"))
    streamed = {row["id"]: row for row in training_view(stream(folder, config), config, per="qa")}
    for row in view:
        assert all(isinstance(image, PIL.Image.Image) for image in row["images"])
        assert row["messages"] == streamed[row["id"]]["messages"]
        assert [image.tobytes() for image in row["images"]] == [
            image.tobytes() for image in streamed[row["id"]]["images"]]


def _referring_texts(folder, box_form, **options):
    view = training_view(stream(folder, "referring"), "referring", box_form=box_form, **options)
    return {row["id"]: [part["text"] for m in row["messages"] for part in m["content"] if part["type"] == "text"]
            for row in view}


def test_referring_as_written_is_the_upstream_text(folder):
    """Every turn's text byte for byte, checked against the sample's upstream JSON."""
    upstream = Counter(
        turn["value"] for record in sample_svit_records("referring") for c in record["conversations"]
        for turn in c["content"]
    )
    texts = _referring_texts(folder, "as-written")
    assert Counter(text for turns in texts.values() for text in turns) == upstream


@pytest.mark.parametrize("box_form", [form for form in BOX_FORMS if form != "as-written"])
def test_referring_box_forms(folder, box_form):
    rows = {row["id"]: row for row in pq.read_table(shard_paths(folder, "referring")).to_pylist()}
    texts = _referring_texts(folder, box_form)
    form = BOX_FORMS[box_form]
    rendered_any = False
    for view_id, turns in texts.items():
        row = rows[source_id(view_id, "referring")]
        conversation = row["conversations"][int(view_id.split("-c")[1])]
        expected = []
        for turn in conversation["content"]:
            # the regions read again from the upstream text, not the stored ones the view used
            regions, _ = scan_references(turn["value"])
            expected.append(render_referring_text(turn["value"], regions, box_form=form, width=row["width"],
                                                  height=row["height"]))
        assert turns == [text for text in expected if text]
        rendered_any |= any(text != turn["value"] for text, turn in zip(expected, conversation["content"]))
    assert rendered_any
    joined = " ".join(text for turns in texts.values() for text in turns)
    if box_form == "internvl":
        assert "<ref>" in joined and "</box>" in joined and "<st>the sign<ed>" not in joined
    else:
        assert "<ref>" not in joined


def test_internvl_form_reads_like_internvl():
    def turn(role, value):
        regions, issues = scan_references(value)
        assert not issues
        return {"from": role, "value": value, "reference_issues": [], "regions": [
            {"phrase": r.phrase, "boxes": [list(box) for box in r.boxes], "start": r.start, "end": r.end}
            for r in regions]}

    batch = {
        "id": ["5"], "image_id": [5], "image": [{"bytes": b"x", "path": "VG_100K/5.jpg"}], "width": [200],
        "height": [100], "upstream_extra": [None],
        "conversations": [[{"content": [
            turn("user", "Where is <st>the kite<ed> [0.1, 0.2, 0.35, 0.4]?"),
            turn("gpt", "Above <st>two people<ed> [0.6, 0.3, 0.7, 0.9], [0.72, 0.31, 0.8, 0.95]."),
        ]}]],
    }
    out = view_batch(batch, config="referring", box_form="internvl")
    assert out["id"] == ["5-c0"] and out["source"] == ["referring"]
    assert out["images"] == [[{"bytes": b"x", "path": "VG_100K/5.jpg"}]]
    assert out["messages"] == [[
        {"role": "user", "content": [
            {"type": "image", "text": None},
            {"type": "text", "text": "Where is <ref>the kite</ref><box>[[100, 200, 350, 400]]</box>?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": (
            "Above <ref>two people</ref><box>[[600, 300, 700, 900], [720, 310, 800, 950]]</box>.")}]},
    ]]
    pixels_out = view_batch(batch, config="referring", box_form="pixels", decimals=1)
    assert pixels_out["messages"][0][0]["content"][1]["text"] == "Where is <st>the kite<ed> [20.0, 20.0, 70.0, 40.0]?"


def test_reference_mode_sa1b_is_refused():
    features = Features({
        "id": Value("string"), "image_ref": {"tar": Value("string"), "member": Value("string")},
        "conversations": features_for("sa1b-en-single")["conversations"],
    })
    refs = datasets.Dataset.from_dict({"id": ["1"], "image_ref": [{"tar": "sa_000000.tar", "member": "sa_1.jpg"}],
                                       "conversations": [[]]}, features=features)
    for data in (refs, refs.to_iterable_dataset()):
        attach = r"svitpipe\.sa1b\.attach_images\(stream, sa1b_images_source\)"
        with pytest.raises(ValueError, match=r"reference mode.*" + attach):
            training_view(data, "sa1b-en-single")


@pytest.mark.parametrize("arguments,error", [
    ({"config": "svit"}, "unknown config"),
    ({"per": "turn"}, "per must be one of"),
    ({"box_form": "normalized"}, "box_form must be one of"),
])
def test_bad_options(folder, arguments, error):
    kwargs = {"config": "referring", **arguments}
    with pytest.raises(ValueError, match=error):
        training_view(stream(folder, "referring"), **kwargs)


def test_a_config_given_another_configs_data_is_refused(folder):
    with pytest.raises(ValueError, match=r"config 'sa1b-en-multi' needs the columns \['images'\]"):
        training_view(stream(folder, "sa1b-en-single"), "sa1b-en-multi")


# --------------------------------------------------------------------------
# Mixtures of all eight configs
# --------------------------------------------------------------------------


def all_expected(folder, per="conversation") -> Counter:
    return Counter((config, view_id) for config in ALL_CONFIGS for view_id in expected_ids(folder, config, per))


def test_configs_that_would_not_interleave_mix(folder):
    """Raw configs do not align (the reason for the view); their views do, streamed and as Datasets."""
    with pytest.raises(ValueError, match="can't be aligned"):
        datasets.interleave_datasets([stream(folder, "conversation"), stream(folder, "reasoning")])
    mixed = mix({"referring": stream(folder, "referring"), "sa1b-en-single": stream(folder, "sa1b-en-single")})
    assert [row["source"] for row in mixed.take(4)] == ["referring", "sa1b-en-single"] * 2
    as_datasets = {name: datasets.load_dataset(str(folder), name, split="train")
                   for name in ("conversation", "reasoning")}
    mixed = mix(as_datasets, stopping_strategy="all_exhausted_without_replacement")
    assert isinstance(mixed, datasets.Dataset) and mixed.features == EXPECTED_FEATURES
    assert Counter(mixed["source"]) == {"conversation": 23, "reasoning": 8}


@pytest.mark.parametrize("weights", [None, {config: index + 1 for index, config in enumerate(ALL_CONFIGS)}],
                         ids=["in-turn", "weighted"])
def test_mix_of_all_eight_through_a_two_worker_dataloader(folder, weights):
    """all_exhausted_without_replacement: every row of every config exactly once per epoch, in each of two epochs
    of shuffled streams, read by two DataLoader workers (each takes every other shard of every config)."""
    shuffled = {name: ds.shuffle(seed=7, buffer_size=4) for name, ds in streams(folder).items()}
    mixed = mix(shuffled, weights=weights, seed=3, stopping_strategy="all_exhausted_without_replacement")
    assert mixed.features == EXPECTED_FEATURES
    assert mixed.num_shards >= 2
    loader = torch.utils.data.DataLoader(mixed, num_workers=2, batch_size=4, collate_fn=list)
    expected = all_expected(folder)
    orders = []
    for epoch in range(2):
        mixed.set_epoch(epoch)
        rows = [row for batch in loader for row in batch]
        assert Counter((row["source"], row["id"]) for row in rows) == expected
        assert all(isinstance(image, PIL.Image.Image) for row in rows for image in row["images"])
        orders.append([(row["source"], row["id"]) for row in rows])
    assert orders[0] != orders[1]  # set_epoch reshuffles


def test_mix_strategies_what_datasets_does(folder):
    """What the other strategies do on streams, so the one chosen above is the one that gives each row once."""
    two = ("description", "sa1b-zh-multi")  # 10 rows and 3 rows
    first = list(mix(streams(folder, two)))  # stops when the short one ends: 7 description rows never seen
    assert Counter(row["source"] for row in first) == {"description": 3, "sa1b-zh-multi": 3}
    oversampled = Counter(
        (row["source"], row["id"]) for row in mix(streams(folder, two), stopping_strategy="all_exhausted"))
    description = {("description", view_id) for view_id in expected_ids(folder, "description")}
    assert {key for key in oversampled if key[0] == "description"} == description
    assert max(oversampled.values()) > 1  # the short one restarted: its rows repeat
    once = list(mix(streams(folder, two), stopping_strategy="all_exhausted_without_replacement"))
    assert Counter((row["source"], row["id"]) for row in once) == Counter(
        (config, view_id) for config in two for view_id in expected_ids(folder, config))


def test_mix_weights():
    with pytest.raises(ValueError, match="missing"):
        mix({"referring": None, "description": None}, weights={"referring": 1})
    with pytest.raises(ValueError, match="unknown"):
        mix({"referring": None}, weights={"referring": 1, "reasoning": 1})
    for bad in (-1, 0, True, "1"):
        with pytest.raises(ValueError, match="positive numbers"):
            mix({"referring": None}, weights={"referring": bad})
    with pytest.raises(ValueError, match="stopping_strategy"):
        mix({"referring": None}, stopping_strategy="longest")


def test_mix_weights_are_normalised_probabilities(folder):
    weights = {"conversation": 3, "sa1b-en-single": 1}
    mixed = mix(streams(folder, weights), weights=weights, seed=11,
                stopping_strategy="all_exhausted_without_replacement")
    views = [training_view(stream(folder, name), name) for name in weights]
    by_hand = datasets.interleave_datasets(views, probabilities=[0.75, 0.25], seed=11,
                                           stopping_strategy="all_exhausted_without_replacement")
    order = [(row["source"], row["id"]) for row in mixed]
    assert order == [(row["source"], row["id"]) for row in by_hand]
    assert Counter(order) == Counter((name, i) for name in weights for i in expected_ids(folder, name))
    assert [source for source, _ in order] != sorted(source for source, _ in order)  # drawn, not concatenated


# --------------------------------------------------------------------------
# A real processor's chat template
# --------------------------------------------------------------------------


@pytest.mark.parametrize("per", ["conversation", "qa"])
def test_apply_chat_template_one_placeholder_per_image(folder, offline, per):
    processor = tiny_processor()
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    seen = Counter()
    for row in mix(streams(folder), stopping_strategy="all_exhausted_without_replacement", per=per):
        text = processor.apply_chat_template(row["messages"], tokenize=False)
        assert text.count(IMAGE_TOKEN) == len(row["images"]) >= 1
        inputs = processor(text=[text], images=row["images"], return_tensors="pt")
        assert int((inputs["input_ids"] == image_token_id).sum()) == IMAGE_TOKENS * len(row["images"])
        assert inputs["pixel_values"].shape[0] == len(row["images"])
        seen[row["source"]] += 1
    assert set(seen) == set(ALL_CONFIGS)
    assert sum(seen.values()) == sum(all_expected(folder, per).values())


SA_IMAGES = [{"bytes": b"a", "path": "sa_000000/sa_1.jpg"}, {"bytes": b"b", "path": "sa_000000/sa_2.jpg"}]
SA1B_BATCHES = [
    ("single", "sa1b-en-single",
     {"id": ["3"], "image": [SA_IMAGES[0]], "image_path": ["sa_000000/sa_1.jpg"], "width": [10], "height": [20],
      "caption": ["A harbour."], "source_id": [None], "upstream_extra": [None],
      "conversations": [[{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A harbour."}]]},
     [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Describe."}]},
      {"role": "assistant", "content": [{"type": "text", "text": "A harbour."}]}], [SA_IMAGES[0]]),
    ("multi-text-first", "sa1b-zh-multi",
     {"id": ["4"], "images": [SA_IMAGES], "image_paths": [["sa_000000/sa_1.jpg", "sa_000000/sa_2.jpg"]],
      "widths": [[10, 10]], "heights": [[20, 20]], "caption": ["两者"], "source_id": ["x"], "upstream_extra": [None],
      "conversations": [[{"from": "human", "value": "图1: <image>\n图2: <image>\n比较。"}, {"from": "gpt", "value": "两者"}]]},
     [{"role": "user", "content": [{"type": "text", "text": "图1: "}, {"type": "image", "text": None},
                                   {"type": "text", "text": "\n图2: "}, {"type": "image", "text": None},
                                   {"type": "text", "text": "\n比较。"}]},
      {"role": "assistant", "content": [{"type": "text", "text": "两者"}]}], SA_IMAGES),
]


@pytest.mark.parametrize("config,batch,messages,images", [c[1:] for c in SA1B_BATCHES], ids=[c[0] for c in SA1B_BATCHES])
def test_view_batch_sa1b(config, batch, messages, images):
    for options in ({}, {"per": "qa", "box_form": "internvl"}):  # nothing to flatten or render in SA-1B rows
        assert view_batch(batch, config=config, **options) == {
            "messages": [messages], "images": [images], "source": [config], "id": [batch["id"][0]]}
