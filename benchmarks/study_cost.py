"""What the committed study cost, read from its results: run-hours (each unique run's start to
end, from its metadata), the wall time of each `run` process that trained it (grouped by the
git commit the runs record), and `plan`'s estimate (fmnist_ray.planning.cost) against what each
experiment's runs took.

    python benchmarks/study_cost.py [--results results] [--slots 2] [--smoke]

It only reads result files (about a second), so `--smoke` runs it as it is.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from fmnist_ray.planning.cost import estimate_seconds, makespan
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import find_run_files, read_metadata, run_span

REPO = Path(__file__).resolve().parents[1]
STUDY_DIR = REPO / "experiments" / "study"
STUDY = sorted(p.stem for p in STUDY_DIR.glob("*.toml"))


def runs(results: Path) -> dict[str, dict]:
    """Unique runs (by id) of the study's experiments: first experiment, span, estimate."""
    out: dict[str, dict] = {}
    for name in STUDY:
        for path in find_run_files([results / name]):
            if path.stem in out:  # a shared run, already read from an earlier experiment
                continue
            meta = read_metadata(path)
            start, end = run_span(meta)
            cfg = RunConfig.model_validate(meta["config"])
            out[path.stem] = {"experiment": meta.get("first_filed_in", name),
                              "commit": meta["git_commit"], "start": start, "end": end,
                              "seconds": (end - start).total_seconds(),
                              "estimate": estimate_seconds(cfg)}  # fmt: skip
    return out


def grouped(found: dict[str, dict], key: str) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for run in found.values():
        groups[run[key]].append(run)
    return groups


def print_processes(found: dict[str, dict], slots: int) -> None:
    print("| run process (git commit) | runs | first start | last end | wall |")
    print("|---|---|---|---|---|")
    spans = [(min(r["start"] for r in group), max(r["end"] for r in group), commit, len(group))
             for commit, group in grouped(found, "commit").items()]  # fmt: skip
    for first, last, commit, count in sorted(spans):
        print(f"| {str(commit)[:7]} | {count} | {first:%H:%M:%S} | {last:%H:%M:%S} "
              f"| {str(last - first).split('.')[0]} |")  # fmt: skip
    wall = sum((last - first).total_seconds() for first, last, _, _ in spans)
    estimate = makespan([r["estimate"] for r in found.values()], slots)
    print(f"\nwall in all: {wall / 3600:.2f} h; plan's estimate for {slots} slots, "
          f"longest first: {estimate / 3600:.2f} h\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="the same: it trains nothing")
    args = parser.parse_args()
    if args.smoke:
        print("smoke mode: the full computation (it only reads result files)\n")
    found = runs(args.results)
    if not found:
        raise SystemExit(f"no run of the study's experiments under {args.results}")
    took = sum(r["seconds"] for r in found.values())
    guess = sum(r["estimate"] for r in found.values())
    print(f"{len(found)} unique runs: {took / 3600:.2f} run-hours; plan estimated "
          f"{guess / 3600:.2f} (actual / estimate {took / guess:.2f})\n")  # fmt: skip
    print_processes(found, args.slots)
    print("| experiment (first filed in) | runs | run-hours | estimated | actual / estimate |")
    print("|---|---|---|---|---|")
    for name, group in sorted(grouped(found, "experiment").items()):
        t, e = sum(r["seconds"] for r in group), sum(r["estimate"] for r in group)
        print(f"| {name} | {len(group)} | {t / 3600:.2f} | {e / 3600:.2f} | {t / e:.2f} |")


if __name__ == "__main__":
    main()
