"""How sure the report is, checked against statsmodels, scipy and textbook tables: the power of
the t-test, the seeds a difference needs, Dunnett's many-to-one test, the pooled sd, the offset of
published values and its sign test; then the same numbers on the report's pages and in `plan`."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from test_report import CLEAR, LEVEL, STUDY_REFERENCE, build_optimizer

from fmnist_ray.reporting import make_report
from fmnist_ray.reporting.stats import (
    DUNNETT,
    POWER,
    detectable,
    dunnett,
    offset,
    pooled_sd,
    sd_range,
    seeds_needed,
    t_power,
)
from fmnist_ray.spec.grid import load_experiment, with_seeds

# Dunnett (1955), Table 1 (blood counts): a control and two drugs; the example scipy documents.
CONTROL = [7.40, 8.50, 7.20, 8.24, 9.84, 8.32]
DRUG_A = [9.76, 8.80, 7.68, 9.36]
DRUG_B = [12.80, 9.68, 12.16, 9.20, 10.55]


@pytest.mark.parametrize(
    "effect, sd, n, alpha", [(0.5, 0.4, 3, 0.05), (0.5, 0.3, 13, 0.05 / 8), (1.0, 0.4, 6, 0.025)]
)
def test_t_power_matches_statsmodels(effect, sd, n, alpha):
    # Paired: the differences of two independent arms have sd sd * sqrt(2); one-sample t on them.
    paired = TTestPower().power(effect_size=effect / (sd * math.sqrt(2)), nobs=n, alpha=alpha)
    assert t_power(effect, sd, n, alpha, paired=True) == pytest.approx(paired, rel=1e-6)
    unpaired = TTestIndPower().power(effect_size=effect / sd, nobs1=n, alpha=alpha, ratio=1.0)
    assert t_power(effect, sd, n, alpha, paired=False) == pytest.approx(unpaired, rel=1e-6)


def test_seeds_needed_matches_cohen_s_table_and_statsmodels():
    # Cohen (1988), Table 2.4.1: d = 0.5, two-sided alpha 0.05, power 0.80 -> 64 per group.
    assert seeds_needed(0.5, 1.0, 0.05, paired=False) == 64
    # A paired test on differences with d = 0.5 (one-sample t): 34 pairs (33.4 rounded up).
    sd = 1.0 / math.sqrt(2)  # so that the differences have sd 1
    assert seeds_needed(0.5, sd, 0.05, paired=True) == 34
    exact = TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=POWER)
    assert 33 < exact < 34
    assert seeds_needed(0.001, 1.0, 0.05) is None  # more than MOST_SEEDS: said, not looped on


def test_detectable_is_the_difference_with_80_percent_power():
    found = detectable(0.004, 3, 0.05 / 8)
    assert t_power(found, 0.004, 3, 0.05 / 8) == pytest.approx(POWER, abs=1e-6)
    d = TTestPower().solve_power(nobs=10, alpha=0.05, power=POWER)  # in sd of the differences
    assert detectable(1.0, 10, 0.05, paired=True) == pytest.approx(d * math.sqrt(2), rel=1e-4)
    two = TTestIndPower().solve_power(nobs1=10, alpha=0.05, power=POWER, ratio=1.0)  # in sd
    assert detectable(1.0, 10, 0.05) == pytest.approx(two, rel=1e-4)  # the default: two-sample
    assert math.isnan(detectable(0.0, 3, 0.05)) and math.isnan(detectable(1.0, 1, 0.05))


def test_pooled_sd_by_hand():
    # sums of squares 2 (df 2) and 8 (df 2, the 2, 4, 6 sample): variance 10 / 4.
    sd, df = pooled_sd([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [5.0]])
    assert df == 4 and sd == pytest.approx(math.sqrt(10 / 4))
    assert pooled_sd([[1.0]]) == (pytest.approx(math.nan, nan_ok=True), 0)


def test_dunnett_matches_scipy_and_dunnett_s_table():
    found = dunnett({"a": DRUG_A, "b": DRUG_B, "one": [3.0]}, CONTROL)
    assert set(found) == {"a", "b"}  # a sample of one value is left out
    reference = scipy_stats.dunnett(DRUG_A, DRUG_B, control=CONTROL, rng=0)
    interval = reference.confidence_interval()
    for i, key in enumerate("ab"):
        c = found[key]
        assert c.test == DUNNETT and c.p_value == c.p_adjusted
        assert c.p_value == pytest.approx(reference.pvalue[i], abs=2e-3)
        assert (c.diff_low, c.diff_high) == pytest.approx((interval.low[i], interval.high[i]), 1e-3)
    # scipy's documented result for this example: p = 0.620 and 0.0059; drug B differs.
    assert found["a"].p_value == pytest.approx(0.620, abs=2e-3)
    assert found["b"].p_value == pytest.approx(0.0059, abs=5e-4)
    # Dunnett's table, two-sided 95%, 2 treatments and 12 df, equal n: critical value 2.50.
    groups = [np.arange(5.0) * s for s in (1.0, 1.3, 0.8)]  # 3 groups of 5: df 12
    c = dunnett({"1": groups[1], "2": groups[2]}, groups[0])["1"]
    sd, df = pooled_sd(groups)
    assert df == 12
    half = (c.diff_high - c.diff_low) / 2
    assert half / (sd * math.sqrt(2 / 5)) == pytest.approx(2.50, abs=0.005)


def test_offset_and_sign_test_by_hand():
    published, ours = [0.90, 0.91, 0.89, 0.92, 0.88], [0.89, 0.90, 0.89, 0.90, 0.89]
    found = offset(published, ours)  # differences 0.01, 0.01, 0, 0.02, -0.01
    assert found.n == 5 and found.mean == pytest.approx(0.006)
    assert (found.higher, found.lower) == (3, 1)  # the tie is left out of the sign test
    assert found.sign_p == pytest.approx(2 * (1 + 4) / 16)  # 2 * P(X >= 3), X ~ B(4, 1/2)
    half = scipy_stats.t.ppf(0.975, 4) * np.std([0.01, 0.01, 0, 0.02, -0.01], ddof=1) / math.sqrt(5)
    assert (found.ci_low, found.ci_high) == pytest.approx((0.006 - half, 0.006 + half))


def test_a_3_run_sd_pins_little():
    low, high = sd_range(2)  # chi-square with 2 df: sqrt(2 / 7.378) and sqrt(2 / 0.0506)
    assert low == pytest.approx(0.521, abs=1e-3) and high == pytest.approx(6.29, abs=0.01)


# ---------------------------------------------------------------------------- on the pages

NEAR = {  # both arms a little above adam: sgd p < 0.05 alone (Welch), not after Holm
    "adam": [0.880, 0.884, 0.889],
    "sgd": [0.891, 0.895, 0.899],  # +1.07 pp: Welch p = 0.038, Holm 0.076
    "rmsprop": [0.882, 0.890, 0.893],  # +0.40 pp: Welch p = 0.40
}


def finals(values: dict[str, list[float]]) -> list[list[float]]:
    return [list(v) for v in values.values()]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two optimizer experiments under one root (CLEAR and NEAR) and a report over both."""
    root = tmp_path_factory.mktemp("two") / "results"
    build_optimizer(root / "optimizer", CLEAR)
    build_optimizer(root / "near", NEAR)
    return root, make_report([root], reference=STUDY_REFERENCE, effect=0.004)


