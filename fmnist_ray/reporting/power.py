"""How sure the report can be: per experiment, the pooled variance, the difference its seeds
detect and the seeds a given difference needs; the other analyses beside the default one (Welch,
and Dunnett on the pooled variance); Holm across the whole report; the offset from references."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from ..spec.config import to_columns
from ..spec.grid import Experiment
from ..spec.metrics import HEADLINE
from .arms import without_seed
from .model import ExperimentReport, Offset, Power
from .stats import (
    ALPHA,
    dunnett,
    holm,
    offset,
    paired_by_seed,
    pooled_sd,
    sd_range,
    seed_correlation,
    seeds_needed,
)
from .stats import detectable as detectable_difference


def experiment_power(
    report: ExperimentReport, effect: float, comparisons: int | None = None
) -> Power | None:
    """The pooled sd over the experiment's arms (the base case included) and what it lets the
    report's rule see: the verdicts' two-sample t-test (df 2(n - 1): Welch's at equal sds, which
    a pooled sd assumes) at Holm's first step, alpha / (arms compared), 80% power; the seeds
    `effect` needs, at the measured sd and at the ends of the true sd's 95% range.

    An experiment of one configuration is sized for one new arm against it (`comparisons` 0).
    `comparisons`: the arms the experiment plans to compare (default: the arms it has)."""
    arms = [arm for arm in report.shown_arms if len(arm.runs) >= 2]
    sd, df = pooled_sd([arm.finals(HEADLINE.name) for arm in arms])
    if df == 0:
        return None
    if comparisons is None:
        comparisons = sum(not arm.is_base for arm in report.arms)
    seeds = min(len(arm.runs) for arm in arms)
    alpha = ALPHA / max(1, comparisons)
    low, high = sd_range(df)
    base = report.base
    base_sd = math.nan
    if base is not None and len(base.runs) >= 2:
        base_sd = float(np.std(base.finals(HEADLINE.name), ddof=1))
    return Power(
        sd,
        df,
        len(arms),
        seeds,
        comparisons,
        detectable_difference(sd, seeds, alpha, paired=False),
        effect,
        seeds_needed(effect, sd, alpha, paired=False),
        seeds_needed(effect, sd * low, alpha, paired=False),
        seeds_needed(effect, sd * high, alpha, paired=False),
        base_sd,
    )


def planned_comparisons(experiment: Experiment, base_config: dict[str, Any]) -> int:
    """The arms an experiment file plans to compare with its base case."""
    configs = {json.dumps(without_seed(to_columns(cfg)), sort_keys=True) for cfg in experiment.runs}
    return len(configs - {json.dumps(base_config, sort_keys=True)})


def _by_seed(arm) -> dict[int, float]:
    return {run.seed: run.final(HEADLINE.name) for run in arm.runs}


def fill_alternatives(report: ExperimentReport) -> None:
    """Each compared arm's paired t-test by seed where it ran the base case's seeds (Holm over
    those arms) and Dunnett test (one variance pooled over the experiment's arms and the base
    case)."""
    base = report.base
    compared = [arm for arm in report.arms if arm.comparison is not None]
    if base is None or not compared:
        return
    base_values = base.finals(HEADLINE.name)
    tests = {id(arm): paired_by_seed(_by_seed(arm), _by_seed(base)) for arm in compared}
    kept = [arm for arm in compared if tests[id(arm)] is not None]
    adjusted = holm([tests[id(arm)].p_value for arm in kept])
    for arm, p in zip(kept, adjusted, strict=True):
        arm.paired = dataclasses.replace(tests[id(arm)], p_adjusted=p)
    samples = {str(i): arm.finals(HEADLINE.name) for i, arm in enumerate(compared)}
    pooled = dunnett(samples, base_values)
    for i, arm in enumerate(compared):
        arm.pooled = pooled.get(str(i))


def correlation_table(arms: list) -> np.ndarray | None:
    """Seeds x arms of the final HEADLINE values, over the arms that ran the seed set most of
    them ran (an arm of other seeds cannot enter a seed x arm table)."""
    sets = [tuple(sorted(arm.seeds)) for arm in arms if len(arm.runs) >= 2]
    if not sets:
        return None
    common = max(set(sets), key=lambda seeds: (sets.count(seeds), len(seeds)))
    kept = [arm for arm in arms if tuple(sorted(arm.seeds)) == common]
    return np.array([[_by_seed(arm)[seed] for arm in kept] for seed in common])


def fill_correlations(reports: list[ExperimentReport]) -> None:
    """Each experiment's seed correlation over its arms (base case included) and the study's
    over every distinct arm read (the shared base case counted once)."""
    distinct = {}
    for report in reports:
        table = correlation_table(report.shown_arms)
        report.correlation = seed_correlation(table) if table is not None else None
        for arm in report.shown_arms:
            distinct.setdefault(json.dumps(arm.config, sort_keys=True, default=str), arm)
    table = correlation_table(list(distinct.values()))
    pooled = seed_correlation(table) if table is not None else None
    for report in reports:
        report.study_correlation = pooled


def study_holm(reports: list[ExperimentReport]) -> int:
    """Holm over every comparison of every experiment (Comparison.p_study); returns how many."""
    compared = [arm for report in reports for arm in report.arms if arm.comparison is not None]
    adjusted = holm([arm.comparison.p_value for arm in compared])
    for arm, p in zip(compared, adjusted, strict=True):
        arm.comparison = dataclasses.replace(arm.comparison, p_study=p)
    return sum(not math.isnan(p) for p in adjusted)


def reference_offsets(
    reports: list[ExperimentReport], per_experiment: bool = False
) -> dict[str, Offset]:
    """Per metric with two or more checks: published minus our mean, over all its references,
    or (`per_experiment`) over one value per experiment, the mean of its references' offsets
    (an experiment's values share its base case and its runs, so they are not independent)."""
    pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for report in reports:
        for check in report.references:
            if check.ours.n:
                by_experiment = pairs.setdefault(check.reference.metric, {})
                by_experiment.setdefault(report.name, []).append(
                    (check.reference.value, check.ours.mean)
                )
    offsets = {}
    for name, groups in pairs.items():
        if per_experiment:
            values = [tuple(np.mean(group, axis=0)) for group in groups.values()]
        else:
            values = [pair for group in groups.values() for pair in group]
        if len(values) >= 2:
            offsets[name] = offset([p for p, _ in values], [o for _, o in values])
    return offsets
