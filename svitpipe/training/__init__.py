"""Helpers for training on the published shards, each a ``.map()``-able function or a small tool:
``view`` (:func:`training_view`: one schema for every config; :func:`mix`: configs interleaved), ``chat_format``
(chat ``messages``, LLaVA records, flattening), ``boxes`` (box conversions and rendering), ``fast_decode``
(reduced-size JPEG decode for DataLoader workers), ``export`` (the annotation files LLaVA, LLaVA-OneVision and
InternVL trainers read, plus an image folder; ``llava_export`` is its former name)."""

from .view import mix, training_view

__all__ = ["mix", "training_view"]
