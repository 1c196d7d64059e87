"""`plan` and the report's reader over an N-run results tree on a local S3 server (moto) behind a
proxy that delays every request (tests/s3_latency.py, in a process of its own): requests per file,
the most in flight, seconds, and the CPU seconds of the reader, the S3 server and the proxy apart
(on one box they share its cores; a real store's do not), beside one file read the old way
(pq.read_table on the store: HEAD and ranged GETs).
Then runs landing on that store: a grid of runs that train in no time on S logical slots, through
`run_grid`, written by one writer (as the driver did before) and by the pool of writers.

    python benchmarks/bench_store.py [--runs 2000] [--latency-ms 30] [--land 1000] [--slots 16]
                                     [--smoke]
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
from s3_latency import ProxyProcess  # noqa: E402
from test_tree_reads import committed_runs, fill  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc: the S3 server's and the proxy's
    share of this machine's cores, which a real object store would not take."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(proxy: ProxyProcess, label: str, files: int, work, server: int) -> None:
    """One reading: wall seconds, requests per file, the most in flight, and the CPU seconds of
    the reader (this process), the S3 server and the proxy while it ran."""
    proxy.reset()
    pids = (server, proxy.process.pid)
    start, cpu, before = time.perf_counter(), time.process_time(), list(map(cpu_seconds, pids))
    work()
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    store, relay = (after - then for after, then in zip(map(cpu_seconds, pids), before))
    print(f"{label:<34} {took:7.2f} s  {proxy.total / files:5.2f} requests/file  "
          f"most in flight {proxy.most_in_flight:3d}  ({proxy.total} requests, {files} files)  "
          f"CPU s: reader {cpu:.1f}, S3 server {store:.1f}, proxy {relay:.1f}")  # fmt: skip


def instant(cfg, data, device, on_epoch=None):
    """A run that trains in no time: the driver's landing is all there is to time."""
    from fmnist_ray.spec.result import RunResult

    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.5, "test_acc": 0.8,
           "last_lr": cfg.lr, "seconds": 0.0, "images_per_s": 1.0}  # fmt: skip
    return RunResult(history=[row])


def landing(proxy: ProxyProcess, uri: str, runs: int, writers: int, work: Path) -> None:
    """`runs` instant runs written under `uri`; the landing rate over the grid's second half
    (from the middle run's end to the grid's end: the trainers' start-up is left out)."""
    import numpy as np

    from fmnist_ray.planning.plan import make_plan, prepare
    from fmnist_ray.runner import dispatch
    from fmnist_ray.runner.driver import run_grid
    from fmnist_ray.spec.grid import load_experiments
    from fmnist_ray.store.tree import read_tree
    from fmnist_ray.training.data import FashionMNIST

    dispatch.WRITERS = writers
    folder = work / f"w{writers}"
    folder.mkdir()
    (folder / "land.toml").write_text(
        f'seeds = {list(range(runs))}\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ncpus = 1\n'
    )
    images, labels = np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64)
    data = FashionMNIST(images, labels, images, labels, "blank")
    plan = make_plan(load_experiments([folder]), uri)
    prepare(plan)
    proxy.reset()
    with open(os.devnull, "w") as quiet:
        outcome = run_grid(plan, data, train_fn=instant, stream=quiet)
    end, requests, most = time.time(), proxy.total, proxy.most_in_flight
    assert outcome.exit_code == 0 and len(outcome.trained) == runs, outcome
    ends = sorted(run.span[1].timestamp() for run in read_tree([uri]).runs)
    half = ends[len(ends) // 2]
    rate = (len(ends) - len(ends) // 2) / (end - half)
    print(f"{writers:>2} writer{'s' if writers > 1 else ' '}: {rate:7.1f} runs/s landed over the "
          f"second half, {requests / runs:.2f} requests/run, most in flight "
          f"{most}", flush=True)  # fmt: skip


def bench_landing(runs: int, slots: int, latency_ms: float) -> None:
    import tempfile

    import ray
    from pyarrow.fs import S3FileSystem

    server, address = start_s3_server()
    ray.init(num_cpus=slots, include_dashboard=False, logging_level="ERROR")
    try:
        S3FileSystem(
            endpoint_override=address, scheme="http", allow_bucket_creation=True
        ).create_dir("land")
        print(f"{runs} instant runs on {slots} slots, results on S3 at {latency_ms:g} ms per "
              "request:", flush=True)  # fmt: skip
        with (
            ProxyProcess(address, delay_ms=latency_ms) as proxy,
            tempfile.TemporaryDirectory() as work,
        ):
            for writers in (1, 16):
                uri = f"s3://land/w{writers}?endpoint_override={proxy.address}&scheme=http"
                landing(proxy, uri, runs, writers, Path(work))
    finally:
        ray.shutdown()
        server.terminate()
        server.wait(timeout=30)


def local_reads(runs: int) -> None:
    """The readers' own work: the same tree on a local disk (no server, no proxy, no waiting)."""
    import tempfile

    from fmnist_ray.reporting.load import load_tree
    from fmnist_ray.store.storage import locate
    from fmnist_ray.store.tree import read_tree

    with tempfile.TemporaryDirectory() as work:
        root = locate(str(Path(work) / "study"))
        fill(root, committed_runs(runs))
        for label, read in (("read_tree", lambda: read_tree([root])),
                            ("report's reader (load_tree)", lambda: load_tree([root.path]))):  # fmt: skip
            wall, cpu = time.perf_counter(), time.process_time()
            read()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{label + ', local copy':<34} {wall:7.2f} s  {cpu:6.2f} s CPU  ({runs + 1} files)"
            )


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
        with ProxyProcess(address, delay_ms=latency_ms) as proxy:
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
                server.pid,
            )
            measure(proxy, "read_tree (load, export)", files, lambda: read_tree([root]), server.pid)
            exp = load_experiment(REPO / "experiments" / "study" / "pooling.toml")
            measure(
                proxy, "plan (pooling: 6 runs)", files, lambda: make_plan([exp], root), server.pid
            )
            measure(
                proxy, "report's reader (load_tree)", files, lambda: load_tree([uri]), server.pid
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--smoke", action="store_true", help="60 runs at 5 ms, 12 landed")
    parser.add_argument("--land", type=int, default=1000, help="runs landed (0: none)")
    parser.add_argument("--slots", type=int, default=16, help="logical CPUs for the landing")
    parser.add_argument("--data-dir", help="unused (the tree is made of committed run files)")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.latency_ms, args.land, args.slots = 60, 5.0, 12, 2
    os.environ.update(S3_CREDENTIALS)
    if args.runs:
        bench(args.runs, args.latency_ms)
        local_reads(args.runs)
    if args.land:
        bench_landing(args.land, args.slots, args.latency_ms)


if __name__ == "__main__":
    main()
