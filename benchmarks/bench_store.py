"""`plan` and the report's reader over an N-run results tree on a local S3 server (moto) behind a
proxy that delays every request (tests/s3_latency.py): requests per file, the most in flight, and
seconds, beside one file read the old way (pq.read_table on the store: HEAD and ranged GETs).

    python benchmarks/bench_store.py [--runs 2000] [--latency-ms 30] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import S3_CREDENTIALS, start_s3_server  # noqa: E402
from s3_latency import LatencyProxy  # noqa: E402
from test_tree_reads import committed_runs, fill  # noqa: E402


def measure(proxy: LatencyProxy, label: str, files: int, work) -> None:
    proxy.reset()
    start = time.perf_counter()
    work()
    took = time.perf_counter() - start
    print(f"{label:<34} {took:7.2f} s  {proxy.total / files:5.2f} requests/file  "
          f"most in flight {proxy.most_in_flight:3d}  ({proxy.total} requests, {files} files)")  # fmt: skip


def bench(runs: int, latency_ms: float) -> None:
    from pyarrow.fs import S3FileSystem

    from fmnist_ray.planning.plan import make_plan
    from fmnist_ray.reporting.load import load_tree
    from fmnist_ray.spec.grid import load_experiment
    from fmnist_ray.store.results import check_run
    from fmnist_ray.store.storage import locate
    from fmnist_ray.store.tree import read_tree

    server, address = start_s3_server()
    try:
        S3FileSystem(
            endpoint_override=address, scheme="http", allow_bucket_creation=True
        ).create_dir("bench")
        with LatencyProxy(address, delay_ms=latency_ms) as proxy:
            uri = f"s3://bench/study?endpoint_override={proxy.address}&scheme=http"
            root = locate(uri)
            fill(root / "others", committed_runs(runs))
            for path in sorted((REPO / "results" / "pooling" / "runs").glob("*.parquet")):
                (root / "pooling" / "runs" / path.name).write_bytes(path.read_bytes())
            files = runs + 7
            print(f"{files} run files, {latency_ms:g} ms per request")
            old = read_tree([root]).files[1:11]  # past others/bad/, the invalid one
            measure(
                proxy,
                "10 files read the old way, serially",
                10,
                lambda: [check_run(p) for p in old],
            )
            measure(proxy, "read_tree (load, export)", files, lambda: read_tree([root]))
            exp = load_experiment(REPO / "experiments" / "study" / "pooling.toml")
            measure(proxy, "plan (pooling: 6 runs)", files, lambda: make_plan([exp], root))
            measure(proxy, "report's reader (load_tree)", files, lambda: load_tree([uri]))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--smoke", action="store_true", help="60 runs at 5 ms: checks the code")
    parser.add_argument("--data-dir", help="unused (the tree is made of committed run files)")
    args = parser.parse_args()
    os.environ.update(S3_CREDENTIALS)
    bench(60, 5.0) if args.smoke else bench(args.runs, args.latency_ms)


if __name__ == "__main__":
    main()
