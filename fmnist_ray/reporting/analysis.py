"""One experiment from runs to verdicts: arms, base case, per-arm statistics, the comparison of
each arm with the base case (Holm-adjusted over the experiment's arms), and notes."""

from __future__ import annotations

import dataclasses
import math

from ..spec.metrics import DEFAULT_EFFECT, FIT, HEADLINE
from ..words import plural
from .arms import build_arms, completeness, describe_config, failure_config, find_axes
from .base import choose_base
from .load import ExperimentFiles
from .model import (
    BASE,
    BETTER,
    EXPERIMENT_FILE,
    INCOMPLETE,
    NO_RUNS,
    NO_TEST,
    NOT_SIGNIFICANT,
    WORSE,
    Arm,
    Comparison,
    ExperimentReport,
    Run,
)
from .power import experiment_power, fill_alternatives
from .stats import ALPHA, compare, holm, summarize


def summarize_experiment(
    files: ExperimentFiles, all_runs: list[Run], effect: float = DEFAULT_EFFECT
) -> ExperimentReport:
    """Arms, base case, statistics, verdicts and notes of one experiment (no files touched);
    `effect`: the difference the seeds-needed estimate is for."""
    name, experiment, notes = files.name, files.experiment, list(files.notes)
    failure_configs = []
    for record in files.failures:
        config = failure_config(record)
        if config is None:
            notes.append(f"{name}: failure record {record.get('run_id')} has an unreadable config")
        else:
            failure_configs.append((record, config))
    configs = [run.config for run in files.runs] + [config for _, config in failure_configs]
    axes = find_axes(experiment, configs, notes, name)
    arms = build_arms(axes, files.runs, failure_configs, experiment)
    base_config, base, source = choose_base(name, experiment, arms, all_runs, notes)
    report = ExperimentReport(
        name,
        experiment.description if experiment else "",
        axes,
        arms,
        base,
        source,
        base_config,
        completeness(experiment, files.runs, files.failures),
        notes,
    )
    fill_statistics(report)
    fill_alternatives(report)
    report.settle = files.settle  # replayed with the rest of its settle: build.analyze
    report.power = experiment_power(report, effect)
    notes.extend(_experiment_notes(report))
    return report


def fill_statistics(report: ExperimentReport) -> None:
    """Per-arm summaries, the comparison with the base case, Holm over the compared arms, and
    each arm's verdict."""
    base = report.base
    base_values = {run.seed: run.final(HEADLINE.name) for run in base.runs} if base else {}
    for arm in report.shown_arms:
        arm.headline = summarize(arm.finals(HEADLINE.name))
        arm.fit = summarize(arm.finals(FIT.name))
        if base is not None and arm is not base:
            own = {run.seed: run.final(HEADLINE.name) for run in arm.runs}
            arm.comparison = compare(own, base_values)
    compared = [arm for arm in report.arms if arm.comparison is not None]
    adjusted = holm([arm.comparison.p_value for arm in compared])
    for arm, p in zip(compared, adjusted, strict=True):
        arm.comparison = dataclasses.replace(arm.comparison, p_adjusted=p)
    for arm in report.shown_arms:
        arm.verdict = _verdict(arm)


def _verdict(arm: Arm) -> str:
    """How the arm compares: only a complete arm with Holm p < 0.05 is above or below the base."""
    return verdict_of(arm, arm.comparison)


def verdict_of(arm: Arm, c: Comparison | None, p: float | None = None) -> str:
    """The arm's verdict by comparison `c` (the default one, or another analysis): only a
    complete arm whose adjusted p (`c.p_adjusted`, or `p`) is below 0.05 differs."""
    if arm.is_base:
        return BASE
    if not arm.runs:
        return NO_RUNS
    if arm.incomplete:
        return INCOMPLETE
    p = c.p_adjusted if c is not None and p is None else p
    if c is None or p is None or math.isnan(p):
        return NO_TEST
    if p >= ALPHA:
        return NOT_SIGNIFICANT
    return BETTER if c.diff > 0 else WORSE


def _experiment_notes(report: ExperimentReport) -> list[str]:
    name, notes = report.name, []
    if report.completeness.partial:
        notes.append(f"{name}: {report.completeness.describe()}")
    if report.completeness.extra:
        notes.append(f"{name}: {report.completeness.extra} runs not in {EXPERIMENT_FILE} (kept)")
    problems = {"diverged run": len(report.diverged), "failed run": len(report.failed)}
    for problem, count in problems.items():
        if count:
            notes.append(f"{name}: {plural(count, problem)}, excluded from statistics")
    incomplete = [arm.label for arm in report.arms if arm.incomplete and arm.runs]
    if incomplete:
        listed = "; ".join(incomplete)
        notes.append(f"{name}: incomplete arms (fewer ok seeds than planned): {listed}")
    if report.base is None:
        notes.append(
            f"{name}: no base case ({describe_config(report.base_config)}) found in the "
            "results read; differences left blank (include its experiment's folder)"
        )
    elif report.base_borrowed:
        notes.append(f"{name}: base case taken from experiment {report.base_source}")
    if any(arm.headline.n == 1 for arm in report.shown_arms):
        notes.append(f"{name}: some arms have a single seed: no interval, no p-value for them")
    return notes
