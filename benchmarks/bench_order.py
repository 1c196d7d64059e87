"""Longest first vs file order, on a mixed grid written with its long run last: six short runs
(base LeNet-5, 1 epoch) and one several times longer (the study's wide combined model, 1 epoch),
trained twice by the real runner on a 2-CPU local Ray. Prints each order's makespan and the
lower bound max(total work / slots, longest run), from the runs' measured durations.

    python benchmarks/bench_order.py --data-dir ../shared/data [--smoke]

`--smoke`: the same grid on 1,000 training and 500 test images (checks the code; the numbers
mean nothing).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import ray

from fmnist_ray.planning.cost import lower_bound
from fmnist_ray.planning.plan import make_plan, prepare
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.store.results import find_run_files, read_metadata, run_span
from fmnist_ray.training.data import load_fashion_mnist

SLOTS = 2
GRID = """description = "benchmark: six short runs, then one long one (last in the file)"
seeds = [0, 1, 2, 3, 4, 5]
[base]
epochs = 1
[[variants]]
activation = "tanh"
"""
LONG = """description = "benchmark: the long run"
seeds = [0]
[base]
epochs = 1
channels = [32, 64, 256]
pooling = "max"
batchnorm = true
activation = "relu"
"""


def durations(results: Path) -> list[float]:
    spans = []
    for path in find_run_files([results]):
        start, end = run_span(read_metadata(path))
        spans.append((end - start).total_seconds())
    return spans


def one_order(files: list[Path], results: Path, data, longest_first: bool) -> tuple[float, list]:
    plan = make_plan(load_experiments(files), results)
    prepare(plan)
    plan.longest_first = longest_first
    order = [run.config.channels for run in plan.todo]
    start = time.perf_counter()
    outcome = run_grid(plan, data, stream=io.StringIO())
    wall = time.perf_counter() - start
    if outcome.exit_code:
        raise SystemExit(f"grid failed: {outcome.failed}")
    return wall, durations(results), order, plan.wall_seconds(SLOTS)


def both_orders(work: Path, data) -> dict[str, tuple]:
    """Train the grid in file order, then longest first, on one local Ray of SLOTS CPUs."""
    (work / "a_short.toml").write_text(GRID)
    (work / "b_long.toml").write_text(LONG)
    files = [work / "a_short.toml", work / "b_long.toml"]  # the long run last, in file order
    ray.init(address="local", num_cpus=SLOTS, include_dashboard=False, logging_level="ERROR")
    try:
        rows = {}
        for name, longest in (("file order", False), ("longest first", True)):
            rows[name] = one_order(files, work / name.replace(" ", "_"), data, longest)
    finally:
        ray.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    args = parser.parse_args()
    data = load_fashion_mnist(args.data_dir, download=False)
    if args.smoke:
        data = data.subset(1_000, 500)
        print("smoke mode: 1,000 training and 500 test images; the numbers mean nothing")
    with tempfile.TemporaryDirectory(prefix="bench-order-") as tmp:
        rows = both_orders(Path(tmp), data)
    print(
        f"{'order':14s} {'makespan s':>10s} {'bound s':>8s} {'ratio':>6s} {'estimated s':>11s}  first run"
    )
    for name, (wall, spans, order, (estimate, _)) in rows.items():
        bound = lower_bound(spans, SLOTS)
        first = "long" if order[0] == (32, 64, 256) else "short"
        print(f"{name:14s} {wall:10.1f} {bound:8.1f} {wall / bound:6.2f} {estimate:11.1f}  {first}")
    print(
        "bound = max(sum of this pass's run durations / 2 slots, its longest run); "
        "makespan includes the runner's startup per pass"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
