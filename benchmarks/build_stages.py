"""Where a build's CPU time goes, stage by stage: the same rows through each stage alone, in one warm process.

    python -m benchmarks.build_stages svit [--root DIR]    # default: the full run's SVIT input
    python -m benchmarks.build_stages sa1b [--root DIR]

Each stage runs ``--repeats`` times (CPU seconds of this process, median) on the rows of the whole build:

* planning (``plan_units``: SVIT's record index, SA-1B's caption index, from fresh index folders);
* the examples generator as ``build_unit`` runs it, and parts of it alone: image header checks, archive reads and,
  for SVIT, JSON decoding, record typing with regions and the reference scan;
* ``pa.Table.from_pylist`` of 100-row groups and ``write_table`` of those groups, with and without CDC;
* the whole build (``upload.main``, ``--num-proc 1``), for the shares.

A profile, not a benchmark with a target: the README of ``benchmarks/`` reads it against the build's ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from . import datagen
from .common import quiet
from .run import make_plan

CONFIGS = {"svit": "referring", "sa1b": "sa1b-en-single"}
DEFAULT_WORK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data")


def source_options(family: str, root: str) -> tuple[dict, list]:
    """Builder keyword arguments and ``upload.py`` options for ``root``."""
    if family == "svit":
        return {"svit_source": root}, ["--svit-source", root]
    captions, images = os.path.join(root, "captions"), os.path.join(root, "images")
    return ({"sa1b_captions_source": captions, "sa1b_images_source": images},
            ["--sa1b-captions-source", captions, "--sa1b-images-source", images])


class Stages:
    def __init__(self, repeats: int):
        self.repeats = repeats
        self.seconds: dict = {}

    def time(self, name: str, function):
        result = None
        for repetition in range(self.repeats):
            started = time.process_time()
            result = function(repetition)
            self.seconds.setdefault(name, []).append(time.process_time() - started)
        return result

    def report(self, whole: str) -> str:
        total = statistics.median(self.seconds[whole])
        lines = []
        for name, seconds in self.seconds.items():
            median = statistics.median(seconds)
            spread = ", ".join(f"{value:.2f}" for value in seconds)
            lines.append(f"{name:60s} {median:7.3f} s {median / total:7.1%}   [{spread}]")
        return "\n".join(lines)


def svit_parts(stages: Stages, units, rows) -> None:
    from svitpipe.svit.json_array_reader import decode_element
    from svitpipe.svit.record_index import iter_record_range
    from svitpipe.svit.records import parse_svit_record
    from svitpipe.svit.referring_regions import scan_references
    from svitpipe.svit.vg_images import VGImageReader

    locations = units[0].gen_kwargs["images"]
    ids = [row["image_id"] for row in rows]

    def read_images(_):
        with VGImageReader(locations) as reader:
            return sum(len(reader.read(image_id)[1]) for image_id in ids)

    stages.time("  of which: VG zip reads (CRC checked)", read_images)
    raws = [record.raw for unit in units for part in unit.gen_kwargs["record_ranges"]
            for record in iter_record_range(part)]
    values = stages.time("  of which: JSON decoding of the records", lambda _: [decode_element(raw)[0] for raw in raws])
    stages.time("  of which: record typing with regions",
                lambda _: [parse_svit_record(value, with_regions=True) for value in values])
    texts = [turn["value"] for value in values for conversation in value["conversations"]
             for turn in conversation["content"]]
    stages.time("    of which: the reference scan", lambda _: [scan_references(text) for text in texts])


def sa1b_parts(stages: Stages, root: str, rows) -> None:
    from svitpipe.locations import TarLocation
    from svitpipe.sa1b.tar_images import iter_tar_members

    tars = sorted(name for name in os.listdir(os.path.join(root, "images")) if name.endswith(".tar"))
    wanted = {os.path.basename(row["image_path"]) for row in rows}

    def read_tars(_):
        total = 0
        for name in tars:
            location = TarLocation(stem=name[: -len(".tar")], kind="tar", url=os.path.join(root, "images", name))
            total += sum(len(data) for _, data in iter_tar_members(location, wanted))
        return total

    stages.time("  of which: tar reads (iter_tar_members)", read_tars)


def run(family: str, root: str, repeats: int) -> str:
    import pyarrow as pa

    import upload
    from svitpipe.bad_records import BadRecordLedger
    from svitpipe.builder import iter_examples, make_config
    from svitpipe.features import features_for
    from svitpipe.image_checks import inspect_image_frame
    from svitpipe.publish.parquet_layout import ParquetLayout, open_parquet_writer
    from svitpipe.publish.units import make_builder, plan_units

    config = CONFIGS[family]
    kwargs, argv = source_options(family, root)
    features = features_for(config)
    scratch = tempfile.mkdtemp(prefix="build-stages-")
    stages = Stages(repeats)
    try:
        def plan(repetition):
            options = {**kwargs, "cache_dir": f"{scratch}/cache-{repetition}", "index_dir": f"{scratch}/index-{repetition}"}
            return options, plan_units(make_builder(config, options))

        options, units = stages.time("planning (source index, units)", plan)

        def examples(_):
            unit_config = make_config(config, options)
            return [example for unit in units for _, _, example in
                    iter_examples(unit_config, BadRecordLedger(policy="skip"), **unit.gen_kwargs)]

        rows = stages.time("examples generator (all of it)", examples)
        images = [row["image"]["bytes"] for row in rows]
        stages.time("  of which: image header checks (Pillow, structure)",
                    lambda _: [inspect_image_frame(data) for data in images])
        if family == "svit":
            svit_parts(stages, units, rows)
        else:
            sa1b_parts(stages, root, rows)

        schema = features.arrow_schema
        groups = [rows[start:start + 100] for start in range(0, len(rows), 100)]
        tables = stages.time("pa.Table.from_pylist, 100-row groups",
                             lambda _: [pa.Table.from_pylist(group, schema=schema) for group in groups])
        for cdc in (False, True):
            layout = ParquetLayout(content_defined_chunking=cdc)

            def write(_, layout=layout):
                with pa.OSFile(os.path.join(scratch, "stage.parquet"), "wb") as sink:
                    writer = open_parquet_writer(sink, features, layout)
                    for table in tables:
                        writer.write_table(table, row_group_size=len(table))
                    writer.close()

            stages.time(f"write_table, {'with' if cdc else 'without'} CDC", write)

        whole = "whole build (upload.main --num-proc 1)"

        def build(repetition):
            out = os.path.join(scratch, f"build-{repetition}")
            with quiet():
                status = upload.main(["--configs", config, *argv, "--local-dir", out, "--num-proc", "1"])
            if status != 0:
                raise RuntimeError(f"upload.main returned {status}")

        stages.time(whole, build)
        header = f"{family} ({config}): {len(rows):,} rows, {sum(map(len, images)) / 1e6:,.0f} MB of images, {root}"
        return header + "\n" + stages.report(whole)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=sorted(CONFIGS))
    parser.add_argument("--root", help="the upstream root (default: the full benchmark run's input, generated if absent)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    root = args.root
    if root is None:
        sizes = make_plan(quick=False, scale=1.0).sizes
        facts = (datagen.svit_source(DEFAULT_WORK_DIR, sizes.vg_images) if args.family == "svit"
                 else datagen.sa1b_source(DEFAULT_WORK_DIR, sizes.sa1b_tars, sizes.sa1b_images_per_tar))
        root = facts["root"]
    print(run(args.family, root, args.repeats))


if __name__ == "__main__":
    main()
