"""Seeds until the question is settled: a group-sequential test of each arm against the base
case, looked at after every round of seeds, with the family-wise false-positive rate kept at
alpha over all comparisons and all looks. Pure numpy/scipy: no torch, no Ray, no files.

Per comparison at look k with n_k seeds per arm:
- difference found when Welch's |t|, as a normal quantile of its p, crosses c_k: Lan-DeMets
  alpha spending (Pocock-type by default) over the information fractions n_k / n_K,
  the boundaries computed exactly by numerical integration (Armitage, McPherson and Rowe 1969),
  at level alpha / m with m the comparisons not yet found different: Holm's step-down, each
  difference found passing its share of alpha on to the comparisons still open, with their
  boundaries recomputed at the new level (Maurer and Bretz 2013; Bonferroni when `recycle` is
  off, as settles before it recorded);
- smaller than `effect` (equivalence) when |diff| + t(1 - g_k) * se < effect: two one-sided
  tests at level g_k, the g_k spending `beta` = 1 - power over the looks, so a real difference
  of `effect` or more is called smaller with probability beta at most;
- otherwise open, and at the seed cap open for good.
Stopping a comparison for equivalence only removes chances to reject, so the false-positive
bound holds whatever the equivalence rule does (futility is non-binding)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from scipy import stats as scipy_stats
from scipy.optimize import brentq

DIFFERENT = "difference"  # decided: the arm differs from the base case
EQUIVALENT = "smaller than effect"  # decided: within +-effect of the base case
OPEN = "open"  # not decided yet: more seeds
CAPPED = "open at the cap"  # not decided, and no more seeds allowed
GRID = 0.02  # spacing of the integration grid, in standard normal units
REACH = 9.0  # the grid spans the mean +-REACH sds: the tails beyond are below 1e-18


@dataclass(frozen=True)
class Design:
    """What a settle run promises: family-wise false positives at most `alpha` over
    `comparisons` comparisons and every look; a difference of `effect` found with probability
    `power` (at a cap sized by `max_seeds_for`); equivalence claims wrong at most 1 - power."""

    effect: float  # in the metric's units (accuracy as a fraction)
    alpha: float = 0.05
    power: float = 0.80
    comparisons: int = 1
    # With a look after every seed and few seeds, Pocock-type alpha spending and beta spent
    # earlier still (Hwang-Shih-DeCani, gamma 4: 56% of it by a fifth of the cap) stop where
    # the stops save most (benchmarks/bench_sequential.py compares the choices).
    spending: str = "pocock"  # of alpha over the looks: or "obrien-fleming", "linear", "hsd(g)"
    futility: str = "hsd(4)"  # of beta on equivalence over the looks
    equivalence_error: float | None = None  # of 'smaller than effect' claims; None: 1 - power
    recycle: bool = True  # Holm: a difference found passes its alpha to the open comparisons

    @property
    def level(self) -> float:
        """Each comparison's share of alpha before any is found different (Bonferroni)."""
        return self.alpha / max(1, self.comparisons)

    @property
    def recycles(self) -> bool:
        """Whether a difference found can pass alpha on (recycling, and another comparison)."""
        return self.recycle and self.comparisons > 1

    def level_after(self, found: int) -> float:
        """Each open comparison's level once `found` comparisons are found different."""
        return self.alpha / max(1, self.comparisons - (found if self.recycle else 0))

    @property
    def beta(self) -> float:
        """What the equivalence claims may get wrong (and spend of the power)."""
        return 1 - self.power if self.equivalence_error is None else self.equivalence_error


def schedule(first: int, step: int, cap: int) -> tuple[int, ...]:
    """Seeds per arm at each look: first, first + step, ..., cap (the last look at the cap)."""
    looks = list(range(first, cap, step)) if first < cap else []
    return tuple(looks + [cap])


