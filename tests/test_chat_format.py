"""Tests for svitpipe.training.chat_format: flattening SVIT rows, chat messages and LLaVA records, on hand-made and sample rows."""

import io

import datasets
import PIL.Image
import pytest
import torch
from datasets import Features, Image, Value

from conftest import ALL_CONFIGS, SVIT_CONFIGS, new_builder, prepare, sample_svit_records
from publish_fixtures import sample_build
from svitpipe.features import CONFIGS, svit_features
from svitpipe.training.chat_format import (
    chat_messages_features,
    chat_role,
    flatten_svit,
    flatten_svit_dataset,
    image_parts,
    qa_pairs,
    to_chat_messages,
    to_chat_messages_fn,
    to_llava_record,
)

IMG = {"bytes": b"\xff\xd8 one", "path": "VG_100K/7.jpg"}
IMG2 = {"bytes": b"\xff\xd8 two", "path": "sa_000001/sa_11202.jpg"}
SA_IMG = {"bytes": b"\xff\xd8 sa", "path": "sa_000000/sa_2.jpg"}


def user(text):
    return {"from": "user", "value": text}


def human(text):
    return {"from": "human", "value": text}


def gpt(text):
    return {"from": "gpt", "value": text}


def text(value):
    return {"type": "text", "text": value}


IMAGE = {"type": "image"}

# --------------------------------------------------------------------------
# Hand-made rows
# --------------------------------------------------------------------------

SVIT_ROW = {
    "id": "7", "image_id": 7, "image": IMG, "width": 200, "height": 150,
    "conversations": [{"content": [user("Q1?"), gpt("A1."), user("Q2?"), gpt("A2.")], "topic": "t"}],
}
REFERRING_ROW = {
    "id": "8", "image_id": 8, "image": IMG, "width": 200, "height": 150,
    "conversations": [{"content": [
        {"from": "user", "value": "Where is <st>it<ed> [0.1, 0.2, 0.3, 0.4]?",
         "regions": [{"phrase": "it", "boxes": [[0.1, 0.2, 0.3, 0.4]], "start": 9, "end": 39}]},
        {"from": "gpt", "value": "On the left.", "regions": []},
    ]}],
}
SA1B_SINGLE_ROW = {
    "id": "3", "image": SA_IMG, "image_path": "sa_000000/sa_2.jpg", "width": 150, "height": 100,
    "caption": "A harbour.", "conversations": [human("<image>\nDescribe the image."), gpt("A harbour.")],
    "source_id": None,
}
SA1B_MULTI_ROW = {
    "id": "1", "images": [SA_IMG, IMG2], "image_paths": ["sa_000000/sa_2.jpg", "sa_000001/sa_11202.jpg"],
    "widths": [150, 100], "heights": [100, 150], "caption": "Both coastal.",
    "conversations": [human("Image-1: <image>\nImage-2: <image>\nCompare them."), gpt("Both coastal.")],
    "source_id": "x1",
}

