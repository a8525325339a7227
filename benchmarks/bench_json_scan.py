"""The JSON element reader's cost against an element's size: one array element holding a string of N MB against N
elements of 1 MB (the same bytes), best of 3, in the same run.

    python -m benchmarks.bench_json_scan            # N = 5, 10, 20, 50

A ratio near 1 means scanning is linear in an element's size (before the fix, measured the same way: 3.3x at 5 MB, 11.7x at 20 MB).
"""

from __future__ import annotations

import argparse
import io
import time

from svitpipe.svit.json_array_reader import iter_json_array

_MB = 1 << 20


def array(elements: int, string_bytes: int) -> bytes:
    element = b'{"a": "' + b"x" * string_bytes + b'"}'
    return b"[" + b",".join([element] * elements) + b"]"


def best_of(data: bytes, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in iter_json_array(io.BytesIO(data)):
            pass
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 50], help="string sizes in MB")
    args = parser.parse_args(argv)
    print(f"{'MB':>4} {'one N-MB string s':>18} {'N x 1 MB s':>11} {'ratio':>6}")
    for size in args.sizes:
        one = best_of(array(1, size * _MB))
        many = best_of(array(size, _MB))
        print(f"{size:>4} {one:>18.3f} {many:>11.3f} {one / many:>6.2f}")


if __name__ == "__main__":
    main()
