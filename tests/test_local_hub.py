"""The local Hub server serves a two-config Parquet dataset through the real `datasets` Hub code path."""

import hashlib
import json
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

try:
    from local_hub import run_with_hub, serve_dataset_repos
except ImportError:  # tests/ imported as a package
    from tests.local_hub import run_with_hub, serve_dataset_repos

N_ROWS = 2000
CARD = """\
---
configs:
- config_name: a
  data_files:
  - split: train
    path: "data/a/train-*.parquet"
  default: true
- config_name: b
  data_files:
  - split: train
    path: "data/b/train-*.parquet"
---
# tiny

A tiny test dataset.
"""


def rows_digest(rows):
    """Order-sensitive digest of (text, blob) rows, computed the same way in the subprocess."""
    h = hashlib.sha256()
    for text, blob in rows:
        h.update(text.encode("utf-8"))
        h.update(len(blob).to_bytes(4, "little"))
        h.update(blob)
    return h.hexdigest()


def make_rows(config):
    # Pseudo-random but deterministic bytes: incompressible enough to keep the file > 64 KiB.
    return [
        (f"{config}-row-{i:05d}", hashlib.sha256(f"{config}/{i}".encode()).digest() * 2)
        for i in range(N_ROWS)
    ]


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-src")
    expected = {}
    for config in ("a", "b"):
        rows = make_rows(config)
        table = pa.table({
            "text": pa.array([t for t, _ in rows], pa.string()),
            "blob": pa.array([b for _, b in rows], pa.binary()),
        })
        path = folder / "data" / config / "train-00000-of-00001.parquet"
        path.parent.mkdir(parents=True)
        # Several row groups, so a streamed read needs several ranged requests.
        pq.write_table(table, path, row_group_size=500)
        assert path.stat().st_size > 64 * 1024
        expected[config] = rows_digest(rows)
    (folder / "README.md").write_text(CARD, encoding="utf-8")

    with serve_dataset_repos({"acme/tiny": folder}, tmp_path_factory.mktemp("hub")) as endpoint:
        yield endpoint, folder, expected


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_ranged_reads(tiny_hub):
    endpoint, folder, _ = tiny_hub
    data = (folder / "data/a/train-00000-of-00001.parquet").read_bytes()
    size = len(data)
    url = f"{endpoint}/datasets/acme/tiny/resolve/main/data/a/train-00000-of-00001.parquet"
    cases = {
        "bytes=10-99": (10, 99),
        f"bytes={size - 100}-": (size - 100, size - 1),
        "bytes=-8": (size - 8, size - 1),
        f"bytes=100-{size + 1000}": (100, size - 1),
    }
    for header, (start, end) in cases.items():
        status, headers, body = _get(url, {"Range": header})
        assert status == 206, header
        assert body == data[start:end + 1], header
        assert headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert int(headers["content-length"]) == end - start + 1, header
    status, _, body = _get(url)
    assert status == 200 and body == data


CLIENT_CODE = r"""
import hashlib, json
import datasets
from huggingface_hub import HfApi, HfFileSystem

def digest(rows):
    h = hashlib.sha256()
    for row in rows:
        blob = row["blob"]
        h.update(row["text"].encode("utf-8"))
        h.update(len(blob).to_bytes(4, "little"))
        h.update(blob)
    return h.hexdigest()

api = HfApi()
info = api.dataset_info("acme/tiny")
out = {
    "siblings": sorted(s.rfilename for s in info.siblings),
    "sha": info.sha,
    "repo_exists": api.repo_exists("acme/tiny", repo_type="dataset"),
    "other_repo_exists": api.repo_exists("acme/missing", repo_type="dataset"),
    "missing_file_exists": api.file_exists("acme/tiny", "nope.txt", repo_type="dataset"),
    "ls": sorted(HfFileSystem().ls("datasets/acme/tiny/data", detail=False)),
    "configs": datasets.get_dataset_config_names("acme/tiny"),
}
streamed = list(datasets.load_dataset("acme/tiny", "b", split="train", streaming=True))
out["b_stream"] = [len(streamed), digest(streamed)]
ds = datasets.load_dataset("acme/tiny", "a", split="train")
out["a_full"] = [ds.num_rows, digest(ds)]
print(json.dumps(out))
"""


def test_datasets_through_local_hub(tiny_hub):
    endpoint, _, expected = tiny_hub
    stdout = run_with_hub(CLIENT_CODE, endpoint, timeout=120)
    out = json.loads(stdout.strip().splitlines()[-1])

    assert out["siblings"] == [
        "README.md",
        "data/a/train-00000-of-00001.parquet",
        "data/b/train-00000-of-00001.parquet",
    ]
    assert len(out["sha"]) == 40
    assert out["repo_exists"] is True
    assert out["other_repo_exists"] is False
    assert out["missing_file_exists"] is False
    assert out["ls"] == ["datasets/acme/tiny/data/a", "datasets/acme/tiny/data/b"]
    assert sorted(out["configs"]) == ["a", "b"]
    assert out["b_stream"] == [N_ROWS, expected["b"]]
    assert out["a_full"] == [N_ROWS, expected["a"]]
