"""The typed schema of every config: the contract that users, ``upload.py`` and the published card rely on.

Also the per-config facts that go with it (upstream file, description) and the licence and citation texts, so that
``SVITInternVL._info()``, the dataset card and ``dataset_infos.json`` are generated from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import DatasetInfo, Features, Image, List, Value


@dataclass(frozen=True)
class ConfigFacts:
    """What a config is made of.

    Attributes:
        name: the config name users pass to ``load_dataset``.
        family: ``"svit"`` or ``"sa1b"``.
        upstream_file: the upstream annotation file (SVIT: stem of ``data/<stem>.zip``; SA-1B: the jsonl name).
        multi_image: SA-1B multi-image lines (``images`` list) rather than one image per row.
        language: ``"en"`` or ``"zh"``.
        description: one paragraph for the card and ``DatasetInfo.description``.
    """

    name: str
    family: str
    upstream_file: str
    multi_image: bool
    language: str
    description: str


CONFIGS: dict[str, ConfigFacts] = {
    facts.name: facts
    for facts in [
        ConfigFacts(
            "conversation",
            "svit",
            "conversation",
            False,
            "en",
            "SVIT conversations: for each Visual Genome image, about three multi-turn dialogues (about five QA pairs "
            "each) that GPT-4 wrote from the image's human annotations. One row per image.",
        ),
        ConfigFacts(
            "reasoning",
            "svit",
            "complex_reasoning",
            False,
            "en",
            "SVIT complex reasoning: for each image, about fifteen questions that need reasoning beyond what is "
            "visible, with GPT-4's answers. One row per image.",
        ),
        ConfigFacts(
            "referring",
            "svit",
            "referring_qa",
            False,
            "en",
            "SVIT referring QAs: about ten QA pairs per image whose objects are written as "
            "`<st>phrase<ed> [x1, y1, x2, y2]`, boxes normalised to 0-1 of the original image; every turn also "
            "carries the parsed `regions`. One row per image.",
        ),
        ConfigFacts(
            "description",
            "svit",
            "detail_description",
            False,
            "en",
            "SVIT detail descriptions: one instruction and one detailed GPT-4 description per image. One row per "
            "image.",
        ),
        ConfigFacts(
            "sa1b-en-single",
            "sa1b",
            "internvl_sa1b_caption_11m_single_image_en.jsonl",
            False,
            "en",
            "InternVL-SA-1B-Caption, English, single image: a detailed caption of one SA-1B image per row.",
        ),
        ConfigFacts(
            "sa1b-zh-single",
            "sa1b",
            "internvl_sa1b_caption_1m_single_image_zh.jsonl",
            False,
            "zh",
            "InternVL-SA-1B-Caption, Chinese, single image: a detailed caption of one SA-1B image per row.",
        ),
        ConfigFacts(
            "sa1b-en-multi",
            "sa1b",
            "internvl_sa1b_caption_77k_multi_image_en.jsonl",
            True,
            "en",
            "InternVL-SA-1B-Caption, English, multi-image: one caption over several SA-1B images per row, images in "
            "upstream order.",
        ),
        ConfigFacts(
            "sa1b-zh-multi",
            "sa1b",
            "internvl_sa1b_caption_77k_multi_image_zh.jsonl",
            True,
            "zh",
            "InternVL-SA-1B-Caption, Chinese, multi-image: one caption over several SA-1B images per row, images in "
            "upstream order.",
        ),
    ]
}
DEFAULT_CONFIG = "referring"

SVIT_HOMEPAGE = "https://huggingface.co/datasets/BAAI/SVIT"
SA1B_CAPTION_HOMEPAGE = "https://huggingface.co/datasets/OpenGVLab/InternVL-SA-1B-Caption"
SA1B_HOMEPAGE = "https://ai.meta.com/datasets/segment-anything/"

SVIT_LICENSE = (
    "SVIT annotations: CC BY 4.0, and use must also comply with OpenAI's terms of use (they were generated with "
    "GPT-4). Visual Genome images: CC BY 4.0; the images that come from MS-COCO are under COCO's terms."
)
SA1B_LICENSE = (
    "InternVL-SA-1B-Caption captions: MIT. SA-1B images: Meta's SA-1B Dataset Research License, which restricts "
    "use to research and does not allow redistributing the images; shards that embed them may be published only "
    "where that licence allows, by the publisher's explicit choice."
)

SVIT_CITATION = """@article{zhao2023svit,
  title={SVIT: Scaling up Visual Instruction Tuning},
  author={Zhao, Bo and Wu, Boya and He, Muyang and Huang, Tiejun},
  journal={arXiv preprint arXiv:2307.04087},
  year={2023}
}
@article{krishna2017visual,
  title={Visual Genome: Connecting Language and Vision Using Crowdsourced Dense Image Annotations},
  author={Krishna, Ranjay and Zhu, Yuke and Groth, Oliver and Johnson, Justin and Hata, Kenji and Kravitz, Joshua and Chen, Stephanie and Kalantidis, Yannis and Li, Li-Jia and Shamma, David A and Bernstein, Michael S and Fei-Fei, Li},
  journal={International Journal of Computer Vision},
  volume={123},
  pages={32--73},
  year={2017}
}"""

SA1B_CITATION = """@inproceedings{chen2024internvl,
  title={InternVL: Scaling up Vision Foundation Models and Aligning for Generic Visual-Linguistic Tasks},
  author={Chen, Zhe and Wu, Jiannan and Wang, Wenhai and Su, Weijie and Chen, Guo and Xing, Sen and Zhong, Muyan and Zhang, Qinglong and Zhu, Xizhou and Lu, Lewei and Li, Bin and Luo, Ping and Lu, Tong and Qiao, Yu and Dai, Jifeng},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  year={2024}
}
@inproceedings{kirillov2023segment,
  title={Segment Anything},
  author={Kirillov, Alexander and Mintun, Eric and Ravi, Nikhila and Mao, Hanzi and Rolland, Chloe and Gustafson, Laura and Xiao, Tete and Whitehead, Spencer and Berg, Alexander C. and Lo, Wan-Yen and Doll{\\'a}r, Piotr and Girshick, Ross},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision},
  year={2023}
}"""


def _turn(with_regions: bool) -> dict:
    turn = {"from": Value("string"), "value": Value("string")}
    if with_regions:
        turn["regions"] = List(
            {
                "phrase": Value("string"),
                "boxes": List(List(Value("float32"), length=4)),
                "start": Value("int32"),
                "end": Value("int32"),
            }
        )
        # text[start:end] is the span; kind: unparsed, out-of-range or inverted (svit.referring_regions).
        turn["reference_issues"] = List(
            {"start": Value("int32"), "end": Value("int32"), "kind": Value("string"), "detail": Value("string")}
        )
    return turn


# Undeclared upstream keys of a row: a JSON object mapping each key's path to its value, or null.
UPSTREAM_EXTRA = Value("string")


def svit_features(config_name: str) -> Features:
    conversation = {"content": List(_turn(with_regions=config_name == "referring"))}
    if config_name == "conversation":
        conversation["topic"] = Value("string")
    return Features(
        {
            "id": Value("string"),
            "image_id": Value("int64"),
            "image": Image(),
            "width": Value("int32"),
            "height": Value("int32"),
            "conversations": List(conversation),
            "upstream_extra": UPSTREAM_EXTRA,
        }
    )


def _sa1b_row(image_columns: dict) -> Features:
    """An SA-1B row: the id, the columns that hold (or point to) its image(s), then the caption line's own fields."""
    return Features(
        {
            "id": Value("string"),
            **image_columns,
            "caption": Value("string"),
            "conversations": List(_turn(with_regions=False)),
            "source_id": Value("string"),
            "upstream_extra": UPSTREAM_EXTRA,
        }
    )


def sa1b_features(multi_image: bool) -> Features:
    if multi_image:
        images = {
            "images": List(Image()),
            "image_paths": List(Value("string")),
            "widths": List(Value("int32")),
            "heights": List(Value("int32")),
        }
    else:
        images = {
            "image": Image(),
            "image_path": Value("string"),
            "width": Value("int32"),
            "height": Value("int32"),
        }
    return _sa1b_row(images)


# How an sa1b-* config holds its images: "embed" (the original bytes in the rows) or "reference" (the SA-1B tar and
# member of each image, no bytes: svitpipe.sa1b.attach_images joins them to the user's own SA-1B copy).
SA1B_IMAGES_MODES = ("embed", "reference")

# Where one SA-1B image is: the tar stem, the member's file name, and the path as written upstream.
SA1B_IMAGE_REF = {"tar": Value("string"), "member": Value("string"), "path": Value("string")}


def sa1b_reference_features(multi_image: bool) -> Features:
    """The ``sa1b_images="reference"`` schema: the embed schema with each image (and its path column) replaced by
    an ``image_ref`` struct; sizes are null where they were not known without the images."""
    if multi_image:
        images = {"image_refs": List(SA1B_IMAGE_REF), "widths": List(Value("int32")), "heights": List(Value("int32"))}
    else:
        images = {"image_ref": SA1B_IMAGE_REF, "width": Value("int32"), "height": Value("int32")}
    return _sa1b_row(images)


def features_for(config_name: str, sa1b_images: str = "embed") -> Features:
    facts = CONFIGS[config_name]
    if facts.family == "svit":
        return svit_features(config_name)
    if sa1b_images == "reference":
        return sa1b_reference_features(facts.multi_image)
    return sa1b_features(facts.multi_image)


def citation_for(config_name: str) -> str:
    return SVIT_CITATION if CONFIGS[config_name].family == "svit" else SA1B_CITATION


def homepage_for(config_name: str) -> str:
    return SVIT_HOMEPAGE if CONFIGS[config_name].family == "svit" else SA1B_CAPTION_HOMEPAGE


def license_for(config_name: str) -> str:
    return SVIT_LICENSE if CONFIGS[config_name].family == "svit" else SA1B_LICENSE


SA1B_REFERENCE_DESCRIPTION = (
    " Reference mode: the rows hold no image bytes; `image_ref` (`image_refs`) names each image's SA-1B tar and "
    "member, and `svitpipe.sa1b.attach_images` joins them to a copy of SA-1B."
)


def config_info(config_name: str, sa1b_images: str = "embed") -> DatasetInfo:
    """What is known of a config without building it: the builder's ``_info()``."""
    reference = sa1b_images == "reference" and CONFIGS[config_name].family == "sa1b"
    return DatasetInfo(
        description=CONFIGS[config_name].description + (SA1B_REFERENCE_DESCRIPTION if reference else ""),
        features=features_for(config_name, sa1b_images),
        homepage=homepage_for(config_name),
        license=license_for(config_name),
        citation=citation_for(config_name),
    )


def dataset_facts(config_name: str) -> dict:
    """What is known about a config beyond its rows: ``description``, ``license``, ``citation``, ``homepage`` (the
    texts of ``dataset_infos.json`` and the card) and ``features``.

    ``datasets`` 5.2 does not hand these four texts back for a built folder or a Hub repo:
    ``load_dataset_builder(path, config).info`` and ``get_dataset_infos(path)`` take each config's info from the
    card's YAML ``dataset_info`` entry, which replaces the ``dataset_infos.json`` entry whole and, as ``datasets``
    writes it and the Hub's card spec defines it, holds only features, splits and sizes. Read them from here.
    """
    if config_name not in CONFIGS:
        raise ValueError(f"unknown config {config_name!r}; expected one of {list(CONFIGS)}")
    info = config_info(config_name)
    return {
        "config_name": config_name,
        "description": info.description,
        "license": info.license,
        "citation": info.citation,
        "homepage": info.homepage,
        "features": info.features,
    }
