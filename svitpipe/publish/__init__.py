"""Examples -> published folder -> Hub. The words: a **unit** is one piece of work (one builder shard), a **part** is
a Parquet file a unit writes, a **shard** is a published file.

``units`` (plan, build, finalize), ``parquet_layout`` (how parts are written), ``engines`` (where units run),
``folder_lock`` (one run per folder), ``card`` (README.md and dataset_infos.json), ``checks`` (the folder verified),
``hub_push`` (the push), ``upload`` (the command that does all of it).
"""
