"""read_tree on an object store through the latency proxy (tests/s3_latency.py): each file in at
most two requests, many in flight, and a tree of a few hundred files read much faster than one
file at a time, with the same runs, order and invalid files."""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fmnist_ray.store import tree as tree_module
from fmnist_ray.store.storage import locate
from fmnist_ray.store.tree import read_tree

REPO = Path(__file__).resolve().parents[1]
N = 200


def committed_runs(n: int = N) -> list[tuple[str, bytes]]:
    """(path e<k>/runs/<name>, bytes) of n committed run files: every committed run once in e0,
    again in e1, and so on (a run id once per folder, so n files are n distinct files)."""
    files = sorted({p.name: p for p in (REPO / "results").glob("*/runs/*.parquet")}.values())
    data = [path.read_bytes() for path in files]
    return [
        (f"e{i // len(files)}/runs/{files[i % len(files)].name}", data[i % len(files)])
        for i in range(n)
    ]


def fill(root, runs) -> None:
    """The runs at their paths under `root`, and one invalid file."""
    jobs = [(root / path, data) for path, data in runs]
    jobs.append((root / "bad" / "runs" / "0123456789ab.parquet", b"not a parquet file"))
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda job: job[0].write_bytes(job[1]), jobs))


def test_read_tree_on_s3_is_parallel_in_few_requests_and_reads_the_same(slow_s3, monkeypatch):
    proxy, uri = slow_s3
    root = locate(uri)
    fill(root, committed_runs())

    proxy.reset()
    start = time.perf_counter()
    tree = read_tree([root], with_bytes=True)
    parallel = time.perf_counter() - start
    reads, most = proxy.requests["GET"] + proxy.requests["HEAD"], proxy.most_in_flight
    assert len(tree.files) == N + 1 and len(tree.runs) + len(tree.invalid) == N + 1
    assert len(tree.runs) > N * 0.8 and "bad/runs" in str(tree.invalid[-1][0])
    written = dict(committed_runs())
    assert all(run.data == written[run.path.path.split("/study/")[1]] for run in tree.runs)

    monkeypatch.setattr(tree_module, "REMOTE_READERS", 1)
    start = time.perf_counter()
    serial = read_tree([root], with_bytes=True)
    serially = time.perf_counter() - start
    print(f"{N + 1} files at 20 ms: {reads} GET/HEAD, most {most} in flight, "
          f"{parallel:.2f} s parallel, {serially:.2f} s serial")  # fmt: skip
    assert reads <= 2 * (N + 1) + 20  # the file reads, plus listings
    assert most > 8
    assert parallel * 4 < serially
    assert [r.path for r in serial.runs] == [r.path for r in tree.runs]
    assert serial.invalid == tree.invalid and serial.files == tree.files
