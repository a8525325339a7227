"""Helpers for training on the published shards, each a ``.map()``-able function or a small tool:
``chat_format`` (chat ``messages``, LLaVA records, flattening), ``boxes`` (box conversions and rendering),
``fast_decode`` (reduced-size JPEG decode for DataLoader workers), ``llava_export`` (LLaVA JSON + image folder)."""