# (id, row, config, expected messages, expected images)
CHAT_CASES = [
    ("svit-image-first-in-first-user-turn", SVIT_ROW, "conversation", [
        {"role": "user", "content": [IMAGE, text("Q1?")]},
        {"role": "assistant", "content": [text("A1.")]},
        {"role": "user", "content": [text("Q2?")]},
        {"role": "assistant", "content": [text("A2.")]},
    ], [IMG]),
    ("svit-referring-text-kept-regions-dropped", REFERRING_ROW, "referring", [
        {"role": "user", "content": [IMAGE, text("Where is <st>it<ed> [0.1, 0.2, 0.3, 0.4]?")]},
        {"role": "assistant", "content": [text("On the left.")]},
    ], [IMG]),
    ("svit-only-first-conversation", {**SVIT_ROW, "conversations": [
        {"content": [user("First?"), gpt("Yes.")], "topic": None},
        {"content": [user("Second?"), gpt("No.")], "topic": None},
    ]}, "conversation", [
        {"role": "user", "content": [IMAGE, text("First?")]},
        {"role": "assistant", "content": [text("Yes.")]},
    ], [IMG]),
    ("svit-gpt-turn-first", {**SVIT_ROW, "conversations": [{"content": [gpt("Hello."), user("Q?")]}]},
     "reasoning", [
        {"role": "assistant", "content": [text("Hello.")]},
        {"role": "user", "content": [IMAGE, text("Q?")]},
    ], [IMG]),
    ("svit-empty-text-dropped", {**SVIT_ROW, "conversations": [{"content": [user(""), gpt("A.")]}]},
     "description", [
        {"role": "user", "content": [IMAGE]},
        {"role": "assistant", "content": [text("A.")]},
    ], [IMG]),
    ("sa1b-single-leading-newline-dropped", SA1B_SINGLE_ROW, "sa1b-en-single", [
        {"role": "user", "content": [IMAGE, text("Describe the image.")]},
        {"role": "assistant", "content": [text("A harbour.")]},
    ], [SA_IMG]),
    ("sa1b-zh-single", {**SA1B_SINGLE_ROW, "conversations": [human("<image>\n请描述。"), gpt("港口。")]},
     "sa1b-zh-single", [
        {"role": "user", "content": [IMAGE, text("请描述。")]},
        {"role": "assistant", "content": [text("港口。")]},
    ], [SA_IMG]),
    ("sa1b-multi-placeholders-in-place", SA1B_MULTI_ROW, "sa1b-en-multi", [
        {"role": "user", "content": [text("Image-1: "), IMAGE, text("\nImage-2: "), IMAGE, text("\nCompare them.")]},
        {"role": "assistant", "content": [text("Both coastal.")]},
    ], [SA_IMG, IMG2]),
    ("sa1b-assistant-text-verbatim", {**SA1B_SINGLE_ROW, "conversations": [
        human("Describe: <image>"), gpt("<image>\nkept as text")]}, "sa1b-en-single", [
        {"role": "user", "content": [text("Describe: "), IMAGE]},
        {"role": "assistant", "content": [text("<image>\nkept as text")]},
    ], [SA_IMG]),
]


@pytest.mark.parametrize("row,config,messages,images", [c[1:] for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES])
def test_to_chat_messages(row, config, messages, images):
    result = to_chat_messages(row, config)
    assert result == {"messages": messages, "images": images}
    assert all(a is b for a, b in zip(result["images"], images))  # passed through, not copied or decoded


@pytest.mark.parametrize("row,config,messages,images", [c[1:] for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES])
def test_to_chat_messages_fn(row, config, messages, images):
    assert to_chat_messages_fn(config)(row) == {"messages": messages, "images": images}


# (id, row, config, expected record)
LLAVA_CASES = [
    ("svit", SVIT_ROW, "conversation", {"id": "7", "image": "VG_100K/7.jpg", "conversations": [
        human("<image>\nQ1?"), gpt("A1."), human("Q2?"), gpt("A2.")]}),
    ("svit-referring", REFERRING_ROW, "referring", {"id": "8", "image": "VG_100K/7.jpg", "conversations": [
        human("<image>\nWhere is <st>it<ed> [0.1, 0.2, 0.3, 0.4]?"), gpt("On the left.")]}),
    ("svit-gpt-first", {**SVIT_ROW, "conversations": [{"content": [gpt("Hi."), user("Q?"), gpt("A.")]}]},
     "reasoning", {"id": "7", "image": "VG_100K/7.jpg", "conversations": [
         gpt("Hi."), human("<image>\nQ?"), gpt("A.")]}),
    ("sa1b-single", SA1B_SINGLE_ROW, "sa1b-en-single", {"id": "3", "image": "sa_000000/sa_2.jpg", "conversations": [
        human("<image>\nDescribe the image."), gpt("A harbour.")]}),
    ("sa1b-multi", SA1B_MULTI_ROW, "sa1b-zh-multi", {
        "id": "1", "image": ["sa_000000/sa_2.jpg", "sa_000001/sa_11202.jpg"],
        "conversations": [human("Image-1: <image>\nImage-2: <image>\nCompare them."), gpt("Both coastal.")]}),
    ("user-role-becomes-human", {**SA1B_SINGLE_ROW, "conversations": [user("<image>\nX"), gpt("Y")]},
     "sa1b-en-single", {"id": "3", "image": "sa_000000/sa_2.jpg", "conversations": [human("<image>\nX"), gpt("Y")]}),
]


