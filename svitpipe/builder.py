"""The builder: SVIT and InternVL-SA-1B-Caption as typed, streamable `datasets` examples.

Use it directly (``datasets`` >= 4 no longer runs loading scripts)::

    from svitpipe.builder import SVITInternVL            # or: from svit_internvl import SVITInternVL
    from svitpipe.sample import SAMPLE_SOURCES

    builder = SVITInternVL(config_name="referring", **SAMPLE_SOURCES)  # default sources: the Hub
    stream = builder.as_streaming_dataset(split="train")     # reads the sources lazily
    builder.download_and_prepare()                            # or builds the Arrow cache
    dataset = builder.as_dataset(split="train")

Configs: ``conversation``, ``reasoning``, ``referring``, ``description`` (SVIT's four subsets, one row per image)
and ``sa1b-en-single``, ``sa1b-zh-single``, ``sa1b-en-multi``, ``sa1b-zh-multi`` (InternVL-SA-1B-Caption's four
files, one row per caption line, images from Meta's SA-1B tars).

``_split_generators`` plans a build: where the sources are, and the list of builder shards (SVIT record ranges, SA-1B
tars with their captions), each one unit of work for ``upload.py``. ``iter_examples`` turns one unit's
``gen_kwargs`` into examples; it needs only the config, so workers call it without a builder. Every count of a build
goes to one ledger, ``SVITInternVL.ledger``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import datasets
from datasets.builder import Key
from datasets.download.download_config import DownloadConfig
from datasets.download.streaming_download_manager import StreamingDownloadManager
from datasets.utils.file_utils import is_local_path, xjoin
from datasets.utils.sharding import _number_of_shards_in_gen_kwargs, _split_gen_kwargs

from .bad_records import BAD_RECORD_POLICIES, MISSING_TAR, TAR_NOT_SELECTED, BadRecordLedger
from .features import CONFIGS, DEFAULT_CONFIG, SA1B_IMAGES_MODES, config_info
from .image_checks import IMAGE_CHECKS
from .image_files import MAX_IMAGE_BYTES
from .sa1b.caption_index import load_or_build_caption_index
from .sa1b.examples import TarCaptions, generate_sa1b_examples
from .sa1b.image_source import TAR_MEMBER_INDEX_FOLDER
from .sa1b.reference import ReferenceTar, generate_reference_examples
from .sa1b.source import locate_sa1b_tars
from .svit.examples import generate_svit_examples
from .svit.json_array_reader import MAX_ELEMENT_BYTES
from .svit.record_index import load_or_build_record_index
from .svit.source import locate_svit_files
from .svit.vg_images import total_image_bytes

logger = datasets.utils.logging.get_logger(__name__)

# datasets names a builder after its module; the published infos and caches keep the project's name.
BUILDER_NAME = "svit_internvl"


@dataclass
class SVITInternVLConfig(datasets.BuilderConfig):
    """Which subset to build and where its sources are.

    Attributes:
        svit_source: root laid out like the ``BAAI/SVIT`` Hub repo: ``data/<subset>.zip`` (each a JSON array),
            ``raw/images.zip`` (``VG_100K/``) and ``raw/images2.zip`` (``VG_100K_2/``); extracted files
            (``data/<subset>.json``, ``raw/VG_100K/``, ``raw/VG_100K_2/``) are accepted too. A local path or any
            fsspec URL. Used by the four SVIT configs.
        sa1b_captions_source: root holding InternVL-SA-1B-Caption's four jsonl files under their upstream names.
        sa1b_images_source: root holding SA-1B's ``sa_NNNNNN.tar`` files or extracted ``sa_NNNNNN/`` folders. No
            default: Meta distributes SA-1B, the Hub does not; required by the four ``sa1b-*`` configs under
            ``sa1b_images="embed"``; optional under ``"reference"`` (it then gives the real sizes and tar order).
        sa1b_images: how the ``sa1b-*`` configs hold their images. ``"embed"`` (default): the original bytes in an
            ``image``/``images`` column; SA-1B's licence restricts publishing such shards. ``"reference"``: no image
            bytes, an ``image_ref``/``image_refs`` column instead (``{tar, member, path}``), with ``width``/``height``
            from the caption line, or from the images when ``sa1b_images_source`` is given, else null; built from the
            captions alone, publishable by anyone, and turned back into the embed rows, byte for byte, by
            ``svitpipe.sa1b.attach_images(rows, "<your SA-1B folder>")``.
        sa1b_tars: build only these SA-1B tars (stems like ``"sa_000123"``), for a partial SA-1B download; the caption
            lines of other tars are left out and counted under ``tar-not-selected``. None: every tar the captions use.
        index_dir: where the source indexes are cached on local disk (an SVIT annotation file's records, read once
            and then by record range; an SA-1B captions file grouped by tar); None: ``<cache_dir>/svit_internvl_index``.
        svit_num_shards: how many shards an SVIT subset is split into (contiguous ranges of records, in file order),
            so that DataLoader workers and ``num_proc`` processes share the work. None (default): a multiple of 8, at
            least 16, with about ``svit_shard_bytes`` of images per shard.
        svit_shard_bytes: image bytes aimed at per SVIT shard when ``svit_num_shards`` is None (the total is read
            from the image zips' directories, not from the images).
        on_bad_record: ``"raise"`` (default): stop at the first record that cannot become an example, naming the
            file, record and problem. ``"skip"``: log it, count it under its reason, go on.
        image_check: ``"header"`` (default): parse the image header and check each image's container is whole
            (``image_checks`` says what each check guarantees). ``"decode"``: also decode every pixel (slower;
            catches corrupt scan data).
        max_image_bytes: an image larger than this (an archive member by its declared size) is a bad record
            (``image-too-large``), refused without reading it.
        max_element_bytes: an SVIT array element larger than this stops the build with an error naming the file and
            the element, before it is held in memory.
    """

    svit_source: str = "hf://datasets/BAAI/SVIT"
    sa1b_captions_source: str = "hf://datasets/OpenGVLab/InternVL-SA-1B-Caption"
    sa1b_images_source: Optional[str] = None
    sa1b_tars: Optional[tuple] = None
    sa1b_images: str = "embed"
    index_dir: Optional[str] = None
    svit_num_shards: Optional[int] = None
    svit_shard_bytes: int = 400 * 1000 * 1000
    on_bad_record: str = "raise"
    image_check: str = "header"
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_element_bytes: int = MAX_ELEMENT_BYTES

    def __post_init__(self):
        super().__post_init__()
        if self.on_bad_record not in BAD_RECORD_POLICIES:
            raise ValueError(f"on_bad_record must be one of {BAD_RECORD_POLICIES}, got {self.on_bad_record!r}")
        if self.sa1b_images not in SA1B_IMAGES_MODES:
            raise ValueError(f"sa1b_images must be one of {SA1B_IMAGES_MODES}, got {self.sa1b_images!r}")
        if self.image_check not in IMAGE_CHECKS:
            raise ValueError(f"image_check must be one of {IMAGE_CHECKS}, got {self.image_check!r}")
        if self.svit_num_shards is not None and (not isinstance(self.svit_num_shards, int) or self.svit_num_shards < 1):
            raise ValueError(f"svit_num_shards must be a positive integer, got {self.svit_num_shards!r}")
        for name in ("max_image_bytes", "max_element_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.sa1b_tars is not None:
            self.sa1b_tars = tuple(sorted(set(self.sa1b_tars)))


class SVITInternVL(datasets.GeneratorBasedBuilder):
    """SVIT (four subsets over Visual Genome) and InternVL-SA-1B-Caption (four files over SA-1B)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = SVITInternVLConfig
    BUILDER_CONFIGS = [
        SVITInternVLConfig(name=name, version=datasets.Version("1.0.0"), description=facts.description)
        for name, facts in CONFIGS.items()
    ]
    DEFAULT_CONFIG_NAME = DEFAULT_CONFIG
    DEFAULT_WRITER_BATCH_SIZE = 100  # image rows: keeps Arrow record batches (and Parquet row groups) small

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dataset_name", BUILDER_NAME)
        super().__init__(*args, **kwargs)
        # datasets sets config keyword arguments on a copy of the predefined config without running __post_init__.
        self.config.__post_init__()
        self.name = self.info.builder_name = BUILDER_NAME
        # Every count of the latest build: bad records found while planning (caption index, missing tars) and while
        # generating examples in this process. upload.py adds its units' counts to this same object.
        self.ledger = BadRecordLedger(policy=self.config.on_bad_record)

    def _info(self) -> datasets.DatasetInfo:
        return config_info(self.config.name, self.config.sa1b_images)

    def _split_generators(self, dl_manager):
        facts = CONFIGS[self.config.name]
        self.ledger = BadRecordLedger(policy=self.config.on_bad_record)
        plan = {"svit": self._svit_gen_kwargs, "sa1b": self._sa1b_gen_kwargs}[facts.family]
        gen_kwargs = plan(dl_manager, facts)
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs=gen_kwargs)]

    def _svit_gen_kwargs(self, dl_manager, facts) -> dict:
        download_config = dl_manager.download_config
        files = locate_svit_files(_absolute(self.config.svit_source), facts.upstream_file, download_config)
        images = tuple(
            replace(location, url=dl_manager.download(location.url)) if location.kind == "zip" else location
            for location in files.images
        )
        num_shards = self.config.svit_num_shards or svit_shard_count(
            total_image_bytes(files.images, download_config), self.config.svit_shard_bytes
        )
        record_index = load_or_build_record_index(
            dl_manager.download(files.annotation), files.annotation_in_zip, self._index_root(), download_config,
            max_element_bytes=self.config.max_element_bytes,
        )
        return {
            "record_ranges": record_index.record_ranges(num_shards),  # the one list: datasets shards over it
            "images": images,
            "download_config": download_config,
        }

    def _sa1b_gen_kwargs(self, dl_manager, facts) -> dict:
        reference = self.config.sa1b_images == "reference"
        if not self.config.sa1b_images_source and not reference:
            raise ValueError(
                f"Config '{self.config.name}' needs the SA-1B images, which Meta distributes and the Hub does not: "
                "pass sa1b_images_source=<folder or URL holding sa_NNNNNN.tar files or extracted sa_NNNNNN/ "
                "folders>, e.g. SVITInternVL(config_name='sa1b-en-single', sa1b_images_source='/data/sa1b'), or "
                "sa1b_images='reference' to build the rows without images."
            )
        download_config = dl_manager.download_config
        captions_source = xjoin(_absolute(self.config.sa1b_captions_source), facts.upstream_file)
        captions = dl_manager.download(captions_source)
        index = load_or_build_caption_index(
            captions,
            self._index_root(),
            multi_image=facts.multi_image,
            policy=self.config.on_bad_record,
            download_config=download_config,
        )
        ledger = self.ledger
        # Only the lines the index dropped are counted here; the others are counted where they are built, left out
        # or found missing.
        ledger.take_skips(index.ledger)
        selected = sorted(index.lines_per_tar)
        if self.config.sa1b_tars is not None:
            left_out = [stem for stem in selected if stem not in self.config.sa1b_tars]
            ledger.left_out(TAR_NOT_SELECTED, sum(index.lines_per_tar[stem] for stem in left_out))
            selected = [stem for stem in selected if stem in self.config.sa1b_tars]
        if reference:
            images_source = self.config.sa1b_images_source
            return {
                # the one list: datasets shards over it, one SA-1B tar per builder shard
                "tars": [ReferenceTar(position, stem, index.bucket_path(stem)) for position, stem in enumerate(selected)],
                "multi_image": facts.multi_image,
                "captions_source": captions_source,
                "images_source": _absolute(images_source) if images_source else None,
                "index_dir": os.path.join(self._index_root(), TAR_MEMBER_INDEX_FOLDER),
                "download_config": download_config,
            }
        wanted = set(selected) | (set(index.tars_referenced) if facts.multi_image else set())
        images_root = _absolute(self.config.sa1b_images_source)
        found, missing = locate_sa1b_tars(images_root, wanted, download_config)
        missing_selected = [stem for stem in selected if stem not in found]
        if missing_selected:
            lines = sum(index.lines_per_tar[stem] for stem in missing_selected)
            ledger.read(lines)
            shown = ", ".join(missing_selected[:10]) + (" ..." if len(missing_selected) > 10 else "")
            ledger.bad(
                captions_source,
                f"{lines} line(s)",
                MISSING_TAR,
                f"their images are in {len(missing_selected)} SA-1B tar(s) not found under "
                f"sa1b_images_source={images_root!r}: {shown}. Add them, or pass sa1b_tars=[...] to build only the "
                "tars you have",
                count=lines,
            )
        if ledger.total_skipped:
            logger.warning(f"{self.config.name}: before reading images: {ledger.summary()}")
        tar_locations = {
            stem: replace(location, url=dl_manager.download(location.url)) if location.kind == "tar" else location
            for stem, location in found.items()
        }
        tars = [
            TarCaptions(position, tar_locations[stem], index.bucket_path(stem))
            for position, stem in enumerate(stem for stem in selected if stem in found)
        ]
        return {
            "tars": tars,  # the one list: datasets shards over it, one SA-1B tar per builder shard
            "tar_locations": tar_locations,
            "multi_image": facts.multi_image,
            "captions_source": captions_source,
            "download_config": download_config,
        }

    def _index_root(self) -> str:
        return self.config.index_dir or os.path.join(self._cache_dir_root, "svit_internvl_index")

    def shard_gen_kwargs(self, dl_manager=None) -> list[dict]:
        """The ``gen_kwargs`` of every builder shard, in order: the units of work ``upload.py`` builds parts from
        (each for ``iter_examples``). Plans a build, so ``self.ledger`` starts anew with its planning counts.

        Sources are read in place (a streaming download manager), so nothing is copied into the cache first.
        """
        if dl_manager is None:
            dl_manager = StreamingDownloadManager(
                base_path=self.base_path,
                download_config=DownloadConfig(token=self.token, storage_options=self.storage_options),
                dataset_name=self.dataset_name,
            )
        [split_generator] = self._split_generators(dl_manager)
        gen_kwargs = split_generator.gen_kwargs
        return _split_gen_kwargs(gen_kwargs, max_num_jobs=_number_of_shards_in_gen_kwargs(gen_kwargs))

    def _generate_examples(self, **gen_kwargs):
        skipped_before = self.ledger.total_skipped
        for position, index, example in iter_examples(self.config, self.ledger, **gen_kwargs):
            yield Key(position, index), example
        if self.ledger.total_skipped > skipped_before:
            logger.warning(f"{self.config.name}: {self.ledger.summary()}")


