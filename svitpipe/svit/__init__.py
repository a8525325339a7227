"""SVIT's data path: ``source`` -> ``record_index`` (over ``json_array_reader``) -> ``records`` (with
``referring_regions``) -> ``examples`` (joined with ``vg_images``)."""