@pytest.mark.parametrize("row,config,expected", [c[1:] for c in LLAVA_CASES], ids=[c[0] for c in LLAVA_CASES])
def test_to_llava_record(row, config, expected):
    assert to_llava_record(row, config) == expected


# (id, function, row, config, error)
ERROR_CASES = [
    ("chat-unknown-role", to_chat_messages, {**SVIT_ROW, "conversations": [{"content": [
        {"from": "system", "value": "x"}]}]}, "conversation", "row .7. turn 0: unknown role .system."),
    ("chat-svit-placeholder", to_chat_messages, {**SVIT_ROW, "conversations": [{"content": [
        user("<image> what?"), gpt("x")]}]}, "conversation", "contains '<image>'"),
    ("chat-svit-no-user-turn", to_chat_messages, {**SVIT_ROW, "conversations": [{"content": [gpt("x")]}]},
     "conversation", "no user turn"),
    ("chat-sa1b-too-few-placeholders", to_chat_messages, {**SA1B_MULTI_ROW, "conversations": [
        human("Image-1: <image>\nCompare."), gpt("x")]}, "sa1b-en-multi", "2 image\\(s\\) but 1"),
    ("chat-sa1b-no-placeholder", to_chat_messages, {**SA1B_SINGLE_ROW, "conversations": [
        human("Describe."), gpt("x")]}, "sa1b-en-single", "1 image\\(s\\) but 0"),
    ("chat-unknown-config", to_chat_messages, SVIT_ROW, "svit", "unknown config"),
    ("llava-svit-placeholder-later", to_llava_record, {**SVIT_ROW, "conversations": [{"content": [
        user("Q"), gpt("see <image>")]}]}, "conversation", "contains '<image>'"),
    ("llava-decoded-image", to_llava_record, {**SVIT_ROW, "image": object()}, "conversation", "no stored path"),
    ("llava-image-without-path", to_llava_record, {**SVIT_ROW, "image": {"bytes": b"x", "path": None}},
     "conversation", "no stored path"),
    ("llava-unknown-role", to_llava_record, {**SA1B_SINGLE_ROW, "conversations": [
        {"from": "bot", "value": "x"}]}, "sa1b-en-single", "row .3. turn 0: unknown role .bot."),
]