def spent(fraction: float, total: float, spending: str) -> float:
    """Lan-DeMets alpha (or beta) spent by information fraction `fraction` (two-sided)."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0:
        return 0.0
    if spending == "pocock":
        return total * math.log(1 + (math.e - 1) * t)
    if spending == "obrien-fleming":
        return float(2 * scipy_stats.norm.sf(scipy_stats.norm.isf(total / 2) / math.sqrt(t)))
    if spending == "linear":
        return total * t
    if spending.startswith("hsd(") and spending.endswith(")"):  # Hwang, Shih and DeCani 1990
        gamma = float(spending[4:-1])
        return total * t if gamma == 0 else total * math.expm1(-gamma * t) / math.expm1(-gamma)
    raise ValueError(f"unknown spending {spending!r}: obrien-fleming, pocock, linear or hsd(g)")


def _step(density: np.ndarray, grid: np.ndarray, info: tuple[float, float], drift: float):
    """The sub-density of Z at a look from that of the previous look (None: the first look),
    on `grid`; info = (I_prev, I_now) in units where Z = S / sqrt(I), S ~ N(drift I, I)."""
    before, now = info
    mean_now = drift * math.sqrt(now)
    if density is None:
        return scipy_stats.norm.pdf(grid - mean_now)
    step = now - before
    mean = (grid[:, None] * math.sqrt(before) + drift * step) / math.sqrt(now)
    scale = math.sqrt(step / now)
    kernel = scipy_stats.norm.pdf((grid[None, :] - mean) / scale) / scale
    return (density * GRID) @ kernel


def _tails(density, grid, info, drift, bound: float) -> float:
    """P(still going before this look, |Z| >= bound at it)."""
    before, now = info
    if density is None:
        mean, scale, weights = np.array([drift * math.sqrt(now)]), 1.0, np.array([1.0])
    else:
        step = now - before
        mean = (grid * math.sqrt(before) + drift * step) / math.sqrt(now)
        scale, weights = math.sqrt(step / now), density * GRID
    norm = scipy_stats.norm
    upper = norm.sf((bound - mean) / scale) + norm.cdf((-bound - mean) / scale)
    return float(weights @ upper)


@lru_cache(maxsize=256)
def efficacy_bounds(looks: tuple[int, ...], level: float, spending: str) -> tuple[float, ...]:
    """c_k on |Z| at each look such that, with no true difference, the chance of crossing at
    look k and not before is the alpha spent between looks k - 1 and k (exact integration)."""
    grid = np.arange(-REACH, REACH + GRID / 2, GRID)
    fractions = [n / looks[-1] for n in looks]
    density, bounds, before, used = None, [], 0.0, 0.0
    for n, fraction in zip(looks, fractions, strict=True):
        target = spent(fraction, level, spending) - used
        info = (before, float(n))
        if target <= 1e-15:
            bound = math.inf
        else:
            bound = _solve(partial(_tails, density, grid, info, 0.0), target)
        used += _tails(density, grid, info, 0.0, bound) if math.isfinite(bound) else 0.0
        density = _step(density, grid, info, 0.0)
        density = np.where(np.abs(grid) < bound, density, 0.0)
        bounds.append(bound)
        before = float(n)
    return tuple(bounds)


def _solve(tail, target: float) -> float:
    """The bound at which the decreasing `tail(bound)` equals `target`."""
    return float(brentq(lambda bound: tail(bound) - target, -40.0, 40.0, xtol=1e-10))


@lru_cache(maxsize=256)
def equivalence_levels(
    looks: tuple[int, ...], beta: float, spending: str = "linear"
) -> tuple[float, ...]:
    """g_k: the one-sided level of look k's two one-sided tests. At a true difference of
    `effect`, Z_k minus its mean is a standard process W_k whatever the sd, and look k calls
    the difference smaller when W_k < -b_k with g_k = P(N(0, 1) < -b_k); b_k is solved so that
    P(W_j >= -b_j before k, W_k < -b_k) is the beta spent between looks k - 1 and k. Stops for
    a difference, left out of that integral, only lower the real error: over all looks a
    comparison whose true difference is `effect` or more is called smaller with probability
    beta at most."""
    grid = np.arange(-REACH, REACH + GRID / 2, GRID)
    density, levels, before, used = None, [], 0.0, 0.0
    for n in looks:
        target = spent(n / looks[-1], beta, spending) - used
        info = (before, float(n))
        # By symmetry, the upper crossing of b_k by a process kept below the earlier b_j.
        tail = partial(_upper, density, grid, info)
        bound = _solve(tail, target) if target > 1e-15 else math.inf
        used += _upper(density, grid, info, bound) if math.isfinite(bound) else 0.0
        density = _step(density, grid, info, 0.0)
        density = np.where(grid < bound, density, 0.0)
        levels.append(float(scipy_stats.norm.sf(bound)))
        before = float(n)
    return tuple(levels)


def _upper(density, grid, info, bound: float) -> float:
    """P(still going before this look, Z >= bound at it), no drift."""
    before, now = info
    if density is None:
        return float(scipy_stats.norm.sf(bound))
    mean = grid * math.sqrt(before) / math.sqrt(now)
    scale = math.sqrt((now - before) / now)
    return float((density * GRID) @ scipy_stats.norm.sf((bound - mean) / scale))


def welch_stats(arm: np.ndarray, base: np.ndarray):
    """(diff, se, df) of Welch's test over the last axis, vectorized over the leading ones."""
    n, m = arm.shape[-1], base.shape[-1]
    va, vb = arm.var(axis=-1, ddof=1) / n, base.var(axis=-1, ddof=1) / m
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (m - 1))
    df = np.where(np.isfinite(df), df, n + m - 2)
    return arm.mean(axis=-1) - base.mean(axis=-1), se, df


