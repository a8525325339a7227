"""InternVL-SA-1B-Caption's data path: ``source`` (the SA-1B tars) and ``caption_index`` (captions grouped by tar,
with ``paths``) -> ``records`` -> ``examples`` (joined with ``tar_images``), or ``reference`` (no images: each row
names its tar and member). ``attach`` joins reference rows to a copy of SA-1B (``image_source``, by offset from
``tar_member_index``): ``attach_images``."""

from .attach import AttachImages, attach_images

__all__ = ["AttachImages", "attach_images"]
