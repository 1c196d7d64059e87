"""Statistics over seeds, the report's only use of scipy: mean with 95% confidence and prediction
intervals, paired and Welch t-tests with a 95% CI of the difference, Holm's adjustment, Dunnett's
many-to-one test on a pooled variance, the power of the t-test, and a paired offset."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats
from scipy.optimize import brentq

from .model import Comparison, Correlation, Offset, Summary

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # an adjusted p below this counts as a difference
PAIRED = "paired t"
WELCH = "Welch t"
DUNNETT = "Dunnett"
POWER = 0.80  # the chance of detecting a real difference that "detectable" promises
MOST_SEEDS = 100_000  # seeds_needed gives up beyond this (None)
DUNNETT_RNG = 0  # scipy's multivariate t is quasi-random: a fixed seed keeps reports identical


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
    """An arm's final values against the base case's: Welch's two-sample t-test. Runs of the
    same seed share the data order (and the initial weights when the architecture matches), but
    measured on the study they barely correlate (`seed_correlation`), so pairing them buys less
    than the degrees of freedom it costs; the paired test is shown beside it (`paired_by_seed`)."""
    return welch(list(values.values()), list(base.values()))


def paired_by_seed(values: dict[int, float], base: dict[int, float]) -> Comparison | None:
    """The paired t-test over the seeds both ran, when they ran exactly the same ones (2+)."""
    if len(values) < 2 or set(values) != set(base):
        return None
    seeds = sorted(values)
    return paired([values[s] for s in seeds], [base[s] for s in seeds])


def seed_correlation(table: np.ndarray) -> Correlation | None:
    """How alike two arms' runs of the same seed are: ICC(C,1) of a two-way ANOVA (seed x arm,
    rows = seeds, columns = arms, every arm with every seed), with its exact 95% F interval
    (McGraw and Wong 1996) and the p of 'no seed effect'. None below 2 seeds or 2 arms."""
    x = np.asarray(table, dtype=float)
    seeds, arms = x.shape if x.ndim == 2 else (0, 0)
    if seeds < 2 or arms < 2:
        return None
    grand = x.mean()
    ms_seed = arms * float(((x.mean(axis=1) - grand) ** 2).sum()) / (seeds - 1)
    residual = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand
    df1, df2 = seeds - 1, (seeds - 1) * (arms - 1)
    ms_error = float((residual**2).sum()) / df2
    if ms_error == 0:
        return None
    f = ms_seed / ms_error
    tail = (1 - CONFIDENCE) / 2
    f_low = f / float(scipy_stats.f.ppf(1 - tail, df1, df2))
    f_high = f * float(scipy_stats.f.ppf(1 - tail, df2, df1))
    icc = (f - 1) / (f + arms - 1)
    low, high = ((b - 1) / (b + arms - 1) for b in (f_low, f_high))
    p = float(scipy_stats.f.sf(f, df1, df2))
    return Correlation(icc, low, high, f, df1, df2, p, arms, seeds)


def pairing_threshold(n: int, alpha: float) -> float:
    """The seed correlation above which a paired t-test over n seed pairs has a narrower
    critical difference than the two-sample test (df n - 1 against 2(n - 1)):
    1 - (t(2n - 2) / t(n - 1))^2 at two-sided level alpha."""
    paired_t = float(scipy_stats.t.ppf(1 - alpha / 2, n - 1))
    two_sample_t = float(scipy_stats.t.ppf(1 - alpha / 2, 2 * (n - 1)))
    return 1 - (two_sample_t / paired_t) ** 2


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


def pooled_sd(samples: Iterable[Sequence[float]]) -> tuple[float, int]:
    """(sd, df) of the pooled within-sample variance sum((n_i - 1) s_i^2) / sum(n_i - 1), over
    the samples with two values or more; (NaN, 0) when there are none."""
    kept = [np.asarray(x, dtype=float) for x in samples if len(x) >= 2]
    df = sum(len(x) - 1 for x in kept)
    if df == 0:
        return math.nan, 0
    return math.sqrt(sum(float(((x - x.mean()) ** 2).sum()) for x in kept) / df), df


def t_power(effect: float, sd: float, n: int, alpha: float, paired: bool = False) -> float:
    """Power of the two-sided t-test at level `alpha` to detect a true difference `effect`
    between two arms of `n` seeds each whose values have sd `sd`, the arms independent.

    Paired (n pairs): the differences have sd sd*sqrt(2), df = n - 1. Unpaired (two-sample t):
    df = 2(n - 1). Either way the noncentrality is effect / (sd * sqrt(2 / n))."""
    if n < 2 or not sd > 0:
        return math.nan
    df = n - 1 if paired else 2 * (n - 1)
    noncentrality = effect / (sd * math.sqrt(2 / n))
    critical = float(scipy_stats.t.ppf(1 - alpha / 2, df))
    # The lower tail P(T < -c) as P(T > c) at -noncentrality: scipy's nct.cdf there can be NaN.
    tails = scipy_stats.nct.sf(critical, df, [noncentrality, -noncentrality])
    return float(tails.sum())


def detectable(sd: float, n: int, alpha: float, paired: bool = False) -> float:
    """The smallest true difference that `t_power` detects with probability POWER."""
    if n < 2 or not sd > 0:
        return math.nan
    high = sd
    while t_power(high, sd, n, alpha, paired) < POWER:
        high *= 2
    return float(brentq(lambda d: t_power(d, sd, n, alpha, paired) - POWER, 0.0, high))


def seeds_needed(effect: float, sd: float, alpha: float, paired: bool = False) -> int | None:
    """The fewest seeds per arm (2 or more) whose t-test detects `effect` with probability
    POWER; None when the sd is unknown or it would take more than MOST_SEEDS."""
    if not sd > 0 or not effect > 0:
        return None
    low, high = 1, 2  # power grows with n: double, then bisect (power(low) < POWER)
    while t_power(effect, sd, high, alpha, paired) < POWER:
        low, high = high, high * 2
        if high > MOST_SEEDS:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if t_power(effect, sd, middle, alpha, paired) < POWER else (
            low, middle)  # fmt: skip
    return high


def dunnett(samples: dict[str, Sequence[float]], base: Sequence[float]) -> dict[str, Comparison]:
    """Dunnett's many-to-one test of each sample against `base` (scipy.stats.dunnett): one
    variance pooled over all samples and the base; p-values and 95% intervals are simultaneous
    (adjusted for every comparison at once). Samples with fewer than two values are left out."""
    kept = {key: np.asarray(x, dtype=float) for key, x in samples.items() if len(x) >= 2}
    b = np.asarray(base, dtype=float)
    if not kept or len(b) < 2 or pooled_sd([*kept.values(), b])[0] == 0:
        return {}
    result = scipy_stats.dunnett(*kept.values(), control=b, rng=DUNNETT_RNG)
    with warnings.catch_warnings():  # scipy warns when its search ends a hair off 95% (on
        warnings.simplefilter("ignore", UserWarning)  # few df): the interval is still shown
        interval = result.confidence_interval(CONFIDENCE)
    return {
        key: Comparison(
            DUNNETT,
            len(x),
            len(b),
            float(x.mean() - b.mean()),
            float(low),
            float(high),
            float(p),
            float(p),
        )  # fmt: skip
        for (key, x), low, high, p in zip(
            kept.items(), interval.low, interval.high, result.pvalue, strict=True
        )
    }


def offset(published: Sequence[float], ours: Sequence[float]) -> Offset:
    """Published minus ours over matched values: the mean with its 95% t-interval, and a
    two-sided sign test of 'published above ours as often as below' (ties left out)."""
    d = np.asarray(published, dtype=float) - np.asarray(ours, dtype=float)
    summary = summarize(d)
    higher, lower = int((d > 0).sum()), int((d < 0).sum())
    p = scipy_stats.binomtest(higher, higher + lower).pvalue if higher + lower else math.nan
    return Offset(len(d), summary.mean, summary.ci_low, summary.ci_high, higher, lower, float(p))


def sd_range(df: int) -> tuple[float, float]:
    """The 95% interval of true sd / measured sd for a sample sd on `df` degrees of freedom
    (chi-square): with 3 runs (df 2), the true sd may be 0.52 to 6.3 times the one measured."""
    tail = (1 - CONFIDENCE) / 2
    chi2 = scipy_stats.chi2
    return math.sqrt(df / chi2.ppf(1 - tail, df)), math.sqrt(df / chi2.ppf(tail, df))
