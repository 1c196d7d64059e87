"""How sure the report can be: per experiment, the pooled variance, the difference its seeds
detect and the seeds a given difference needs; the other analyses beside the default one (Welch,
and Dunnett on the pooled variance); Holm across the whole report; the offset from references."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ..spec.config import to_columns
from ..spec.grid import Experiment
from ..spec.metrics import HEADLINE
from .arms import without_seed
from .model import ExperimentReport, Offset, Power
from .stats import ALPHA, WELCH, dunnett, holm, offset, pooled_sd, seeds_needed, welch
from .stats import detectable as detectable_difference


def experiment_power(
    report: ExperimentReport, effect: float, comparisons: int | None = None
) -> Power | None:
    """The pooled sd over the experiment's arms (the base case included) and what it lets the
    report's rule see: its t-test at Holm's first step, alpha / (arms compared), 80% power.

    The arms are taken as independent: pairing by seed would help only as far as an arm's
    seeds correlate with the base case's. An experiment of one configuration is sized for one
    new arm against it. `comparisons`: the arms the experiment plans to compare (default: the
    arms it has)."""
    arms = [arm for arm in report.shown_arms if len(arm.runs) >= 2]
    sd, df = pooled_sd([arm.finals(HEADLINE.name) for arm in arms])
    if df == 0:
        return None
    if comparisons is None:
        comparisons = sum(not arm.is_base for arm in report.arms)
    comparisons = max(1, comparisons)
    compared = [arm.comparison for arm in report.arms if arm.comparison is not None]
    paired = all(c.test != WELCH for c in compared)
    seeds = min(len(arm.runs) for arm in arms)
    alpha = ALPHA / comparisons
    return Power(
        sd,
        df,
        len(arms),
        seeds,
        comparisons,
        paired,
        detectable_difference(sd, seeds, alpha, paired),
        effect,
        seeds_needed(effect, sd, alpha, paired),
    )


def planned_comparisons(experiment: Experiment, base_config: dict[str, Any]) -> int:
    """The arms an experiment file plans to compare with its base case."""
    configs = {json.dumps(without_seed(to_columns(cfg)), sort_keys=True) for cfg in experiment.runs}
    return len(configs - {json.dumps(base_config, sort_keys=True)})


def fill_alternatives(report: ExperimentReport) -> None:
    """Each compared arm's Welch test (Holm over the experiment) and Dunnett test (one variance
    pooled over the experiment's arms and the base case)."""
    base = report.base
    compared = [arm for arm in report.arms if arm.comparison is not None]
    if base is None or not compared:
        return
    base_values = base.finals(HEADLINE.name)
    tests = [welch(arm.finals(HEADLINE.name), base_values) for arm in compared]
    adjusted = holm([test.p_value for test in tests])
    for arm, test, p in zip(compared, tests, adjusted, strict=True):
        arm.welch = dataclasses.replace(test, p_adjusted=p)
    samples = {str(i): arm.finals(HEADLINE.name) for i, arm in enumerate(compared)}
    pooled = dunnett(samples, base_values)
    for i, arm in enumerate(compared):
        arm.pooled = pooled.get(str(i))


def study_holm(reports: list[ExperimentReport]) -> int:
    """Holm over every comparison of every experiment (Comparison.p_study); returns how many."""
    compared = [arm for report in reports for arm in report.arms if arm.comparison is not None]
    adjusted = holm([arm.comparison.p_value for arm in compared])
    for arm, p in zip(compared, adjusted, strict=True):
        arm.comparison = dataclasses.replace(arm.comparison, p_study=p)
    return sum(not math.isnan(p) for p in adjusted)


def reference_offsets(reports: list[ExperimentReport]) -> dict[str, Offset]:
    """Per metric with two or more checks: published minus our mean, over all its references."""
    pairs: dict[str, list[tuple[float, float]]] = {}
    for check in (check for report in reports for check in report.references):
        if check.ours.n:
            pairs.setdefault(check.reference.metric, []).append(
                (check.reference.value, check.ours.mean)
            )
    return {
        name: offset([p for p, _ in values], [o for _, o in values])
        for name, values in pairs.items()
        if len(values) >= 2
    }
