"""The sequential procedure of `settle` (fmnist_ray/reporting/sequential.py) on synthetic normal
draws, 10,000 trials per row: false positives with no true difference (family-wise), power
and wrong equivalence claims at the design effect, and the seeds spent against the fixed-n
design with the same alpha and power (the two-sample t-test's `seeds_needed`, Bonferroni over
the comparisons, the base case and every arm at n; and, as settle recycles alpha the way Holm
does, the fixed-n design with Holm's step-down, sized by Monte Carlo). With `adastop`
importable (the AdaStop package, Mathieu et al. 2024), its permutation test runs beside ours.

    python benchmarks/bench_sequential.py [--trials 10000] [--adastop-trials 300] [--smoke]
        [--futility pocock] [--no-recycle]   # the procedure before 2026-12-05
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from fmnist_ray.reporting.sequential import (
    EQUIVALENT,
    Design,
    planned_cap,
    schedule,
    simulate,
    welch_stats,
)
from fmnist_ray.reporting.stats import seeds_needed

FIRST = 3  # seeds every arm has before the first look (the study's)
STEP = 1  # seeds added per round
CASES = [  # (comparisons, effect in sds): the study's regime (0.5 pp on a sd near 0.4 pp), more
    (1, 1.25),
    (3, 1.25),
    (1, 0.5),
    (3, 0.5),
]


def t_stats(arms: np.ndarray, base: np.ndarray, student: bool = False):
    """(diff, se, df) of each arm against the base case: Welch's df, or Student's
    (n_arm + n_base - 2) with `student` (the same se at equal n)."""
    diff, se, df = welch_stats(arms, base)
    if student:
        df = np.full(np.shape(diff), arms.shape[-1] + base.shape[-1] - 2.0)
    return diff, se, df


def fixed_holm(
    comparisons: int,
    effect: float,
    trials: int = 20_000,
    seed: int = 5,
    ratio: float = 1.0,
    student: bool = False,
) -> int:
    """Runs of the fixed-n design tested with Holm's step-down (every arm at the effect, the
    base case at ceil(ratio n); Welch's t, or Student's with `student`): the smallest n per arm
    whose power per comparison reaches 80%."""
    rng, m = np.random.default_rng(seed), comparisons
    thresholds = 0.05 / (m - np.arange(m))  # Holm: the smallest p against alpha / m, ...
    for n in range(2, 1000):
        base = rng.normal(0.0, 1.0, (trials, 1, math.ceil(ratio * n)))
        diff, se, df = t_stats(rng.normal(effect, 1.0, (trials, m, n)), base, student)
        p = np.sort(2 * stats.t.sf(np.abs(diff) / se, df), axis=1)
        found = np.cumprod(p <= thresholds, axis=1).sum(axis=1)  # step down until one fails
        if found.mean() / m >= 0.8:
            return n * m + math.ceil(ratio * n)
    raise ValueError("no n up to 1000 reaches 80%")


def row(comparisons: int, effect: float, trials: int, sizing: int = 2000, **procedure) -> dict:
    design = Design(effect=effect, alpha=0.05, power=0.8, comparisons=comparisons, **procedure)
    started = time.perf_counter()
    cap = planned_cap(design, 1.0, FIRST, STEP, trials=sizing)
    looks = schedule(FIRST, STEP, cap)
    null = simulate(design, looks, [0.0] * comparisons, 1.0, trials, seed=101)
    found = simulate(design, looks, [effect] * comparisons, 1.0, trials, seed=102)
    fixed = seeds_needed(effect, 1.0, design.level) * (comparisons + 1)
    holm = fixed_holm(comparisons, effect)
    average = (null.runs.mean() + found.runs.mean()) / 2
    return {
        "comparisons": comparisons,
        "effect_sd": effect,
        "cap": cap,
        "looks": len(looks),
        "fwer": null.any_difference,
        "equivalent_null": null.rate(EQUIVALENT),
        "power": found.power,
        "wrong_equivalent": found.rate(EQUIVALENT),
        "runs_null": float(null.runs.mean()),
        "runs_effect": float(found.runs.mean()),
        "fixed": fixed,
        "ratio": average / fixed,
        "holm": holm,
        "ratio_holm": average / holm,
        "seconds": time.perf_counter() - started,
    }


def adastop_row(effect: float, trials: int, rounds: int, per_round: int) -> dict[str, float]:
    """AdaStop (one arm against the base case, `rounds` rounds of `per_round` seeds each)."""
    from adastop import MultipleAgentsComparator

    rng = np.random.default_rng(7)
    outcomes = {0.0: [], effect: []}
    for true in outcomes:
        for trial in range(trials):
            comparator = MultipleAgentsComparator(
                n=per_round, K=rounds, B=2000, alpha=0.05, seed=trial
            )
            base, arm = np.array([]), np.array([])
            for _ in range(rounds):
                base = np.concatenate([base, rng.normal(0, 1, per_round)])
                arm = np.concatenate([arm, rng.normal(true, 1, per_round)])
                comparator.partial_compare({"base": base, "arm": arm}, verbose=False)
                if comparator.is_finished:
                    break
            decided = next(iter(comparator.decisions.values())) != "equal"
            outcomes[true].append((decided, len(base) + len(arm)))
    null, found = (np.array(outcomes[key], dtype=float) for key in (0.0, effect))
    return {"fwer": null[:, 0].mean(), "power": found[:, 0].mean(),
            "runs_null": null[:, 1].mean(), "runs_effect": found[:, 1].mean()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="500 trials, first case only")
    parser.add_argument("--adastop-trials", type=int, default=300, help="(pure Python: slow)")
    parser.add_argument("--only-adastop", action="store_true", help="skip our rows")
    parser.add_argument("--spending", default=Design.spending, help="of alpha over the looks")
    parser.add_argument("--futility", default=Design.futility, help="of beta over the looks")
    parser.add_argument("--no-recycle", action="store_true", help="Bonferroni, not Holm")
    args = parser.parse_args()
    procedure = {"spending": args.spending, "futility": args.futility,
                 "recycle": not args.no_recycle}  # fmt: skip
    trials, cases = (500, CASES[:1]) if args.smoke else (args.trials, CASES)
    print(f"{trials} trials per row; first look at {FIRST} seeds, +{STEP} per round; {procedure}")
    print("| comparisons | effect (sd) | cap | looks | false positives (family) | power | "
          "wrong 'smaller' at effect | runs, no difference | runs, at effect | fixed-n runs "
          "| sequential / fixed | fixed-n runs, Holm | sequential / fixed, Holm |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for comparisons, effect in [] if args.only_adastop else cases:
        r = row(comparisons, effect, trials, sizing=300 if args.smoke else 2000, **procedure)
        error = 2 * math.sqrt(0.05 * 0.95 / trials)
        print(f"| {comparisons} | {effect} | {r['cap']} | {r['looks']} | {r['fwer']:.4f} "
              f"(±{error:.4f}) | {r['power']:.3f} | {r['wrong_equivalent']:.3f} | "
              f"{r['runs_null']:.1f} | {r['runs_effect']:.1f} | {r['fixed']} | "
              f"{r['ratio']:.3f} | {r['holm']} | {r['ratio_holm']:.3f} |")  # fmt: skip
    try:
        import adastop  # noqa: F401
    except ImportError:
        print("adastop not importable: no comparison with it")
        return
    rounds, per_round = 6, 3  # 18 seeds per arm at most, as our cap for 1 comparison at 1.25 sd
    trials = 20 if args.smoke else args.adastop_trials
    a = adastop_row(1.25, trials, rounds, per_round)
    print(
        f"AdaStop, {trials} trials, 1 comparison, effect 1.25 sd, {rounds} rounds of "
        f"{per_round} seeds (B = 2000, alpha 0.05): "
        f"false positives {a['fwer']:.3f}, power {a['power']:.3f}, runs with no difference "
        f"{a['runs_null']:.1f}, at the effect {a['runs_effect']:.1f}"
    )


if __name__ == "__main__":
    main()
