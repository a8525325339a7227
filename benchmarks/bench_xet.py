"""Xet deduplication: what a second push uploads, with and without Parquet's content-defined chunking (CDC).

The Hub stores files in Xet, which cuts every uploaded file into content-defined chunks and uploads only the chunks
it does not hold. ``hf_xet`` (a dependency of ``huggingface_hub``) can write to a local store (``local://<folder>``)
and reports what each upload deduplicated, so the Hub's side of a push is measured here without a network:

* re-build: the shards of a build are pushed, then those of a build from the same sources after a small upstream
  change (one record removed near the start, so every later row moves, and one text edited);
* another config: SVIT ``referring`` is pushed, then ``conversation`` built over the same records and images.

For each, ``upload.py`` builds with ``--content-defined-chunking`` and without, into a fresh store each. The figure is
the share of the second push's bytes that are new (what it uploads). The build seconds with and without CDC are
recorded too (one build each: ``build`` is the section that times builds).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile

from .common import Measurement, Results, files_under, quiet

EDITED_SUFFIX = " (edited)"


def _link_tree(source: str, target: str) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=os.link)


def changed_svit_source(root: str, target: str) -> str:
    """``root`` with record 7 of ``data/referring_qa.zip`` removed and record 100's last value edited."""
    _link_tree(root, target)
    path = os.path.join(target, "data", "referring_qa.zip")
    with zipfile.ZipFile(os.path.join(root, "data", "referring_qa.zip")) as archive:
        (name,) = archive.namelist()
        records = json.loads(archive.read(name))  # the benchmark's own few-MB file
    del records[7]
    edited = records[min(100, len(records) - 1)]
    edited["conversations"][0]["content"][-1]["value"] += EDITED_SUFFIX
    os.remove(path)  # a hard link to the original: replaced, never written through
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, json.dumps(records))
    return target


def changed_sa1b_source(root: str, target: str) -> str:
    """``root`` with caption line 3 removed and line 50's caption edited."""
    _link_tree(root, target)
    (captions,) = files_under(os.path.join(target, "captions"), ".jsonl")
    with open(captions, encoding="utf-8") as f:
        lines = f.readlines()
    del lines[3]
    edited = json.loads(lines[min(50, len(lines) - 1)])
    edited["conversations"][-1]["value"] += EDITED_SUFFIX
    lines[min(50, len(lines) - 1)] = json.dumps(edited, ensure_ascii=False) + "\n"
    os.remove(captions)
    with open(captions, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return target


def with_conversation_subset(root: str, target: str) -> str:
    """``root`` with its referring records also as ``data/conversation.zip`` (the same records, another config)."""
    _link_tree(root, target)
    os.link(os.path.join(root, "data", "referring_qa.zip"), os.path.join(target, "data", "conversation.zip"))
    return target


def build(argv: list, out_dir: str, cdc: bool) -> tuple[list, float]:
    """``upload.main`` into a fresh ``out_dir``; the shard paths and the seconds it took."""
    import upload

    shutil.rmtree(out_dir, ignore_errors=True)
    argv = [*argv, "--local-dir", out_dir, "--num-proc", "1", *(["--content-defined-chunking"] if cdc else [])]
    started = time.perf_counter()
    with quiet():
        status = upload.main(argv)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"upload.main({argv}) returned {status}")
    return files_under(os.path.join(out_dir, "data"), ".parquet"), seconds


def push(store: str, paths: list) -> dict:
    """Upload ``paths`` to the local Xet store at ``store``; total, new and deduplicated bytes."""
    import hf_xet

    commit = hf_xet.XetSession().new_upload_commit(endpoint=f"local://{store}")
    for path in paths:
        commit.start_upload_file(path)
    metrics = commit.wait_to_finish().dedup_metrics
    return {"total": metrics.total_bytes, "new": metrics.new_bytes, "deduped": metrics.deduped_bytes}


def scenarios(svit: dict, sa1b: dict, work_dir: str) -> dict:
    """name -> (first build's argv, second build's argv)."""
    svit_args = lambda root, config="referring": ["--configs", config, "--svit-source", root]  # noqa: E731
    sa1b_args = lambda root: ["--configs", "sa1b-en-single", "--sa1b-captions-source",  # noqa: E731
                              os.path.join(root, "captions"), "--sa1b-images-source", os.path.join(root, "images")]
    changed_svit = changed_svit_source(svit["root"], os.path.join(work_dir, "svit-changed"))
    changed_sa1b = changed_sa1b_source(sa1b["root"], os.path.join(work_dir, "sa1b-changed"))
    both = with_conversation_subset(svit["root"], os.path.join(work_dir, "svit-two-configs"))
    return {
        "svit-rebuild": (svit_args(svit["root"]), svit_args(changed_svit)),
        "sa1b-rebuild": (sa1b_args(sa1b["root"]), sa1b_args(changed_sa1b)),
        "svit-another-config": (svit_args(both), svit_args(both, "conversation")),
    }


def run(results: Results, svit: dict, sa1b: dict, work_dir: str) -> None:
    scratch = os.path.join(work_dir, "xet")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    shares = {}
    cases = scenarios(svit, sa1b, scratch)
    for name, (first_argv, second_argv) in cases.items():
        for cdc in (False, True):
            tag = "cdc" if cdc else "no-cdc"
            store = os.path.join(scratch, f"store-{name}-{tag}")
            os.makedirs(store)
            first_paths, _ = build(first_argv, os.path.join(scratch, "first"), cdc)
            first = push(store, first_paths)
            second_paths, second_seconds = build(second_argv, os.path.join(scratch, "second"), cdc)
            second = push(store, second_paths)
            share = second["new"] / second["total"]
            shares[name, cdc] = share
            results.facts[f"xet/{name}/{tag}"] = {"first_push": first, "second_push": second, "new_share": share}
            results.add("xet", Measurement(f"{name}-{tag}-second-build", [second_seconds], None, second["total"],
                                           f"upload.py of the second build, {tag} (one run)"))
            shutil.rmtree(store)
    for name in cases:
        without, with_cdc = shares[name, False], shares[name, True]
        ratio = results.ratio(f"xet/{name}/uploaded-with-cdc-vs-without",
                              with_cdc / without if without else float("inf"), of=f"{name} with CDC",
                              over=f"{name} without CDC",
                              how=f"share of the second push uploaded: {with_cdc:.2%} with CDC, {without:.2%} without")
        results.target(f"xet {name}: a second push without CDC uploads no more than with it", ratio, 1.0,
                       detail=f"new bytes {without:.2%} without CDC, {with_cdc:.2%} with")
    shutil.rmtree(scratch, ignore_errors=True)
