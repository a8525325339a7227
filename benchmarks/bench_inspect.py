"""Inspect against build: ``upload.py --inspect`` reads every record and checks every image's header, writes
nothing; a build does the same reading and writes the shards. Both run as whole commands (``python upload.py``, a
fresh process and a fresh work folder each time, so each builds its own source index), in turn, on the large
generated annotation files of the memory section. The ratio inspect / build says how much of a build's time it costs
to know what the build will find."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .common import Measurement, Results, timed_interleaved

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.5  # "well under the build's time"


def _command(argv: list[str]) -> None:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    result = subprocess.run([sys.executable, "upload.py", *argv], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"upload.py {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-3000:]}")


def run(results: Results, svit: dict, sa1b: dict, work_dir: str, repeats: int, sa1b_tars: int) -> None:
    scratch = os.path.join(work_dir, "scratch-inspect")
    tars = [f"sa_{i:06d}" for i in range(min(sa1b_tars, sa1b["tars"]))]
    families = {
        "svit": (["--configs", "referring", "--svit-source", svit["root"]], svit["annotation_bytes"]),
        "sa1b": (["--configs", "sa1b-en-single", "--sa1b-captions-source", os.path.join(sa1b["root"], "captions"),
                  "--sa1b-images-source", os.path.join(sa1b["root"], "images"), "--sa1b-tars", *tars],
                 sa1b["captions_bytes"]),
    }
    for family, (sources, size) in families.items():
        def fresh():
            shutil.rmtree(scratch, ignore_errors=True)
            os.makedirs(scratch)

        cases = {
            "inspect": (lambda _: _command(["--inspect", *sources, "--local-dir", f"{scratch}/out"]), fresh),
            "build": (lambda _: _command([*sources, "--local-dir", f"{scratch}/out"]), fresh),
        }
        timings = timed_interleaved(cases, repeats)
        for name, (seconds, _) in timings.items():
            results.add("inspect", Measurement(f"{family}/{name}", seconds, 0, size, f"python upload.py ({name})"))
        inspect, build = results.get(f"inspect/{family}/inspect"), results.get(f"inspect/{family}/build")
        ratio = results.ratio(f"inspect/{family}/inspect-vs-build", inspect.median / build.median,
                              of="upload.py --inspect", over="upload.py (build)", how="medians, whole commands")
        results.target(f"inspect {family} from a {size / 1e6:.0f} MB annotation file: time / build's time < {TARGET}",
                       ratio, TARGET, higher_is_better=False)
    shutil.rmtree(scratch, ignore_errors=True)
