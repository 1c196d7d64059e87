"""Check a report's numbers against an independent computation from the Parquet files alone
(pyarrow + scipy, none of fmnist_ray's report code): per arm, the mean final test accuracy, the
95% t interval, and Welch's p-value against the base arm, as printed in summary.md.

    fmnist-ray run benchmarks/verify_report.toml --data-dir ../shared/data
    fmnist-ray report results/verify_report
    python benchmarks/verify_report.py results/verify_report --axis pooling --base avg
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats


def final_accuracies(results: Path, axis: str) -> dict[str, list[float]]:
    """Arm value -> final-epoch test accuracy of each ok run, straight from the files."""
    arms: dict[str, list[float]] = {}
    for path in sorted((results / "runs").glob("*.parquet")):
        table = pq.read_table(path)
        last = table.filter(pc.equal(table["epoch"], pc.max(table["epoch"])))
        if last["status"][0].as_py() == "ok":
            arms.setdefault(str(last[axis][0].as_py()), []).append(last["test_acc"][0].as_py())
    return arms


def reported_rows(summary: Path, axis: str) -> dict[str, list[str]]:
    rows = {}
    for line in summary.read_text().splitlines():
        match = re.match(rf"\| {axis}=(\S+)[^|]*\|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--axis", required=True)
    parser.add_argument("--base", required=True, help="the axis value of the base case")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    report = args.report or args.results / "report" / args.results.name / "summary.md"
    arms = final_accuracies(args.results, args.axis)
    rows = reported_rows(report, args.axis)
    base = np.array(arms[args.base])
    print("| arm | n | mean % (indep.) | 95% CI % (indep.) | Welch p (indep.) | report row |")
    print("|---|---|---|---|---|---|")
    mismatches = 0
    for value, accs in arms.items():
        x = np.array(accs)
        n, mean, sd = len(x), x.mean(), x.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        p = stats.ttest_ind(x, base, equal_var=False).pvalue if value != args.base else float("nan")
        mine = [f"{100 * mean:.2f}", f"[{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]"]
        theirs = rows[value]
        ok = theirs[2] == mine[0] and theirs[3] == mine[1]
        if value != args.base:
            ok &= math.isclose(float(theirs[5]), p, rel_tol=5e-3)
        mismatches += not ok
        print(f"| {args.axis}={value} | {n} | {mine[0]} | {mine[1]} | {p:.3g} | "
              f"{' / '.join(theirs[2:6])} | {'match' if ok else 'MISMATCH'} |")  # fmt: skip
    print("\nall numbers match" if not mismatches else f"\n{mismatches} arm(s) differ")
    raise SystemExit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
