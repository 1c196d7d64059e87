"""The report's statistics against hand calculations, textbook examples and scipy: intervals,
paired and Welch t-tests with the CI of a difference, and Holm's adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fmnist_ray.reporting.stats import (
    PAIRED,
    WELCH,
    compare,
    holm,
    paired,
    paired_by_seed,
    pairing_threshold,
    seed_correlation,
    summarize,
    welch,
)

# Welch's t-test, Example 1 of https://en.wikipedia.org/wiki/Welch%27s_t-test:
# t = -2.46, df = 25.0, p = 0.021.
WELCH_A1 = [
    27.5,
    21.0,
    19.0,
    23.6,
    17.0,
    17.9,
    16.9,
    20.1,
    21.9,
    22.6,
    23.1,
    19.6,
    19.0,
    21.7,
    21.4,
]
WELCH_A2 = [
    27.1,
    22.0,
    20.8,
    23.4,
    23.4,
    23.5,
    25.8,
    22.0,
    24.8,
    20.2,
    21.9,
    22.1,
    22.9,
    20.5,
    24.4,
]


def test_summary_intervals_by_hand():
    result = summarize([0.80, 0.82, 0.84])  # mean 0.82, s = 0.02; t(0.975, df=2) = 4.303
    assert (
        result.n == 3 and result.mean == pytest.approx(0.82) and result.std == pytest.approx(0.02)
    )
    assert result.ci_high - result.mean == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    # One new run: sqrt(1 + 1/n) instead of sqrt(1/n), so twice as wide here (sqrt(4) = 2).
    assert result.pi_high - result.mean == pytest.approx(4.303 * 0.02 * math.sqrt(4 / 3), rel=1e-3)
    assert result.mean - result.pi_low == pytest.approx(2 * (result.mean - result.ci_low))


def test_paired_t_by_hand_and_against_scipy():
    arm, base = [10.0, 12.0, 11.0, 14.0], [8.0, 9.0, 9.0, 10.0]
    # d = 2, 3, 2, 4: mean 2.75, s_d = sqrt(2.75 / 3), t = 2.75 / (s_d / 2) = 5.745 on 3 df.
    result = paired(arm, base)
    assert result.test == PAIRED and result.n == result.base_n == 4
    assert result.diff == pytest.approx(2.75)
    half = 3.182 * math.sqrt(2.75 / 3) / 2  # t(0.975, 3) = 3.182 from tables
    assert (result.diff_low, result.diff_high) == pytest.approx(
        (2.75 - half, 2.75 + half), rel=1e-3
    )
    reference = scipy_stats.ttest_rel(arm, base)
    assert reference.statistic == pytest.approx(5.745, abs=1e-3)
    assert result.p_value == pytest.approx(reference.pvalue)
    low, high = reference.confidence_interval()
    assert (result.diff_low, result.diff_high) == pytest.approx((low, high))
    assert result.p_value < welch(arm, base).p_value  # pairing removes the shared spread


def test_welch_textbook_example_and_ci_of_the_difference():
    result = welch(WELCH_A2, WELCH_A1)
    assert result.test == WELCH and result.p_value == pytest.approx(0.021, abs=5e-4)
    assert result.diff == pytest.approx(np.mean(WELCH_A2) - np.mean(WELCH_A1))
    reference = scipy_stats.ttest_ind(WELCH_A2, WELCH_A1, equal_var=False)
    low, high = reference.confidence_interval()
    assert (result.diff_low, result.diff_high) == pytest.approx((low, high))


def test_ci_of_a_difference_by_hand():
    # means 2 and 6; variances of the means 1/3 and 4/3; se = sqrt(5/3);
    # Welch-Satterthwaite df = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2) = 50/17.
    result = welch([1.0, 2.0, 3.0], [4.0, 6.0, 8.0])
    half = scipy_stats.t.ppf(0.975, 50 / 17) * math.sqrt(5 / 3)
    assert result.diff == pytest.approx(-4.0)
    assert (result.diff_low, result.diff_high) == pytest.approx((-4.0 - half, -4.0 + half))
    assert result.diff_high > 0  # the interval covers 0: no difference shown at 95%
    assert result.p_value > 0.05


def test_holm_textbook_example():
    # Four hypotheses, alpha 0.05 (Holm 1979; the example of Wikipedia's Holm-Bonferroni page):
    # sorted 0.005, 0.01, 0.03, 0.04 against 0.05/4, 0.05/3, 0.05/2, 0.05: the first two are
    # rejected. Adjusted: 4 * 0.005, 3 * 0.01, 2 * 0.03, then max(1 * 0.04, 0.06).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, math.nan, 0.04])  # an arm without a test does not count in m
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.04)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_compare_is_welch_and_pairs_only_beside_it_when_every_seed_matches():
    base = {0: 0.880, 1: 0.884, 2: 0.889}
    arm = {0: 0.890, 1: 0.893, 2: 0.899}
    same = compare(arm, base)
    assert same.test == WELCH
    assert same.p_value == pytest.approx(
        scipy_stats.ttest_ind([0.890, 0.893, 0.899], [0.880, 0.884, 0.889], equal_var=False).pvalue
    )
    beside = paired_by_seed(arm, base)
    assert beside.test == PAIRED
    assert beside.p_value == pytest.approx(
        scipy_stats.ttest_rel([0.890, 0.893, 0.899], [0.880, 0.884, 0.889]).pvalue
    )
    assert paired_by_seed({0: 0.890, 2: 0.899}, base) is None
    assert paired_by_seed({5: 0.890, 6: 0.893, 7: 0.899}, base) is None
    assert compare({5: 0.890, 6: 0.893, 7: 0.899}, base).test == WELCH


def test_seed_correlation_is_the_icc_of_a_seed_by_arm_anova():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1, size=(200, 1))  # a seed effect as large as the rest: ICC 0.5
    table = shared + rng.normal(0, 1, size=(200, 4)) + np.array([0, 1, 2, 3])
    c = seed_correlation(table)
    assert c.low < 0.5 < c.high and abs(c.icc - 0.5) < 0.1 and c.p < 1e-6
    assert (c.df1, c.df2, c.arms, c.seeds) == (199, 597, 4, 200)
    # The F test of the seed effect is the two-way ANOVA's (arm means removed).
    alone = seed_correlation(rng.normal(0, 1, size=(300, 3)) + np.array([5, 0, 9]))
    assert alone.low < 0 < alone.high and alone.p > 0.001
    assert seed_correlation(np.ones((1, 3))) is None


def test_pairing_threshold_at_three_seeds():
    # t(4) = 2.776, t(2) = 4.303 at 0.975: 1 - (2.776 / 4.303)^2 = 0.584
    assert pairing_threshold(3, 0.05) == pytest.approx(0.584, abs=1e-3)


def test_edges_are_honest():
    single = summarize([0.9])
    assert single.n == 1 and math.isnan(single.std) and math.isnan(single.ci_low)
    assert math.isnan(single.pi_low)
    one = compare({0: 0.9}, {0: 0.8, 1: 0.81})
    assert one.test == "" and one.diff == pytest.approx(0.095) and math.isnan(one.p_value)
    assert math.isnan(welch([0.9, 0.91], [0.8]).p_value)
    flat = welch([0.9, 0.9], [0.9, 0.9])
    assert flat.diff == 0 and math.isnan(flat.p_value) and math.isnan(flat.diff_low)
    shifted = paired([0.9, 0.91], [0.8, 0.81])  # same difference for every pair: no spread
    assert shifted.diff == pytest.approx(0.1) and math.isnan(shifted.p_value)