@pytest.mark.parametrize("function,row,config,error", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_errors(function, row, config, error):
    with pytest.raises(ValueError, match=error):
        function(row, config)


@pytest.mark.parametrize("role,expected", [("user", "user"), ("human", "user"), ("gpt", "assistant")])
def test_chat_role(role, expected):
    assert chat_role(role) == expected


@pytest.mark.parametrize("role", ["assistant", "GPT", "system", "", None])
def test_chat_role_rejects_others(role):
    with pytest.raises(ValueError, match="unknown role"):
        chat_role(role)


@pytest.mark.parametrize("value,parts", [
    ("<image>\nDescribe this.", [IMAGE, text("Describe this.")]),
    ("Image-1: <image>\nImage-2: <image>\nWhat?", [text("Image-1: "), IMAGE, text("\nImage-2: "), IMAGE, text("\nWhat?")]),
    ("Image-1: <image>\nImage-2: <image>\n", [text("Image-1: "), IMAGE, text("\nImage-2: "), IMAGE, text("\n")]),
    ("Describe.<image>", [text("Describe."), IMAGE]),
    ("<image>", [IMAGE]),
    ("<image>Describe.", [IMAGE, text("Describe.")]),
    ("<image>\n\nTwo newlines.", [IMAGE, text("\nTwo newlines.")]),   # only the single "\n" is LLaVA's
    ("<image><image>\nx", [IMAGE, IMAGE, text("\nx")]),
    ("A <image>\nB", [text("A "), IMAGE, text("\nB")]),               # "\n" kept: the turn does not open with it
    ("\n<image>\nB", [text("\n"), IMAGE, text("\nB")]),
    ("No placeholder.", [text("No placeholder.")]),
    ("", []),
])
def test_image_parts(value, parts):
    assert image_parts(value) == parts


# --------------------------------------------------------------------------
# Flattening (pure function)
# --------------------------------------------------------------------------

CONV_A0 = {"content": [user("a0q0"), gpt("a0a0"), user("a0q1"), gpt("a0a1")], "topic": "ta"}
CONV_A1 = {"content": [user("a1q0"), gpt("a1a0")], "topic": None}
CONV_B0 = {"content": [user("b0q0"), gpt("b0a0"), human("b0q1"), gpt("b0a1"), user("b0q2"), gpt("b0a2")],
           "topic": "tb"}
BATCH = {
    "id": ["A", "B"], "image_id": [1, 2], "image": [IMG, IMG2], "width": [10, 20], "height": [30, 40],
    "conversations": [[CONV_A0, CONV_A1], [CONV_B0]], "extra": ["ea", "eb"],
}


def test_flatten_per_conversation():
    flat = flatten_svit(BATCH, per="conversation")
    assert flat == {
        "id": ["A-c0", "A-c1", "B-c0"], "image_id": [1, 1, 2], "image": [IMG, IMG, IMG2], "width": [10, 10, 20],
        "height": [30, 30, 40], "conversations": [[CONV_A0], [CONV_A1], [CONV_B0]], "extra": ["ea", "ea", "eb"],
    }
    assert flat["image"][0] is IMG  # passed through


def test_flatten_per_qa():
    flat = flatten_svit(BATCH, per="qa")
    assert flat["id"] == ["A-c0-q0", "A-c0-q1", "A-c1-q0", "B-c0-q0", "B-c0-q1", "B-c0-q2"]
    assert flat["conversations"] == [
        [{"content": [user("a0q0"), gpt("a0a0")], "topic": "ta"}],
        [{"content": [user("a0q1"), gpt("a0a1")], "topic": "ta"}],
        [{"content": [user("a1q0"), gpt("a1a0")], "topic": None}],
        [{"content": [user("b0q0"), gpt("b0a0")], "topic": "tb"}],
        [{"content": [human("b0q1"), gpt("b0a1")], "topic": "tb"}],
        [{"content": [user("b0q2"), gpt("b0a2")], "topic": "tb"}],
    ]
    assert flat["image_id"] == [1, 1, 1, 2, 2, 2]
    assert flat["extra"] == ["ea", "ea", "ea", "eb", "eb", "eb"]


def test_flatten_keeps_regions():
    batch = {name: [value] for name, value in REFERRING_ROW.items()}
    flat = flatten_svit(batch, per="qa")
    assert flat["id"] == ["8-c0-q0"]
    assert flat["conversations"][0][0]["content"] == REFERRING_ROW["conversations"][0]["content"]


@pytest.mark.parametrize("content,error", [
    ([gpt("a"), user("q")], "turn 0: expected a user turn"),
    ([user("q"), user("q2"), gpt("a")], "turn 1: expected a gpt turn"),
    ([user("q"), gpt("a"), user("q2")], "turn 2: user turn has no gpt answer"),
    ([user("q"), gpt("a"), gpt("a2")], "turn 2: expected a user turn"),
    ([user("q"), {"from": "narrator", "value": "x"}], "unknown role"),
])
def test_qa_pairs_need_alternating_turns(content, error):
    with pytest.raises(ValueError, match=error):
        qa_pairs(content)
    batch = {"id": ["Z"], "conversations": [[{"content": content}]]}
    with pytest.raises(ValueError, match="row 'Z' conversation 0"):
        flatten_svit(batch, per="qa")


def test_flatten_rejects_unknown_unit():
    with pytest.raises(ValueError, match="per must be one of"):
        flatten_svit(BATCH, per="turn")


def test_flatten_empty_batch():
    assert flatten_svit({name: [] for name in BATCH}, per="qa") == {name: [] for name in BATCH}


# --------------------------------------------------------------------------
# Flattening datasets (Dataset and IterableDataset)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builders(tmp_path_factory):
    cache = {}

    def get(config_name):
        if config_name not in cache:
            cache[config_name] = new_builder(tmp_path_factory.mktemp("chat-cache"), config_name)
        return cache[config_name]

    return get


@pytest.fixture(scope="module")
def stream_rows(builders):
    cache = {}

    def get(config_name):
        if config_name not in cache:
            cache[config_name] = list(builders(config_name).as_streaming_dataset(split="train").decode(False))
        return cache[config_name]

    return get


def expected_pieces(config_name, per):
    """Counted from the sample's upstream JSON, not from the builder."""
    records = sample_svit_records(config_name)
    if per == "conversation":
        return sum(len(record["conversations"]) for record in records)
    return sum(len(c["content"]) // 2 for record in records for c in record["conversations"])


def test_expected_piece_counts_match_the_sample_readme():
    table = {"conversation": (23, 49), "reasoning": (8, 21), "description": (10, 10), "referring": (9, 30)}
    assert {name: (expected_pieces(name, "conversation"), expected_pieces(name, "qa")) for name in table} == table


def _check_flattened(rows, originals, config_name, per):
    by_image = {row["image_id"]: row for row in originals}
    assert len(rows) == expected_pieces(config_name, per)
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        original = by_image[row["image_id"]]
        assert row["image"] == original["image"]  # {"bytes", "path"}: the original bytes
        assert (row["width"], row["height"]) == (original["width"], original["height"])
        [piece] = row["conversations"]
        suffix = row["id"][len(original["id"]):]
        c = int(suffix.split("-")[1][1:])
        conversation = original["conversations"][c]
        if per == "conversation":
            assert suffix == f"-c{c}" and piece == conversation
        else:
            q = int(suffix.split("-")[2][1:])
            assert suffix == f"-c{c}-q{q}"
            assert piece == {**conversation, "content": conversation["content"][2 * q:2 * q + 2]}


@pytest.mark.parametrize("per", ["conversation", "qa"])
@pytest.mark.parametrize("config_name", SVIT_CONFIGS)
def test_flatten_iterable_dataset(builders, stream_rows, config_name, per):
    stream = builders(config_name).as_streaming_dataset(split="train")
    flat = flatten_svit_dataset(stream, per=per)
    assert isinstance(flat, datasets.IterableDataset)
    assert flat.features == stream.features == svit_features(config_name)
    _check_flattened(list(flat.decode(False)), stream_rows(config_name), config_name, per)


@pytest.mark.parametrize("per", ["conversation", "qa"])
@pytest.mark.parametrize("config_name", ["conversation", "referring"])
def test_flatten_dataset(builders, stream_rows, config_name, per):
    dataset = prepare(builders(config_name))
    flat = flatten_svit_dataset(dataset, per=per)
    assert isinstance(flat, datasets.Dataset)
    assert flat.features == dataset.features
    assert flat.features["image"] == Image()  # cast back: decodes again for the user
    rows = flat.with_format("arrow")[:].to_pylist()
    _check_flattened(rows, dataset.with_format("arrow")[:].to_pylist(), config_name, per)
    assert flat[0]["image"].size == (rows[0]["width"], rows[0]["height"])


def _undecodable_dataset(iterable: bool):
    """Rows whose image bytes are not an image: any decoding would fail."""
    features = Features({"id": Value("string"), "image": Image(),
                         "conversations": svit_features("conversation")["conversations"]})
    rows = {
        "id": ["1", "2"],
        "image": [{"bytes": b"not an image 1", "path": "VG_100K/1.jpg"},
                  {"bytes": b"not an image 2", "path": "VG_100K/2.jpg"}],
        "conversations": [[CONV_A0, CONV_A1], [CONV_B0]],
    }
    dataset = datasets.Dataset.from_dict(rows, features=features)
    return dataset.to_iterable_dataset() if iterable else dataset


@pytest.mark.parametrize("iterable", [False, True], ids=["Dataset", "IterableDataset"])
def test_flatten_never_decodes_images(iterable):
    flat = flatten_svit_dataset(_undecodable_dataset(iterable), per="qa")
    rows = list(flat.decode(False)) if iterable else flat.with_format("arrow")[:].to_pylist()
    assert [row["id"] for row in rows] == ["1-c0-q0", "1-c0-q1", "1-c1-q0", "2-c0-q0", "2-c0-q1", "2-c0-q2"]
    assert [row["image"]["bytes"] for row in rows] == [b"not an image 1"] * 3 + [b"not an image 2"] * 3


@pytest.mark.parametrize("iterable", [False, True], ids=["Dataset", "IterableDataset"])
def test_flatten_svit_maps_over_decode_false_columns(iterable):
    dataset = _undecodable_dataset(iterable).cast_column("image", Image(decode=False))
    flat = dataset.map(flatten_svit, batched=True, fn_kwargs={"per": "conversation"},
                       remove_columns=list(dataset.features), features=dataset.features)
    rows = list(flat)
    assert [row["id"] for row in rows] == ["1-c0", "1-c1", "2-c0"]
    assert [row["image"] for row in rows] == [{"bytes": b"not an image 1", "path": "VG_100K/1.jpg"}] * 2 + [
        {"bytes": b"not an image 2", "path": "VG_100K/2.jpg"}]


def test_flatten_dataset_needs_svit_features():
    with pytest.raises(ValueError, match="'image' and 'conversations'"):
        flatten_svit_dataset(datasets.Dataset.from_dict({"id": ["1"]}))


def test_chat_messages_map_keeps_image_bytes():
    dataset = flatten_svit_dataset(_undecodable_dataset(False), per="conversation")
    dataset = dataset.cast_column("image", Image(decode=False))
    chat = dataset.map(to_chat_messages_fn("conversation"), remove_columns=dataset.column_names,
                       features=chat_messages_features(decode=False))
    assert chat.features == chat_messages_features(decode=False)
    assert len(chat) == 3
    first = chat[0]
    assert first["images"] == [{"bytes": b"not an image 1", "path": "VG_100K/1.jpg"}]
    assert first["messages"][0] == {"role": "user", "content": [
        {"type": "image", "text": None}, {"type": "text", "text": "a0q0"}]}


# --------------------------------------------------------------------------
# Sample rows of every config
# --------------------------------------------------------------------------


def _images_of(row, config_name):
    if CONFIGS[config_name].multi_image:
        return row["images"]
    return [row["image"]]


def _paths_of(row, config_name):
    if CONFIGS[config_name].family == "svit":
        return row["image"]["path"]
    if CONFIGS[config_name].multi_image:
        return row["image_paths"]
    return row["image_path"]


def _turns_of(row, config_name):
    if CONFIGS[config_name].family == "svit":
        return row["conversations"][0]["content"]
    return row["conversations"]


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_sample_chat_messages(stream_rows, config_name):
    rows = stream_rows(config_name)
    assert rows
    for row in rows:
        result = to_chat_messages(row, config_name)
        images = _images_of(row, config_name)
        assert result["images"] == images and all(a is b for a, b in zip(result["images"], images))
        parts = [part for message in result["messages"] for part in message["content"]]
        assert sum(part == IMAGE for part in parts) == len(images) >= 1
        assert all(part == IMAGE or (part["type"] == "text" and part["text"]) for part in parts)
        turns = _turns_of(row, config_name)
        assert [m["role"] for m in result["messages"]] == [chat_role(t["from"]) for t in turns]
        for message, turn in zip(result["messages"], turns):
            rebuilt = "".join("<image>" if part == IMAGE else part["text"] for part in message["content"])
            if CONFIGS[config_name].family == "svit":
                assert rebuilt.removeprefix("<image>") == turn["value"]
            else:
                expected = turn["value"]
                if expected.startswith("<image>\n"):
                    expected = "<image>" + expected[len("<image>\n"):]
                assert rebuilt == expected
        if CONFIGS[config_name].family == "svit":
            assert result["messages"][0]["content"][0] == IMAGE


@pytest.mark.parametrize("config_name", ALL_CONFIGS)
def test_sample_llava_records(stream_rows, config_name):
    for row in stream_rows(config_name):
        record = to_llava_record(row, config_name)
        assert set(record) == {"id", "image", "conversations"}
        assert record["id"] == row["id"]
        assert record["image"] == _paths_of(row, config_name)
        turns = _turns_of(row, config_name)
        values = [turn["value"] for turn in record["conversations"]]
        placeholders = sum(value.count("<image>") for value in values)
        assert placeholders == len(_images_of(row, config_name))
        assert [turn["from"] for turn in record["conversations"]] == [
            {"user": "human", "assistant": "gpt"}[chat_role(t["from"])] for t in turns]
        if CONFIGS[config_name].family == "svit":
            first_human = next(i for i, t in enumerate(record["conversations"]) if t["from"] == "human")
            assert values[first_human] == "<image>\n" + turns[first_human]["value"]
            assert values[:first_human] + values[first_human + 1:] == [
                t["value"] for i, t in enumerate(turns) if i != first_human]
        else:
            assert values == [t["value"] for t in turns]


# --------------------------------------------------------------------------
# What flattened rows hold: decoded images, on streams too, and through a DataLoader
# --------------------------------------------------------------------------


def _pixels(data: bytes) -> tuple:
    with PIL.Image.open(io.BytesIO(data)) as image:
        return image.size, image.tobytes()


@pytest.mark.parametrize("per", ["conversation", "qa"])
@pytest.mark.parametrize("kind", ["Dataset", "IterableDataset", "IterableDataset-threaded-decode"])
def test_flattened_rows_hold_decoded_images(builders, stream_rows, kind, per):
    builder = builders("conversation")
    if kind == "Dataset":
        ds = prepare(builder)
    else:
        ds = builder.as_streaming_dataset(split="train")
        if kind.endswith("threaded-decode"):  # what load_dataset sets up for a remote stream
            ds = ds.decode(num_threads=2)
    flat = flatten_svit_dataset(ds, per=per)
    assert flat.features["image"] == Image()
    originals = {row["image_id"]: row["image"]["bytes"] for row in stream_rows("conversation")}
    rows = list(flat)
    assert len(rows) == expected_pieces("conversation", per)
    for row in rows:
        assert isinstance(row["image"], PIL.Image.Image)
        assert (row["image"].size, row["image"].tobytes()) == _pixels(originals[row["image_id"]])
    # the same rows undecoded: the original bytes, never re-encoded
    undecoded = flat.decode(False) if kind != "Dataset" else flat.cast_column("image", Image(decode=False))
    assert [(row["id"], row["image"]["bytes"]) for row in undecoded] == [
        (row["id"], originals[row["image_id"]]) for row in rows]


@pytest.fixture(scope="module")
def built_folder(tmp_path_factory):
    return sample_build(tmp_path_factory)


@pytest.mark.parametrize("per", ["conversation", "qa"])
def test_flattened_stream_through_a_dataloader(built_folder, per):
    stream = datasets.load_dataset(str(built_folder), "conversation", split="train", streaming=True)
    assert stream.num_shards >= 2
    flat = flatten_svit_dataset(stream, per=per)
    loader = torch.utils.data.DataLoader(flat, num_workers=2, batch_size=4, collate_fn=list)
    rows = [row for batch in loader for row in batch]
    assert len(rows) == expected_pieces("conversation", per)
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert isinstance(row["image"], PIL.Image.Image)
        assert row["image"].size == (row["width"], row["height"])
