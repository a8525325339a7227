"""The sample's published files are byte for byte what they were when the hashes were stored.

``tests/sample_build.sha256`` holds ``sha256sum`` lines for every shard and ``dataset_infos.json`` of
``upload.py --sample``. A change meant to leave the output alone (a refactor, a speed-up) must keep them; a change
meant to alter the output rewrites the file, from a fresh build, in the same commit:

    python upload.py --sample --local-dir /tmp/s && (cd /tmp/s && sha256sum dataset_infos.json data/*/*.parquet | sort -k2) > tests/sample_build.sha256
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from publish_fixtures import sample_build

STORED = Path(__file__).resolve().parent / "sample_build.sha256"


def stored_hashes() -> dict[str, str]:
    hashes = {}
    for line in STORED.read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        hashes[name] = digest
    return hashes


def test_sample_build_is_byte_identical_to_the_stored_hashes(tmp_path_factory):
    folder = sample_build(tmp_path_factory)
    expected = stored_hashes()
    built = sorted(p.relative_to(folder).as_posix() for p in folder.glob("data/*/*.parquet")) + ["dataset_infos.json"]
    assert sorted(built) == sorted(expected), "the build has other files than the stored hashes name"
    changed = [name for name in built if hashlib.sha256((folder / name).read_bytes()).hexdigest() != expected[name]]
    assert changed == [], f"these files differ from the stored hashes: {changed}"
