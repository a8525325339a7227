"""The upload command: build Hub-ready Parquet shards and a dataset card from the upstream sources, and optionally
push them.

    svit-internvl upload --sample --local-dir build/svit-internvl         # or: python upload.py ...
    svit-internvl upload --configs referring description --local-dir build/svit --repo-id my-org/svit-internvl

The folder it writes is what ``load_dataset`` reads natively: ``data/<config>/train-00000-of-000NN.parquet``,
``README.md`` (YAML ``configs`` + ``dataset_info``) and ``dataset_infos.json``. Build state (finished units, the
caption index) lives in ``<local-dir>/.cache/`` so an interrupted build resumes where it stopped; a lock there keeps
a second run out while one is writing the folder (``folder_lock``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time

from datasets.utils.py_utils import convert_file_size_to_int
from tqdm.auto import tqdm

from ..bad_records import BAD_RECORD_POLICIES
from ..features import CONFIGS, SA1B_IMAGES_MODES
from ..image_checks import IMAGE_CHECKS
from ..sample import SAMPLE_SOURCES
from .card import human_bytes, write_card
from .checks import verify_published_folder
from .allocator import keep_freed_memory
from .engines import ENGINES, Throughput, local_workers, ray_session, run_local, run_ray
from .folder_lock import FolderInUse, folder_lock
from .parquet_layout import (
    DEFAULT_ROW_GROUP_BYTES,
    DEFAULT_ROWS_PER_ROW_GROUP,
    VIEWER_ROW_GROUP_BYTES_LIMIT,
    ParquetLayout,
)
from .units import finalize_config, make_builder, plan_units

SA1B_SAMPLE_NOTE = (
    "In this build the SA-1B images are the project's synthetic sample images, not SA-1B images."
)
SA1B_PUBLISHED_NOTE = (
    "The publisher of this repository chose to embed SA-1B images (upload.py --allow-sa1b-redistribution) and "
    "answers for doing so within SA-1B's licence."
)
SA1B_LOCAL_NOTE = (
    "This folder embeds SA-1B images for local use; do not publish it unless SA-1B's licence allows you to."
)
SA1B_REFERENCE_NOTE = (
    "This repository holds no SA-1B images: its sa1b-* configs name each image's SA-1B tar and member, and users "
    "join them to their own copy of SA-1B from Meta."
)


def parse_args(argv=None, prog=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build Hub-ready Parquet shards and a dataset card for SVIT and InternVL-SA-1B-Caption, and "
        "optionally push them to a Hub dataset repo. One of --local-dir and --repo-id is required.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    inspect = parser.add_argument_group("inspect instead of building")
    inspect.add_argument("--inspect", action="store_true",
                         help="Read every annotation record and check every image (headers only), build and push "
                         "nothing, and print per config what a build would find: rows, counted skips and flags by "
                         "kind with examples, undeclared upstream keys, missing images or tars. Exit 0 when a build "
                         "with the chosen --on-bad-record would finish, 1 otherwise.")
    inspect.add_argument("--report", metavar="FILE", help="With --inspect: also write the findings as JSON.")
    where = parser.add_argument_group("where to")
    where.add_argument("--local-dir", help="Build the Hub-ready folder here (default with --repo-id: build/<name>). "
                       "One run at a time per folder: a second one exits at once, naming the first.")
    where.add_argument("--repo-id", help="Also push the folder to this Hub dataset repo (ORG/NAME).")
    where.add_argument("--private", action="store_true", help="Create the repo as private if it does not exist.")
    where.add_argument("--revision", help="Push to this branch (created if missing) instead of main.")
    where.add_argument("--create-pr", action="store_true", help="Push as a pull request instead of to the branch.")
    where.add_argument(
        "--token",
        help="Hub token with write access. Default: HF_TOKEN or the token saved by `hf auth login`. Never printed.",
    )
    what = parser.add_argument_group("what to build")
    what.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="CONFIG",
        help=f"Configs to build: {', '.join(CONFIGS)}.",
    )
    what.add_argument("--svit-source", help="SVIT root (local path or fsspec URL). Default: hf://datasets/BAAI/SVIT.")
    what.add_argument(
        "--sa1b-captions-source",
        help="Root holding the four InternVL-SA-1B-Caption jsonl files. Default: "
        "hf://datasets/OpenGVLab/InternVL-SA-1B-Caption.",
    )
    what.add_argument(
        "--sa1b-images-source",
        help="Root holding SA-1B's sa_NNNNNN.tar files or extracted sa_NNNNNN/ folders (required for sa1b-* configs "
        "with --sa1b-images embed; with reference, it gives the real image sizes and tar order).",
    )
    what.add_argument(
        "--sa1b-images", choices=SA1B_IMAGES_MODES, default="embed",
        help="How sa1b-* configs hold their images: embed the original bytes (pushing needs "
        "--allow-sa1b-redistribution), or reference them (image_ref: tar, member, path; no image bytes, built from "
        "the captions alone, pushed without the flag; svitpipe.sa1b.attach_images joins a local SA-1B copy).",
    )
    what.add_argument("--sa1b-tars", nargs="+", metavar="STEM", help="Build only these SA-1B tars (e.g. sa_000000).")
    what.add_argument(
        "--sample", action="store_true",
        help="Use the sample bundled with the package (svitpipe/sample/) for every source: no download."
    )
    what.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="raise",
                      help="Stop at the first bad upstream record, or skip and count bad records.")
    what.add_argument("--image-check", choices=IMAGE_CHECKS, default="header",
                      help="How images are checked: header and JPEG end marker, or a full decode.")
    what.add_argument("--allow-sa1b-redistribution", action="store_true",
                      help="Required to push sa1b-* configs built from real SA-1B images: SA-1B's licence restricts "
                      "redistributing them, so publishing them must be your explicit choice.")
    layout = parser.add_argument_group("layout and speed")
    layout.add_argument("--max-shard-size", default="500MB", help="Largest Parquet shard (e.g. 500MB, 2GB).")
    layout.add_argument("--rows-per-row-group", type=int, default=DEFAULT_ROWS_PER_ROW_GROUP,
                        help="Rows per Parquet row group (small groups keep the Dataset Viewer and random access fast).")
    layout.add_argument("--row-group-bytes", default=f"{DEFAULT_ROW_GROUP_BYTES // 10**6}MB",
                        help="Also end a row group before its uncompressed size passes this (e.g. 128MB), whichever "
                        f"limit comes first; at most {VIEWER_ROW_GROUP_BYTES_LIMIT:,} bytes, the Dataset Viewer's "
                        "read limit.")
    layout.add_argument("--content-defined-chunking", action="store_true",
                        help="Cut Parquet pages at content-defined boundaries. Off by default: for image shards it "
                        "costs about half of the Parquet writing time and made the Hub's Xet storage deduplicate less "
                        "(benchmarks/bench_xet.py).")
    layout.add_argument("--svit-num-shards", type=int, default=None,
                        help="Units of work per SVIT config (each gives one or more shards). Default: a multiple of "
                        "8, at least 16, sized from the image archives so each unit fits in one shard.")
    layout.add_argument("--num-proc", type=int, default=1,
                        help="Worker processes building units in parallel (with --engine ray and no --ray-address: "
                        "CPUs of the local Ray cluster).")
    layout.add_argument("--engine", choices=ENGINES, default="local",
                        help="Run units of work on this machine, or as Ray tasks (pip install -r requirements-ray.txt).")
    layout.add_argument("--ray-address", help="Ray cluster to join (e.g. ray://head:10001); default: a local cluster. "
                        "Workers must see --local-dir (a shared filesystem).")
    layout.add_argument("--retries", type=int, default=2, help="Extra attempts for a failing unit before it is reported.")
    args = parser.parse_args(argv)
    if args.report and not args.inspect:
        parser.error("--report goes with --inspect")
    if args.inspect:
        return args
    try:
        args.row_group_bytes = convert_file_size_to_int(args.row_group_bytes)
    except ValueError:
        parser.error(f"--row-group-bytes: not a size: {args.row_group_bytes!r}")
    if not 0 < args.row_group_bytes <= VIEWER_ROW_GROUP_BYTES_LIMIT:
        parser.error(f"--row-group-bytes must be between 1 and {VIEWER_ROW_GROUP_BYTES_LIMIT:,} bytes (the Dataset "
                     f"Viewer reads no larger row group), got {args.row_group_bytes:,}")
    if not args.local_dir and not args.repo_id:
        parser.error("give --local-dir, --repo-id, or both")
    if args.local_dir is None:
        args.local_dir = os.path.join("build", args.repo_id.split("/")[-1])
    return args


def builder_kwargs(args: argparse.Namespace, work_dir: str) -> dict:
    sources = dict(SAMPLE_SOURCES) if args.sample else {}
    for key in SAMPLE_SOURCES:
        value = getattr(args, key)
        if value:
            sources[key] = value
    return {
        **sources,
        "sa1b_tars": tuple(args.sa1b_tars) if args.sa1b_tars else None,
        "sa1b_images": args.sa1b_images,
        "on_bad_record": args.on_bad_record,
        "image_check": args.image_check,
        "svit_num_shards": args.svit_num_shards,
        "svit_shard_bytes": int(0.8 * convert_file_size_to_int(args.max_shard_size)),
        "cache_dir": os.path.join(work_dir, "datasets"),
        "index_dir": os.path.join(work_dir, "source-index"),
    }


def build_config(name: str, kwargs: dict, work_dir: str, out_dir: str, layout: ParquetLayout, args, workers=None):
    """Build one config with the chosen engine (``workers``: the run's local worker pool, if any); return
    (build, failed units, seconds)."""
    builder = make_builder(name, kwargs)
    units = plan_units(builder)
    started = time.perf_counter()
    in_process = args.engine == "local" and workers is None
    throughput = Throughput(len(units))
    with tqdm(desc=name, unit=" rows", total=None, dynamic_ncols=True) as bar:
        written = {"bytes": 0}

        def on_row_group(rows: int, size: int) -> None:
            written["bytes"] += size
            bar.update(rows)
            bar.set_postfix_str(human_bytes(written["bytes"]))

        def on_result(result) -> None:
            progress = throughput.add(result)
            if not result.rows_reported:
                on_row_group(result.num_rows, result.num_bytes)
            if not in_process:
                bar.set_postfix_str(progress)

        if args.engine == "ray":
            run = run_ray(units, kwargs, work_dir, layout, address=args.ray_address, num_cpus=args.num_proc,
                          retries=args.retries, on_result=on_result)
        else:
            run = run_local(units, kwargs, work_dir, layout, workers=workers, retries=args.retries,
                            on_result=on_result, on_row_group=on_row_group)
    build = finalize_config(name, run.succeeded, work_dir, out_dir, layout, ledger=builder.ledger,
                            sa1b_images=builder.config.sa1b_images)
    build.failed_units = [failure.key for failure in run.failures]
    return build, run.failures, time.perf_counter() - started


def summary_table(builds: dict, seconds: dict) -> str:
    """One line per config: rows, shards, bytes, counted skips and flags, failed units (a config with failed units is
    marked ``INCOMPLETE``), seconds."""
    header = ("config", "rows", "shards", "bytes", "skipped", "flagged", "failed units", "seconds")
    rows = [
        (name + (" INCOMPLETE" if b.failed_units else ""), f"{b.num_rows:,}", str(len(b.shards)),
         human_bytes(b.num_bytes), f"{b.ledger.total_skipped:,}", f"{sum(b.ledger.flagged.values()):,}",
         ", ".join(b.failed_units) or "-", f"{seconds[name]:.1f}")
        for name, b in builds.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def inspect_sources(args: argparse.Namespace) -> int:
    """``--inspect``: print (and with ``--report``, write) what a build of the chosen configs would find."""
    from ..inspection import format_inspection, inspect_config, inspection_report

    if args.local_dir:
        work_dir = os.path.join(os.path.abspath(args.local_dir), ".cache", "svit-internvl-build")
        options = builder_kwargs(args, work_dir)
    else:  # source indexes under the datasets cache, as for the builder itself
        options = {key: value for key, value in builder_kwargs(args, "").items() if key not in ("cache_dir", "index_dir")}
    results = []
    for name in args.configs:
        results.append(inspect_config(name, options, args.on_bad_record))
        print(format_inspection(results[-1]), flush=True)
    report = inspection_report(results)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
            f.write("\n")
    print("\n" + ("a build would finish" if report["would_finish"] else
                  f"a build with on_bad_record={args.on_bad_record!r} would stop or is incomplete: see above"))
    return 0 if report["would_finish"] else 1


def redo_command(argv, command) -> str:
    """The shell line that runs this command again with the same arguments, the token left out (``--token ...``:
    the reader passes it again, or relies on the saved login)."""
    if argv is None:  # run from a command line: python upload.py ..., svit-internvl upload ...
        words = [sys.executable, *sys.argv]
    else:  # main(argv) called from Python: sys.argv is the caller's command line, not this one
        words = [*(command or [sys.executable, "-m", "svitpipe", "upload"]), *argv]
    return " ".join(shlex.quote(word) for word in _without_token(words))


def _without_token(words: list) -> list:
    """``words`` with the token's value replaced by ``...``, however argparse was given it (``--token X``,
    ``--token=X``, or an abbreviation such as ``--tok X``)."""
    shown, hide_next = [], False
    for word in words:
        option, equals, _ = word.partition("=")
        is_token = len(option) > 2 and "--token".startswith(option) and word.startswith("--")
        if hide_next:
            shown.append("...")
            hide_next = False
        elif is_token and equals:
            shown.append(f"{option}=...")
        elif is_token:
            shown.append(word)
            hide_next = True
        else:
            shown.append(word)
    return shown


def main(argv=None, *, prog=None, command=None) -> int:
    """Run the upload command with ``argv`` (None: ``sys.argv[1:]``). ``command``: the words that start this command
    again, for the line that redoes failed units (None with ``argv`` given: ``python -m svitpipe upload``)."""
    args = parse_args(argv, prog=prog)
    if args.inspect:
        return inspect_sources(args)
    out_dir = os.path.abspath(args.local_dir)
    work_dir = os.path.join(out_dir, ".cache", "svit-internvl-build")
    has_sa1b = any(CONFIGS[name].family == "sa1b" for name in args.configs)
    embeds_sa1b = has_sa1b and args.sa1b_images == "embed"
    if args.repo_id and embeds_sa1b and not args.sample and not args.allow_sa1b_redistribution:
        print("error: pushing sa1b-* configs embeds SA-1B images, whose licence restricts redistribution; pass "
              "--allow-sa1b-redistribution if you may publish them, --sa1b-images reference to publish them without "
              "images, or leave those configs out.", file=sys.stderr)
        return 2
    try:
        with folder_lock(work_dir, redo_command(argv, command)):
            return _build_and_push(args, out_dir, work_dir, argv, command)
    except FolderInUse as error:  # another run is writing this folder: refused before anything is touched
        print(f"error: {error}", file=sys.stderr)
        return 2


def _build_and_push(args: argparse.Namespace, out_dir: str, work_dir: str, argv, command) -> int:
    layout = ParquetLayout(
        max_shard_bytes=convert_file_size_to_int(args.max_shard_size), rows_per_row_group=args.rows_per_row_group,
        max_row_group_bytes=args.row_group_bytes, content_defined_chunking=args.content_defined_chunking,
    )
    kwargs = builder_kwargs(args, work_dir)
    os.makedirs(out_dir, exist_ok=True)
    keep_freed_memory(layout.max_row_group_bytes)
    builds, seconds, failures = {}, {}, []
    if args.engine == "ray":
        engine = ray_session(args.ray_address, args.num_proc)
    else:
        engine = local_workers(args.num_proc)  # one pool for every config: workers start (and import) once
    with engine as workers:
        for name in args.configs:
            builds[name], failed, seconds[name] = build_config(
                name, kwargs, work_dir, out_dir, layout, args, workers=workers
            )
            failures += failed
    data_root = os.path.join(out_dir, "data")
    for leftover in sorted(set(os.listdir(data_root)) - set(builds)):
        print(f"removing data/{leftover}/: not built in this run")
        shutil.rmtree(os.path.join(data_root, leftover))
    if args.sa1b_images == "reference":
        note = SA1B_REFERENCE_NOTE
    else:
        note = SA1B_SAMPLE_NOTE if args.sample else SA1B_PUBLISHED_NOTE if args.repo_id else SA1B_LOCAL_NOTE
    write_card(out_dir, builds, repo_id=args.repo_id or "<org>/<name>", sa1b_redistribution=note,
               layout=layout)
    verify_published_folder(out_dir, list(builds), max_rows_per_row_group=args.rows_per_row_group,
                            sa1b_images=args.sa1b_images,
                            max_row_group_bytes=args.row_group_bytes)
    print(summary_table(builds, seconds))
    if not failures:
        print(f"\nverified: {out_dir}  (load with datasets.load_dataset({args.local_dir!r}, <config>))")
    else:
        incomplete = sorted({failure.config_name for failure in failures})
        print(f"\nINCOMPLETE: {out_dir} lacks the rows of {len(failures)} failed unit(s) of {', '.join(incomplete)}; "
              "the rest is checked")
        print(f"\n{len(failures)} unit(s) failed after {args.retries + 1} attempt(s); the others are built:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure.config_name}/{failure.key}: {failure.error}", file=sys.stderr)
        print(f"Fix the cause, then redo only those (finished units are reused):\n  {redo_command(argv, command)}",
              file=sys.stderr)
    if args.repo_id and failures:
        # Pushing would replace what the repo holds with a build missing these units' rows (and delete their shards).
        print(f"not pushed to {args.repo_id}: the build is incomplete; the push runs once every unit is built.",
              file=sys.stderr)
    elif args.repo_id:
        from huggingface_hub import HfApi

        from .hub_push import push_folder

        report = push_folder(
            out_dir, args.repo_id, api=HfApi(token=args.token), revision=args.revision, private=args.private,
            create_pr=args.create_pr,
        )
        print(f"pushed to {args.repo_id}: {len(report.uploaded)} file(s) sent, {report.unchanged} unchanged, "
              f"{len(report.deleted)} deleted, {len(report.commits)} commit(s)" +
              (f", pull request {report.pr_url}" if report.pr_url else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
