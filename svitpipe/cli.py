"""The ``svit-internvl`` command: one entry point for the project's tools.

    svit-internvl upload --sample --local-dir build/svit-internvl     # build (and push) Hub-ready shards
    svit-internvl inspect --sample --report findings.json            # what a build would find, nothing built
    svit-internvl export --format internvl --data build/svit-internvl --config referring --out out/  # for a trainer
    svit-internvl preview --data build/svit-internvl --out preview/  # a static page: numbers, plots, boxes drawn
    svit-internvl SUBCOMMAND --help

``python -m svitpipe`` runs the same command.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

PROG = "svit-internvl"


def invocation() -> list[str]:
    """The words that start this command again: ``python -m svitpipe``, the installed script's path, or its name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "svitpipe.__main__":
        return [sys.executable, "-m", "svitpipe"]
    if sys.argv and os.path.basename(sys.argv[0]) == PROG:
        return [sys.argv[0]]
    return [PROG]


def _upload(argv: list[str]) -> int:
    from .publish.upload import main

    return main(argv, prog=f"{PROG} upload", command=[*invocation(), "upload"])


def _inspect(argv: list[str]) -> int:
    from .publish.upload import main

    return main(["--inspect", *argv], prog=f"{PROG} inspect", command=[*invocation(), "inspect"])


def _export(argv: list[str]) -> int:
    from .training.export import main

    return main(argv, prog=f"{PROG} export")


def _preview(argv: list[str]) -> int:
    from .preview import main

    return main(argv, prog=f"{PROG} preview")


# name -> (what it does, how to run it); each subcommand parses its own arguments.
SUBCOMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "upload": ("build Hub-ready Parquet shards, a dataset card and infos; optionally push them", _upload),
    "inspect": ("say what a build would find (records, rows, skips and flags by kind), building nothing", _inspect),
    "export": ("export a built config for a trainer (--format llava, llava-onevision or internvl) plus images",
               _export),
    "preview": ("write a static preview page of a built folder: numbers, plots, sampled rows with boxes", _preview),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"usage: {PROG} SUBCOMMAND [ARGS...]", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (summary, _) in SUBCOMMANDS.items()]
    lines += ["", f"Run '{PROG} SUBCOMMAND --help' for a subcommand's options."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"{PROG}: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    _, run = SUBCOMMANDS[name]
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
