"""Check a report's numbers against an independent computation from the Parquet files alone
(pyarrow + scipy, none of fmnist_ray's report code): per arm the mean final test accuracy and
its 95% t interval, and against the base arm the difference with its 95% CI and the p-value of
Welch's test (the report's default), raw and Holm-adjusted over the arms, as printed in
summary.md.

    fmnist-ray run benchmarks/verify_report.toml --data-dir ../shared/data
    fmnist-ray report results/verify_report
    python benchmarks/verify_report.py results/verify_report --axis pooling --base avg

`--smoke` (no other arguments): report the committed study's `results/optimizer` afresh into a
temporary folder with `fmnist-ray report` and check that report (no training).
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats


def final_accuracies(results: Path, axis: str) -> dict[str, dict[int, float]]:
    """Arm value -> {seed: final-epoch test accuracy} of each ok run, straight from the files."""
    arms: dict[str, dict[int, float]] = {}
    for path in sorted((results / "runs").glob("*.parquet")):
        table = pq.read_table(path)
        last = table.filter(pc.equal(table["epoch"], pc.max(table["epoch"])))
        if last["status"][0].as_py() == "ok":
            arm = arms.setdefault(str(last[axis][0].as_py()), {})
            arm[last["seed"][0].as_py()] = last["test_acc"][0].as_py()
    return arms


def comparison(
    x: dict[int, float], base: dict[int, float]
) -> tuple[str, float, float, float, float]:
    """(test, diff, CI low, CI high, p) of an arm against the base, computed with scipy."""
    result = stats.ttest_ind(list(x.values()), list(base.values()), equal_var=False)
    test = "Welch t"
    low, high = result.confidence_interval()
    return test, np.mean(list(x.values())) - np.mean(list(base.values())), low, high, result.pvalue


def holm(p: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment, written out independently of the report's."""
    adjusted, running = {}, 0.0
    for rank, (name, value) in enumerate(sorted(p.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (len(p) - rank) * value))
        adjusted[name] = running
    return adjusted


def reported_rows(summary: Path, axis: str) -> dict[str, dict[str, str]]:
    """Arm value -> {column header: cell} of the summary's arm table."""
    header, rows = None, {}
    for line in summary.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == "arm" and header is None:
            header = cells
        match = re.match(rf"{axis}=(\S+)", cells[0])
        if header and match and len(cells) == len(header):
            rows[match.group(1)] = dict(zip(header, cells, strict=True))
    return rows


def p_matches(cell: str, p: float) -> bool:
    """The report prints p to 3 significant digits, and '<0.001' below that."""
    if cell.startswith("<"):
        return p < float(cell[1:])
    return math.isclose(float(cell), p, rel_tol=5e-3)


def shown_as(cell: str, values: list[float]) -> bool:
    """Whether the numbers of a cell are `values` to 2 decimals (within rounding: a value at
    x.xx5 may round either way, as two exact ways to compute it differ in the last bit)."""
    shown = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", cell.replace("\u2212", "-"))]
    return len(shown) == len(values) and all(abs(a - b) <= 0.0051 for a, b in zip(shown, values))


SMOKE_RESULTS = Path(__file__).resolve().parents[1] / "results" / "optimizer"


def smoke() -> None:
    """Report the committed `results/optimizer` into a temporary folder and check that."""
    print(f"smoke mode: a fresh report of {SMOKE_RESULTS} (committed runs, no training)\n")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "fmnist_ray", "report", str(SMOKE_RESULTS), "--out", tmp]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        check(SMOKE_RESULTS, "optimizer", "adam", Path(tmp) / SMOKE_RESULTS.name / "summary.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, nargs="?")
    parser.add_argument("--axis")
    parser.add_argument("--base", help="the axis value of the base case")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="check a fresh report of results/optimizer"
    )
    args = parser.parse_args()
    if args.smoke:
        return smoke()
    if not (args.results and args.axis and args.base):
        parser.error("RESULTS, --axis and --base are required (or --smoke)")
    report = args.report or args.results / "report" / args.results.name / "summary.md"
    check(args.results, args.axis, args.base, report)


def check(results: Path, axis: str, base_value: str, report: Path) -> None:
    """Print the independent numbers beside the report's; exit 1 if any arm differs."""
    arms = final_accuracies(results, axis)
    rows = reported_rows(report, axis)
    base = arms[base_value]
    tests = {value: comparison(x, base) for value, x in arms.items() if value != base_value}
    adjusted = holm({value: test[4] for value, test in tests.items()})
    print("| arm | n | mean % | 95% CI % | test | Δ pp [95% CI] | p | Holm p | (independent) |")
    print("|---|---|---|---|---|---|---|---|---|")
    mismatches = 0
    for value, seeds in arms.items():
        x = np.array(list(seeds.values()))
        n, mean, sd = len(x), x.mean(), x.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        row = rows[value]
        mine = [f"{100 * mean:.2f}", f"[{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]"]
        ok = [row["test acc (%)"], row["95% CI (%)"]] == mine
        if value in tests:
            test, diff, low, high, p = tests[value]
            delta = f"{100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
            ok &= row["test"] == test
            ok &= shown_as(row["Δ vs base, 95% CI (pp)"], [100 * diff, 100 * low, 100 * high])
            ok &= p_matches(row["p"], p) and p_matches(row["Holm p"], adjusted[value])
            mine += [test, delta, f"{p:.3g}", f"{adjusted[value]:.3g}"]
        else:
            mine += ["(base)", "–", "–", "–"]
        mismatches += not ok
        print(f"| {axis}={value} | {n} | " + " | ".join(mine)
              + f" | {'match' if ok else 'MISMATCH'} |")  # fmt: skip
    print("\nall numbers match" if not mismatches else f"\n{mismatches} arm(s) differ")
    raise SystemExit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