def test_summary_says_what_the_seeds_can_detect_and_how_many_a_difference_needs(two):
    _, result = two
    power = result.experiments["optimizer"].power
    sd, df = pooled_sd(finals(CLEAR))
    assert (power.sd, power.df, power.comparisons, power.seeds) == (pytest.approx(sd), 6, 2, 3)
    assert power.detectable == pytest.approx(detectable(sd, 3, 0.05 / 2))
    assert power.seeds_needed == seeds_needed(0.004, sd, 0.05 / 2)
    page = (result.out_dir / "optimizer" / "summary.md").read_text()
    assert "## What these seeds can see" in page
    assert f"{power.detectable * 100:.2f} pp" in page
    assert f"seeds per arm to detect 0.40 pp: {power.seeds_needed} (" in page
    low, high = sd_range(df)
    needed = [seeds_needed(0.004, sd * k, 0.05 / 2) for k in (low, high)]
    assert (power.seeds_low, power.seeds_high) == tuple(needed)
    index = result.index_md.read_text()
    rows = [line for line in index.splitlines() if line.startswith("| [optimizer]")]
    row = rows[1]  # the first is the verdicts table's, the second the power table's
    cell = f"{power.seeds_needed} ({power.seeds_low} to {power.seeds_high})"
    assert f"| {power.detectable * 100:.2f} | {cell} |" in row


def test_other_analyses_and_the_unadjusted_ci_sentence(two):
    _, result = two
    near = result.experiments["near"]
    sgd = next(a for a in near.arms if a.label == "optimizer=sgd")
    c = sgd.comparison
    assert c.p_value < 0.05 < c.p_adjusted and c.diff_low > 0
    page = (result.out_dir / "near" / "summary.md").read_text()
    assert "Not significant although the 95% CI of Δ excludes 0" in page
    assert "- optimizer=sgd: Δ +1.07 pp" in page
    assert "- optimizer=rmsprop" not in page  # its CI includes 0: nothing to explain
    assert "## The other analyses" in page and "Dunnett simultaneous 95% CI (pp)" in page
    reference = scipy_stats.dunnett(*finals(NEAR)[1:], control=NEAR["adam"], rng=0)
    assert sgd.pooled.p_adjusted == pytest.approx(reference.pvalue[0], abs=2e-3)
    welch = scipy_stats.ttest_ind(NEAR["sgd"], NEAR["adam"], equal_var=False).pvalue
    assert c.test == "Welch t" and c.p_value == pytest.approx(welch)
    paired = scipy_stats.ttest_rel(NEAR["sgd"], NEAR["adam"]).pvalue  # beside it, same seeds
    assert sgd.paired.test == "paired t" and sgd.paired.p_value == pytest.approx(paired)


