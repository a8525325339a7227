"""svit-internvl: SVIT and InternVL-SA-1B-Caption as typed, streamable, publishable ``datasets`` data.

One folder per stage; a row travels source -> record -> example -> unit -> part -> shard:

* ``builder``: the ``datasets`` builder (``SVITInternVL``), its config, and ``iter_examples``, the one function that
  turns a unit's ``gen_kwargs`` into examples.
* ``features``: the typed schema of every config and the per-config facts (``CONFIGS``, including each config's
  family, ``"svit"`` or ``"sa1b"``).
* ``bad_records``: the raise-or-skip policy and the one ledger a build counts every record in.
* ``locations``, ``json_text``, ``image_checks``, ``image_files``, ``source_index_cache``: shared by both families
  (where a file is, one upstream JSON value decoded or why not, image size and integrity, bounded image reads,
  cached source indexes).
* ``svit/``: SVIT's path: ``source`` (where the files are), ``json_array_reader`` and ``record_index`` (the JSON
  array read once), ``records`` and ``referring_regions`` (one record -> typed conversations), ``vg_images``,
  ``examples``.
* ``sa1b/``: InternVL-SA-1B-Caption's path: ``source`` (where the tars are), ``paths``, ``caption_index`` (captions
  grouped by tar), ``records``, ``tar_images``, ``examples``.
* ``publish/``: ``units`` (unit -> parts -> shards; ``unit_sources``: what a unit reads), ``parquet_layout``, ``engines`` (local processes or Ray),
  ``card``, ``checks``, ``hub_push``, and ``upload`` (the command).
* ``training/``: helpers for training on the published shards: ``chat_format``, ``boxes``, ``fast_decode``,
  ``export``.
* ``testing/``: ``fake_upstream``, writers of files laid out like the upstream ones (tests, benchmarks, the sample).
* ``sample/``: the bundled sample sources (``SAMPLE_SOURCES``); ``cli``: the ``svit-internvl`` command.

``svitpipe.dataset_facts(config)``: a config's description, licence, citation, homepage and features, which
``datasets`` does not hand back for a built folder or Hub repo (``features.dataset_facts`` says why).
"""

__all__ = ["dataset_facts"]


def __getattr__(name: str):
    # Lazy, so that ``import svitpipe`` stays light (``features`` imports ``datasets``).
    if name == "dataset_facts":
        from .features import dataset_facts

        return dataset_facts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