def decide_look(diff, se, df, bound: float, level: float, effect: float, last: bool):
    """The decision at one look, vectorized: DIFFERENT, EQUIVALENT, OPEN or CAPPED."""
    diff, se, df = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (diff, se, df)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(diff) / se, np.where(diff != 0, np.inf, 0.0))
    z = scipy_stats.norm.isf(scipy_stats.t.sf(t, df))  # |t| as a normal quantile of its p
    upper = np.abs(diff) + scipy_stats.t.isf(level, df) * se
    out = np.full(diff.shape, CAPPED if last else OPEN, dtype=object)
    out[upper < effect] = EQUIVALENT
    out[z >= bound] = DIFFERENT
    return out


@dataclass(frozen=True)
class Verdict:
    """One comparison replayed over its looks: the decision and the look (1-based) it came at
    (the last look reached while open), with the statistics there."""

    decision: str
    look: int
    seeds: int  # per arm at that look
    diff: float
    se: float
    bound: float  # c_k on |Z| at that look
    sign: int  # +1: the arm above the base case, -1 below, 0 undecided


def replay(arm: np.ndarray, base: np.ndarray, looks: tuple[int, ...], design: Design) -> Verdict:
    """One comparison alone (no other's difference passes it alpha): see `replay_all`."""
    return replay_all([(arm, base)], looks, design)[0]


def replay_all(pairs, looks: tuple[int, ...], design: Design) -> list[Verdict]:
    """Every comparison of one design, each (arm values, base values) in seed order (look k
    uses the first n_k of each), tested look by look while the values reach it. Within a look
    Holm steps down: each difference found lowers the bound for the others still open."""
    levels = equivalence_levels(looks, design.beta, design.futility)
    verdicts = [Verdict(OPEN, 0, 0, math.nan, math.nan, math.nan, 0)] * len(pairs)
    for k, n in enumerate(looks):
        open_now = [i for i, (arm, base) in enumerate(pairs)
                    if verdicts[i].decision == OPEN and min(len(arm), len(base)) >= n]  # fmt: skip
        if not open_now:
            break
        stats = {i: welch_stats(np.asarray(pairs[i][0][:n], float),
                                np.asarray(pairs[i][1][:n], float)) for i in open_now}  # fmt: skip
        decided = False
        while not decided:
            found = sum(v.decision == DIFFERENT for v in verdicts)
            bound = efficacy_bounds(looks, design.level_after(found), design.spending)[k]
            decided = True
            for i in open_now:
                diff, se, df = stats[i]
                now = decide_look(diff, se, df, bound, levels[k], design.effect,
                                  k == len(looks) - 1).item()  # fmt: skip
                if verdicts[i].decision != DIFFERENT:
                    sign = int(np.sign(diff)) if now == DIFFERENT else 0
                    verdicts[i] = Verdict(now, k + 1, n, float(diff), float(se), bound, sign)
                    decided = decided and now != DIFFERENT
    return verdicts


def power_at(looks: tuple[int, ...], design: Design, sd: float) -> float:
    """P(difference found) at a true difference of design.effect with known sd, the
    equivalence stops included as z boundaries (numerical integration; the t-tests of small
    samples lose a little more, which the Monte Carlo benchmark measures)."""
    bounds = efficacy_bounds(looks, design.level, design.spending)
    levels = equivalence_levels(looks, design.beta, design.futility)
    grid = np.arange(-REACH, REACH + GRID / 2, GRID) + design.effect / sd * math.sqrt(looks[-1] / 2)
    drift = design.effect / sd / math.sqrt(2)  # per unit of n: Z = diff / (sd sqrt(2 / n))
    density, found, before = None, 0.0, 0.0
    for n, bound, g in zip(looks, bounds, levels, strict=True):
        info = (before, float(n))
        if math.isfinite(bound):
            found += _tails(density, grid, info, drift, bound)
        density = _step(density, grid, info, drift)
        inner = drift * math.sqrt(n) - scipy_stats.norm.isf(g)  # |Z| below: equivalence
        density = np.where((np.abs(grid) < bound) & (np.abs(grid) >= inner), density, 0.0)
        before = float(n)
    return found


