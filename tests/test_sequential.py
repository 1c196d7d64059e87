"""The sequential procedure on synthetic normal draws (no training, seconds): its boundaries
against an independent Monte Carlo and the published Pocock values, false positives at most
alpha under no difference, the planned power at the design effect, equivalence claims wrong at
most 1 - power, fewer seeds than the fixed-n design, Holm's recycling, and comparisons
replayed by seed."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from fmnist_ray.reporting.sequential import (
    CAPPED,
    DIFFERENT,
    EQUIVALENT,
    OPEN,
    Design,
    efficacy_bounds,
    equivalence_levels,
    max_seeds_for,
    planned_cap,
    replay,
    replay_all,
    schedule,
    simulate,
    spent,
)
from fmnist_ray.reporting.stats import seeds_needed

TRIALS = 2000  # 3 standard errors of a rate near 0.05: 0.015; near 0.8: 0.027
EFFECT = 1.25  # in sds: the study's regime (0.5 pp on a sd near 0.4 pp)


def test_pocock_bounds_match_the_published_ones():
    # Lan-DeMets Pocock-type spending, 5 equally spaced looks, two-sided alpha 0.05 (gsDesign,
    # sfLDPocock): 2.438, 2.427, 2.410, 2.397, 2.386.
    found = efficacy_bounds((1, 2, 3, 4, 5), 0.05, "pocock")
    assert found == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=3e-3)
    assert efficacy_bounds((7,), 0.05, "obrien-fleming") == pytest.approx((1.95996,), abs=1e-4)


def test_bounds_spend_what_they_say_by_brownian_monte_carlo():
    looks = (3, 5, 8, 12)
    bounds = efficacy_bounds(looks, 0.05, "obrien-fleming")
    rng = np.random.default_rng(1)
    steps = np.diff((0, *looks))
    sums = np.cumsum(rng.normal(size=(400_000, len(looks))) * np.sqrt(steps), axis=1)
    z = np.abs(sums / np.sqrt(looks))
    crossed = (z >= np.array(bounds)).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=0.0015)
    # Equivalence: W_k < -b_k (one-sided) at some look, with total probability beta.
    levels = equivalence_levels(looks, 0.2, "pocock")
    lower = (sums / np.sqrt(looks) < -np.array([_z(g) for g in levels])).any(axis=1).mean()
    assert lower == pytest.approx(0.2, abs=0.004)


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.isf(level))


CAP = 24  # planned_cap(design, 1.0, 3, 1, trials=2000): sized on other draws (seed 0)


@pytest.fixture(scope="module")
def planned():
    design = Design(effect=EFFECT, alpha=0.05, power=0.8, comparisons=2)
    # Integration with a known sd is the lower bound; the t-tests need a few seeds more.
    assert max_seeds_for(design, 1.0, first=3, step=1) <= CAP
    return design, schedule(3, 1, CAP)


@pytest.mark.slow
def test_planned_cap_is_the_one_the_tests_use():
    design = Design(effect=EFFECT, alpha=0.05, power=0.8, comparisons=2)
    assert planned_cap(design, 1.0, first=3, step=1, trials=2000) == CAP


def test_no_true_difference_keeps_false_positives_at_alpha(planned):
    design, looks = planned
    null = simulate(design, looks, [0.0, 0.0], 1.0, TRIALS, seed=11)
    standard_error = math.sqrt(0.05 * 0.95 / TRIALS)
    assert null.any_difference <= 0.05 + 2 * standard_error
    assert not (null.decisions == OPEN).any()  # every comparison closes by the cap


def test_the_design_effect_is_found_with_the_planned_power(planned):
    design, looks = planned
    found = simulate(design, looks, [EFFECT, EFFECT], 1.0, TRIALS, seed=12)
    assert found.power >= 0.8 - 2 * math.sqrt(0.8 * 0.2 / (2 * TRIALS))
    wrong_way = (found.signs == -1).mean()  # a difference found, but below the base case
    assert wrong_way <= 0.025 / 2, wrong_way
    # An equivalence claim at the design effect is an error: at most 1 - power of them.
    assert found.rate(EQUIVALENT) <= 0.2 + 2 * math.sqrt(0.2 * 0.8 / (2 * TRIALS))


def test_fewer_seeds_than_the_fixed_n_design_at_the_same_error_rates(planned):
    design, looks = planned
    fixed = seeds_needed(EFFECT, 1.0, design.level) * 3  # the base case and 2 arms
    null = simulate(design, looks, [0.0, 0.0], 1.0, TRIALS, seed=13)
    found = simulate(design, looks, [EFFECT, EFFECT], 1.0, TRIALS, seed=14)
    average = (null.runs.mean() + found.runs.mean()) / 2
    assert average < 0.7 * fixed, (average, fixed)  # the goal: 30% fewer at least
    assert null.runs.mean() < 0.7 * fixed


def test_a_difference_found_passes_its_alpha_on_and_a_true_null_stays_at_alpha(planned):
    """Holm's recycling: with one arm at the design effect and one at no difference, the null
    arm may be tested at the whole alpha once the other is found, and is still called
    different at most alpha of the time; the arm at the effect is found more often than
    with Bonferroni."""
    design, looks = planned
    partial = simulate(design, looks, [EFFECT, 0.0], 1.0, TRIALS, seed=15)
    assert (partial.decisions[:, 1] == DIFFERENT).mean() <= 0.05 + 2 * math.sqrt(
        0.05 * 0.95 / TRIALS
    )
    both = simulate(design, looks, [EFFECT, EFFECT], 1.0, TRIALS, seed=16)
    alone = simulate(replace(design, recycle=False), looks, [EFFECT, EFFECT], 1.0, TRIALS, seed=16)
    assert both.power > alone.power
    assert both.runs.mean() < alone.runs.mean()


def test_hwang_shih_decani_spending_spends_all_and_early_for_positive_gamma():
    assert spent(1.0, 0.2, "hsd(4)") == pytest.approx(0.2)
    assert spent(0.3, 0.2, "hsd(0)") == pytest.approx(0.06)  # gamma 0: linear
    assert spent(0.2, 0.2, "hsd(4)") == pytest.approx(
        0.2 * 0.5610, abs=1e-4
    )  # (1 - e^-0.8) / (1 - e^-4)
    assert spent(0.2, 0.2, "hsd(4)") > spent(0.2, 0.2, "pocock") > spent(0.2, 0.2, "linear")


def test_replay_decides_by_seed_order_and_stops_at_the_decision():
    design = Design(effect=0.005, alpha=0.05, power=0.8, comparisons=1)
    looks = schedule(3, 1, 12)
    base = np.array([0.880, 0.884, 0.889, 0.883, 0.886, 0.881, 0.887, 0.885, 0.882, 0.884])
    far = base + 0.03  # 3 pp above, same spread: decided at the first look
    verdict = replay(far, base, looks, design)
    assert (verdict.decision, verdict.look, verdict.seeds, verdict.sign) == (DIFFERENT, 1, 3, 1)
    same = base[::-1].copy()  # same values in another order: the mean difference shrinks
    close = replay(same, base, looks, design)
    assert close.decision in (OPEN, EQUIVALENT) and close.seeds <= len(base)
    short = replay(far[:2], base[:2], looks, design)  # no look reached yet
    assert (short.decision, short.look) == (OPEN, 0)
    at_cap = replay(base[:12] + 0.0008, base[:12], schedule(3, 1, 10), design)
    assert at_cap.decision in (CAPPED, EQUIVALENT)


def test_replayed_together_a_difference_found_lowers_the_others_bound():
    """Two comparisons at one look: one far above its base, one whose |Z| lies between the
    whole-alpha bound and the half-alpha one. Together (Holm) both are found; the second alone,
    at its Bonferroni share, is not."""
    design = Design(effect=0.05, alpha=0.05, power=0.8, comparisons=2)
    looks = (6,)  # one look: the bounds are the fixed-n ones, |Z| 1.96 and 2.24
    base = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    near = base + 2.4 * math.sqrt(2 * base.var(ddof=1) / 6)  # t 2.4 at df 10: p 0.037
    far = base + 10.0
    together = replay_all([(far, base), (near, base)], looks, design)
    assert [v.decision for v in together] == [DIFFERENT, DIFFERENT]
    assert (
        replay_all([(far, base), (near, base)], looks, replace(design, recycle=False))[1].decision
        != DIFFERENT
    )
    assert replay(near, base, looks, design).decision != DIFFERENT
