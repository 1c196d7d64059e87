"""The base case every arm is compared with: the experiment's [base], found among its own arms,
else the same config run by another experiment of the tree (never the ad-hoc train/ runs)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from ..spec.config import NEEDS, RunConfig, to_columns
from ..spec.grid import Experiment
from ..store.results import TRAIN_DIR
from .arms import describe_config, without_seed
from .model import Arm, Run


def base_config(experiment: Experiment | None, notes: list[str], name: str) -> dict[str, Any]:
    """The experiment's [base] (the study's base case without an experiment file), no seed.

    A [base] that is not a run by itself (scheduler 'steplr' with step_size swept in [grid])
    falls back to [base] without the options that make it incomplete: the study's reference.
    """
    if experiment is None:
        return without_seed(to_columns(RunConfig()))
    config, dropped = nearest_run(experiment.base)
    if dropped:
        notes.append(
            f"{name}: [base] is not a complete run by itself; base case = [base] without "
            f"{', '.join(dropped)}"
        )
    return without_seed(to_columns(config))


def nearest_run(options: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """`options` as a run, and the options left out to make it one: each failing option goes
    with the option that decides whether it applies and that one's other dependents (scheduler
    'steplr' without step_size: scheduler, step_size, gamma). RunConfig() if nothing is left."""
    kept = dict(options)
    while True:
        try:
            return RunConfig(**kept), [key for key in options if key not in kept]
        except ValidationError as error:
            failing = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
        deciding = {NEEDS.get(field, field) for field in failing}
        drop = deciding | {field for field, decider in NEEDS.items() if decider in deciding}
        if not drop & kept.keys():
            return RunConfig(), list(options)
        kept = {key: value for key, value in kept.items() if key not in drop}


def choose_base(
    name: str, experiment: Experiment | None, arms: list[Arm], all_runs: list[Run], notes: list[str]
) -> tuple[dict[str, Any], Arm | None, str | None]:
    """(base config, base arm, where it came from). The experiment's base case if any results
    hold it; else the study's base case with the same epochs (e.g. 'combined' sets a wide model
    in [base] and runs only its variants). Marks the arm chosen, and only it, as the base."""
    wanted = base_config(experiment, notes, name)
    study = without_seed(to_columns(RunConfig(epochs=wanted["epochs"])))
    for config in [wanted] + ([study] if study != wanted else []):
        base, source = _find_base(name, arms, config, all_runs, notes)
        if base is not None:
            if config is not wanted:
                notes.append(
                    f"{name}: [base] ({describe_config(wanted)}) has no results; compared with "
                    "the study's base case instead"
                )
            base.is_base = True
            return config, base, source
    return wanted, None, None


def _find_base(
    name: str, arms: list[Arm], config: dict[str, Any], all_runs: list[Run], notes: list[str]
) -> tuple[Arm | None, str | None]:
    """The base case among this experiment's arms, else the same config run elsewhere."""
    own = next((arm for arm in arms if arm.config == config), None)
    if own is not None and own.runs:
        return own, name
    runs = _borrowed_runs(name, config, all_runs)
    if not runs:
        return None, None
    if own is not None:
        notes.append(f"{name}: its base arm {own.label} has no finished runs; base case borrowed")
    sources = ", ".join(dict.fromkeys(run.experiment for run in runs))
    return Arm("base case", {}, config, sorted(runs, key=lambda r: r.seed)), sources


def _borrowed_runs(name: str, config: dict[str, Any], all_runs: list[Run]) -> list[Run]:
    """Ok runs of `config` in other experiments, each run once: a dedicated baseline experiment
    first (most base seeds, then fewest configurations)."""
    by_experiment: dict[str, list[Run]] = defaultdict(list)
    configs: dict[str, set[tuple]] = defaultdict(set)
    for run in all_runs:
        configs[run.experiment].add(tuple(without_seed(run.config).values()))
        if run.experiment not in (name, TRAIN_DIR) and run.status == "ok":
            if without_seed(run.config) == config:
                by_experiment[run.experiment].append(run)
    ranked = sorted(by_experiment, key=lambda e: (-len(by_experiment[e]), len(configs[e]), e))
    runs: dict[str, Run] = {}
    for experiment in ranked:  # the same run in two folders counts once
        runs |= {run.run_id: run for run in by_experiment[experiment] if run.run_id not in runs}
    return list(runs.values())
