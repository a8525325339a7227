"""The data path of svit-internvl, one module per step.

Source -> record -> example -> shard:

* ``sources``: where the upstream files live (Hub, local, any fsspec URL; archives or extracted folders).
* ``json_array_reader``: SVIT's multi-GB JSON arrays, read one element at a time.
* ``svit_records`` / ``referring_regions``: one SVIT record -> one typed example (with parsed boxes).
* ``vg_images``: Visual Genome image bytes from ``raw/images*.zip`` or their extracted folders.
* ``sa1b_paths`` / ``sa1b_caption_index`` / ``sa1b_records`` / ``sa1b_images``: InternVL-SA-1B-Caption lines joined
  with SA-1B tars, one tar at a time.
* ``image_checks``: image size and integrity without re-encoding.
* ``bad_records``: the raise-or-skip policy and the ledger that counts every skip.
* ``features``: the typed schema of every config (the contract with users and ``upload.py``).
"""
