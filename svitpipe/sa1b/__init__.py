"""InternVL-SA-1B-Caption's data path: ``source`` (the SA-1B tars) and ``caption_index`` (captions grouped by tar,
with ``paths``) -> ``records`` -> ``examples`` (joined with ``tar_images``)."""
