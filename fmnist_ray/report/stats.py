"""Statistics over seeds, the report's only use of scipy: mean with 95% confidence and prediction
intervals, paired and Welch t-tests with a 95% CI of the difference, and Holm's adjustment."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats

from .model import Comparison, Summary

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # an adjusted p below this counts as a difference
PAIRED = "paired t"
WELCH = "Welch t"


def _t(df: float) -> float:
    """The two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    return float(scipy_stats.t.ppf((1 + CONFIDENCE) / 2, df))


def summarize(values: Iterable[float]) -> Summary:
    """Mean, sample std, 95% CI of the mean and 95% prediction interval (none below n = 2)."""
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    t = _t(n - 1)
    half_ci, half_pi = t * std / math.sqrt(n), t * std * math.sqrt(1 + 1 / n)
    return Summary(n, mean, std, mean - half_ci, mean + half_ci, mean - half_pi, mean + half_pi)


def _quiet(test, *args, **kwargs) -> float:
    """A scipy test's p-value; identical values give NaN, which the tables show as a dash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(test(*args, **kwargs).pvalue)


def paired(values: Sequence[float], base: Sequence[float]) -> Comparison:
    """Paired t-test: `values[i]` and `base[i]` share a seed. CI = mean(d) -/+ t * sd(d)/sqrt(n)."""
    x, b = np.asarray(values, dtype=float), np.asarray(base, dtype=float)
    if len(x) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(x)} and {len(b)}")
    d = x - b
    n = len(d)
    if n < 2:
        return _untested(x, b)
    # mean(d) = mean(x) - mean(b); computed as the latter so it rounds like the means shown.
    diff, spread = float(x.mean() - b.mean()), float(d.std(ddof=1))
    if spread == 0:  # every pair differs by the same amount: t is infinite or 0/0, no test
        return Comparison(PAIRED, n, n, diff, math.nan, math.nan, math.nan)
    half = _t(n - 1) * spread / math.sqrt(n)
    p = _quiet(scipy_stats.ttest_rel, x, b)
    return Comparison(PAIRED, n, n, diff, diff - half, diff + half, p)


def welch(values: Sequence[float], base: Sequence[float]) -> Comparison:
    """Welch's t-test (unequal variances); CI with the Welch-Satterthwaite degrees of freedom."""
    x, b = np.asarray(values, dtype=float), np.asarray(base, dtype=float)
    if len(x) < 2 or len(b) < 2:
        return _untested(x, b)
    vx, vb = x.var(ddof=1) / len(x), b.var(ddof=1) / len(b)
    se = math.sqrt(vx + vb)
    diff = float(x.mean() - b.mean())
    if se == 0:  # no spread on either side: no interval, no test
        return Comparison(WELCH, len(x), len(b), diff, math.nan, math.nan, math.nan)
    df = (vx + vb) ** 2 / (vx**2 / (len(x) - 1) + vb**2 / (len(b) - 1))
    half = _t(df) * se
    p = _quiet(scipy_stats.ttest_ind, x, b, equal_var=False)
    return Comparison(WELCH, len(x), len(b), diff, diff - half, diff + half, p)


def _untested(x: np.ndarray, b: np.ndarray) -> Comparison:
    diff = float(x.mean() - b.mean()) if len(x) and len(b) else math.nan
    return Comparison("", len(x), len(b), diff, math.nan, math.nan, math.nan)


def compare(values: dict[int, float], base: dict[int, float]) -> Comparison:
    """An arm's final values against the base case's, both keyed by seed: paired when the two
    ran exactly the same seeds (same seed = same data order, and same initial weights when the
    architecture matches), Welch otherwise."""
    if len(values) >= 2 and set(values) == set(base):
        seeds = sorted(values)
        return paired([values[s] for s in seeds], [base[s] for s in seeds])
    return welch(list(values.values()), list(base.values()))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment for len(finite p) comparisons; NaN stays NaN (not counted).

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) * p_(j)) (1-based)."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        adjusted[i] = running
    return adjusted