def iter_examples(config: SVITInternVLConfig, ledger: BadRecordLedger, **gen_kwargs) -> Iterator[tuple[int, int, dict]]:
    """``(builder shard, index in source, example)`` for one unit's ``gen_kwargs`` (from
    ``SVITInternVL.shard_gen_kwargs``), counting records in ``ledger``. Needs only the config: what a worker runs."""
    if CONFIGS[config.name].family == "sa1b" and config.sa1b_images == "reference":
        return generate_reference_examples(**gen_kwargs, ledger=ledger)
    if CONFIGS[config.name].family == "sa1b":
        return generate_sa1b_examples(**gen_kwargs, ledger=ledger, image_check=config.image_check,
                                      max_image_bytes=config.max_image_bytes)
    return generate_svit_examples(**gen_kwargs, config_name=config.name, ledger=ledger, image_check=config.image_check,
                                  max_image_bytes=config.max_image_bytes)


# Builder arguments that are not config fields: where caches live.
BUILDER_ARGUMENTS = ("cache_dir",)


def make_config(config_name: str, options: dict) -> SVITInternVLConfig:
    """The predefined config ``config_name`` with ``options`` (builder keyword arguments) set and validated, as
    ``SVITInternVL(config_name=..., **options).config`` would be, without building a builder."""
    predefined = {config.name: config for config in SVITInternVL.BUILDER_CONFIGS}
    if config_name not in predefined:
        raise ValueError(f"unknown config {config_name!r}; the configs are {', '.join(predefined)}")
    fields = {key: value for key, value in options.items() if key not in BUILDER_ARGUMENTS}
    return replace(predefined[config_name], **fields)


def svit_shard_count(image_bytes: int, shard_bytes: int) -> int:
    """Shards for an SVIT subset: about ``shard_bytes`` of images each, at least 16, a multiple of 8."""
    wanted = max(16, -(-image_bytes // max(shard_bytes, 1)))
    return -(-wanted // 8) * 8


def _absolute(root: str) -> str:
    """Local roots as absolute paths (the download manager would resolve relative ones against the wrong base)."""
    return os.path.abspath(root) if is_local_path(root) else root
