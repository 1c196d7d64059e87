"""Runs into arms: an experiment's axes (from its file, or inferred from the runs), one arm per
combination of axis values in the file's order, seeds planned per arm, and how complete it is."""

from __future__ import annotations

from typing import Any

from ..spec.config import (
    CONFIG_FIELDS,
    SEED_FIELD,
    from_columns,
    stored_config,
    to_columns,
    varying_fields,
)
from ..spec.grid import Experiment
from .model import EXPERIMENT_FILE, Arm, Completeness, Run
from .text import arm_label


def without_seed(config: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in config.items() if name != SEED_FIELD}


def describe_config(config: dict[str, Any]) -> str:
    """A config (Parquet columns) in RunConfig.describe()'s words, without the seed."""
    options = {k: v for k, v in config.items() if v is not None} | {SEED_FIELD: 0}
    try:
        cfg = from_columns(options)  # describe() leaves epochs out and ends with the seed
        return f"{cfg.describe().removesuffix(f' {SEED_FIELD}=0')} epochs={cfg.epochs}"
    except ValueError:
        return arm_label(without_seed(config))


def failure_config(record: dict[str, Any]) -> dict[str, Any] | None:
    """A failure record's config as Parquet columns (None when it is not a valid config)."""
    try:
        return to_columns(stored_config(record.get("config", {})))
    except (TypeError, ValueError):
        return None


def find_axes(
    experiment: Experiment | None, configs: list[dict[str, Any]], notes: list[str], name: str
) -> list[str]:
    """The experiment file's axes, plus any other field that varies among the runs found."""
    varying = varying_fields(configs)
    if experiment is None:
        if configs:
            notes.append(
                f"{name}: no {EXPERIMENT_FILE}; axes inferred from the runs: "
                + (", ".join(varying) or "none")
            )
        return varying
    axes = list(experiment.axes)
    extra = [f for f in varying if f not in axes]
    if extra:
        notes.append(f"{name}: runs vary in {', '.join(extra)} beyond {EXPERIMENT_FILE}'s axes")
    return [f for f in CONFIG_FIELDS if f in axes or f in extra]


def sort_key(values: tuple) -> tuple:
    """Axis values in order, None last (an option that does not apply to some arms)."""
    return tuple((value is None, 0 if value is None else value) for value in values)


def build_arms(
    axes: list[str],
    runs: list[Run],
    failures: list[tuple[dict[str, Any], dict[str, Any]]],
    experiment: Experiment | None,
) -> list[Arm]:
    """Group runs (and failure records with their configs) into arms by axis values, in the
    experiment file's order when there is one. Each arm plans the file's seeds, or without a
    file every seed seen in the experiment."""
    arms: dict[tuple, Arm] = {}
    seeds = {run.seed for run in runs} | {config[SEED_FIELD] for _, config in failures}
    planned = len(experiment.seeds) if experiment else len(seeds)

    def arm_for(config: dict[str, Any]) -> Arm:
        key = tuple(config[axis] for axis in axes)
        if key not in arms:
            values = dict(zip(axes, key, strict=True))
            label = arm_label(values) if axes else describe_config(config)
            arms[key] = Arm(label, values, without_seed(config), planned=planned)
        return arms[key]

    for run in sorted(runs, key=lambda r: r.seed):
        target = arm_for(run.config)
        (target.runs if run.status == "ok" else target.diverged).append(run)
    for record, config in failures:
        arm_for(config).failed.append(record)
    order: dict[tuple, int] = {}
    for cfg in experiment.runs if experiment else ():
        columns = to_columns(cfg)
        order.setdefault(tuple(columns[axis] for axis in axes), len(order))
    keys = sorted(arms, key=lambda k: (order.get(k, len(order)), sort_key(k)))
    return [arms[key] for key in keys]


def completeness(
    experiment: Experiment | None, runs: list[Run], failures: list[dict[str, Any]]
) -> Completeness:
    found = {run.run_id for run in runs}
    failed = {str(record.get("run_id")) for record in failures}
    if experiment is None:
        return Completeness(None, len(found), len(failed), 0, 0)
    expected = {cfg.run_id for cfg in experiment.runs}
    finished = len(found & expected)
    failed_expected = len(failed & expected)
    missing = len(expected) - finished - failed_expected
    return Completeness(len(expected), finished, failed_expected, missing, len(found - expected))