def test_index_holm_over_every_comparison_and_the_reference_offset(two):
    _, result = two
    arms = [a for r in result.experiments.values() for a in r.arms if a.comparison]
    assert len(arms) == 4
    p = sorted(a.comparison.p_value for a in arms)
    smallest = min(arms, key=lambda a: a.comparison.p_value)
    assert smallest.comparison.p_study == pytest.approx(min(1.0, 4 * p[0]))
    index = result.index_md.read_text()
    assert "| Holm p, all 4 |" in index and "## Across the report" in index
    # The study's reference values for optimizer: adam, sgd and rmsprop, twice (both folders).
    checks = [c for r in result.experiments.values() for c in r.references]
    accuracy = [c for c in checks if c.reference.metric == "test_acc"]
    expected = offset([c.reference.value for c in accuracy], [c.ours.mean for c in accuracy])
    line = next(line for line in index.splitlines() if line.startswith("| test accuracy |"))
    assert line.startswith(
        f"| test accuracy | {expected.n} | {expected.mean * 100:+.2f} pp".replace("-", "\u2212")
    )
    assert f"| {expected.higher} | {expected.lower} |" in line
    assert "the true sd may be from 0.52 to 6.3 times the one measured" in index


def test_report_effect_option(tmp_path):
    exp_dir = build_optimizer(tmp_path / "optimizer", LEVEL)
    cli = [sys.executable, "-m", "fmnist_ray", "report", str(exp_dir), "--out", str(tmp_path / "o")]
    done = subprocess.run([*cli, "--effect", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sd, _ = pooled_sd(finals(LEVEL))
    page = (tmp_path / "o" / "optimizer" / "summary.md").read_text()
    assert f"seeds per arm to detect 2.00 pp: {seeds_needed(0.02, sd, 0.025)} (" in page
    bad = subprocess.run([*cli, "--effect", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--effect" in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------- plan --seeds-for


def test_with_seeds_keeps_the_runs_it_has(tmp_path):
    file = tmp_path / "lr.toml"
    file.write_text("seeds = [0, 2]\n[base]\nepochs = 3\n[grid]\nlr = [0.001, 0.002]\n")
    experiment = load_experiment(file)
    bigger = with_seeds(experiment, 4)
    assert bigger.seeds == (0, 2, 1, 3) and len(bigger.runs) == 8
    assert {cfg.run_id for cfg in experiment.runs} < {cfg.run_id for cfg in bigger.runs}


def test_plan_seeds_for_sizes_an_experiment_from_its_results(tmp_path):
    root = tmp_path / "results"
    build_optimizer(root / "optimizer", CLEAR)
    planned = tmp_path / "optimizer.toml"
    planned.write_text((root / "optimizer" / "experiment.toml").read_text())
    unrun = tmp_path / "longer.toml"  # a base case (epochs 5) with no results anywhere
    unrun.write_text("seeds = [0, 1, 2]\n[base]\nepochs = 5\n[grid]\ndropout = [false, true]\n")
    new = tmp_path / "lr.toml"  # not run yet, but its base case (adam, lr 0.001) has results
    new.write_text("seeds = [0, 1, 2]\n[base]\nepochs = 3\n[grid]\nlr = [0.001, 0.002, 0.004]\n")
    cli = [sys.executable, "-m", "fmnist_ray", "plan", str(planned), str(new), str(unrun)]
    cli += ["--results", str(root), "--slots", "2", "--seeds-for"]
    done = subprocess.run([*cli, "0.5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sd, _ = pooled_sd(finals(CLEAR))
    needed = seeds_needed(0.005, sd, 0.05 / 2)
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("optimizer"))
    assert row[:8] == ["optimizer", "3", f"{sd * 100:.2f}", "6", "2",
                       f"{detectable(sd, 3, 0.025) * 100:.2f}", str(needed), str(3 * needed)]  # fmt: skip
    assert row[8] == str(3 * needed - 9)  # the 9 runs done are not counted again
    # The new file: sd from its base case alone (2 df), Holm over the 2 arms it plans.
    base_sd = float(np.std(CLEAR["adam"], ddof=1))
    lr_needed = seeds_needed(0.005, base_sd, 0.05 / 2)
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("lr "))
    assert row[2:7] == [f"{base_sd * 100:.2f}", "2", "2", f"{detectable(base_sd, 3, 0.025) * 100:.2f}",
                        str(lr_needed)]  # fmt: skip
    assert row[7:9] == [str(3 * lr_needed), str(3 * lr_needed - 3)]  # 3 base runs exist
    assert "longer: no results for its base case" in done.stdout
    bad = subprocess.run([*cli, "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--seeds-for" in bad.stderr
