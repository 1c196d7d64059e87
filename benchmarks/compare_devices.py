"""Final test accuracy per run of one experiment trained in two results trees (e.g. on a GPU and
on the CPU), matched by run id, with the device each ran on and the difference.

    python benchmarks/compare_devices.py results/lenet_baseline /tmp/gpu/lenet_baseline

`--smoke` (no folders): compares the committed results/lenet_baseline with results/pooling, which
share the base case's runs (the same files, so every difference is 0): it checks the code.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from fmnist_ray.store.results import find_run_files, read_metadata
from fmnist_ray.store.tree import read_results

RESULTS = Path(__file__).resolve().parents[1] / "results"


def finals(folder: str) -> dict[str, tuple[int, float, float, str]]:
    """run id -> (seed, final test accuracy, seconds per epoch, device)."""
    devices = {}
    for path in find_run_files([folder]):
        meta = read_metadata(path)
        devices[meta["run_id"]] = f"{meta['device']} ({meta['device_name'] or '?'})"
    seconds: dict[str, list[float]] = {}
    final = {}
    for r in read_results([folder]).to_pylist():
        seconds.setdefault(r["run_id"], []).append(r["seconds"])
        if r["epoch"] == r["epochs"]:
            final[r["run_id"]] = r
    return {k: (r["seed"], r["test_acc"], statistics.mean(seconds[k]), devices[k])
            for k, r in final.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a", nargs="?")
    parser.add_argument("b", nargs="?")
    parser.add_argument("--smoke", action="store_true", help="compare two committed folders")
    args = parser.parse_args()
    if args.smoke:
        args.a, args.b = str(RESULTS / "lenet_baseline"), str(RESULTS / "pooling")
        print(f"smoke mode: {args.a} vs {args.b} (the same runs)\n")
    elif not (args.a and args.b):
        parser.error("two results folders are required (or --smoke)")
    a, b = finals(args.a), finals(args.b)
    shared = sorted(set(a) & set(b), key=lambda k: a[k][0])
    if not shared:
        raise SystemExit("no run id is in both folders")
    print("| run id | seed | test acc A | test acc B | B - A (pp) | s/epoch A | s/epoch B |")
    print("|---|---|---|---|---|---|---|")
    for k in shared:
        print(f"| {k} | {a[k][0]} | {a[k][1]:.4f} | {b[k][1]:.4f} | {100 * (b[k][1] - a[k][1]):+.2f} "
              f"| {a[k][2]:.2f} | {b[k][2]:.2f} |")  # fmt: skip
    print(f"\nA: {sorted({a[k][3] for k in shared})}\nB: {sorted({b[k][3] for k in shared})}")
    gaps = [100 * (b[k][1] - a[k][1]) for k in shared]
    print(f"mean B - A: {statistics.mean(gaps):+.2f} pp over {len(gaps)} runs")


if __name__ == "__main__":
    main()