def max_seeds_for(design: Design, sd: float, first: int, step: int, most: int = 1000) -> int:
    """The smallest cap (first + j * step) whose looks reach design.power at design.effect by
    numerical integration (known sd: a lower bound on the cap the t-tests need)."""
    cap = first
    while cap < most and power_at(schedule(first, step, cap), design, sd) < design.power:
        cap += step
    return cap


def planned_cap(design: Design, sd: float, first: int, step: int, trials: int = 2000) -> int:
    """The cap with which the procedure itself (t-tests, sd estimated) reaches design.power
    at design.effect on normal draws of sd `sd`: from `max_seeds_for` up, a seeded Monte Carlo
    of `trials` trials per cap tried, and down again where Holm's recycling needs fewer (the
    integration is per comparison at its Bonferroni level)."""

    def power(cap: int) -> float:
        arms = [design.effect] * design.comparisons
        return simulate(design, schedule(first, step, cap), arms, sd, trials, 0).power

    cap = max_seeds_for(design, sd, first, step)
    while power(cap) < design.power:
        cap += step
    while cap - step >= first and power(cap - step) >= design.power:
        cap -= step
    return cap


@dataclass(frozen=True)
class Simulation:
    """Monte Carlo of the procedure on normal draws: per trial and comparison the decision and
    its sign, and the runs each trial spent (the base case and every arm)."""

    decisions: np.ndarray  # (trials, comparisons) of DIFFERENT, EQUIVALENT, CAPPED
    signs: np.ndarray  # +1 / -1 where DIFFERENT, else 0
    runs: np.ndarray  # (trials,) seeds spent: the base case's plus every arm's

    def rate(self, decision: str, comparison: int | None = None) -> float:
        chosen = self.decisions if comparison is None else self.decisions[:, comparison]
        return float((chosen == decision).mean())

    @property
    def power(self) -> float:
        """The rate of 'difference found' over every comparison of every trial."""
        return self.rate(DIFFERENT)

    @property
    def any_difference(self) -> float:
        """The family-wise rate of 'difference found' (of any comparison, in a trial)."""
        return float((self.decisions == DIFFERENT).any(axis=1).mean())


def simulate(
    design: Design, looks: tuple[int, ...], diffs: list[float], sd: float, trials: int, seed: int
) -> Simulation:
    """Run the procedure `trials` times on normal draws (sd `sd`): the base case and one arm
    per entry of `diffs` (its true difference from the base case); seeds per arm as `looks`."""
    rng = np.random.default_rng(seed)
    m, cap = len(diffs), looks[-1]
    base = rng.normal(0.0, sd, size=(trials, cap))
    arms = rng.normal(0.0, sd, size=(trials, m, cap)) + np.asarray(diffs)[None, :, None]
    levels = equivalence_levels(looks, design.beta, design.futility)
    # bounds[found][k]: look k's bound once `found` comparisons are found different
    bounds = np.array([efficacy_bounds(looks, design.level_after(found), design.spending)
                       for found in range(m + 1)])  # fmt: skip
    decisions = np.full((trials, m), OPEN, dtype=object)
    closed_at = np.full((trials, m), cap)
    signs = np.zeros((trials, m), dtype=int)
    for k, n in enumerate(looks):
        diff, se, df = welch_stats(arms[:, :, :n], base[:, None, :n])
        last, fresh = k == len(looks) - 1, np.ones((trials, m), dtype=bool)
        while fresh.any():  # Holm within the look: each difference found lowers the others' bound
            found = (decisions == DIFFERENT).sum(axis=1)
            now = decide_look(diff, se, df, bounds[found, k][:, None], levels[k], design.effect,
                              last)  # fmt: skip
            fresh = (decisions == OPEN) & (now == DIFFERENT)
            decisions[fresh], closed_at[fresh] = DIFFERENT, n
            signs[fresh] = np.sign(diff[fresh]).astype(int)
        stopped = (decisions == OPEN) & (now != OPEN)
        decisions[stopped], closed_at[stopped] = now[stopped], n
        if not (decisions == OPEN).any():
            break
    runs = closed_at.max(axis=1) + closed_at.sum(axis=1)
    return Simulation(decisions, signs, runs)
