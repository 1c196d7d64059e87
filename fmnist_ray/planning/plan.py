"""What one invocation over many experiment files will do: the unique runs (a config shared by
several files trains once), which are already done anywhere under the results root, which only
need filing into another experiment, and the order to train the rest in (longest first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..spec.config import SEED_FIELD, Resources, RunConfig, format_value
from ..spec.grid import Experiment
from ..store.devices import device_label
from ..store.results import (
    FAILURES_DIR,
    RUNS_DIR,
    place_run,
    quarantine,
    read_metadata,
    run_path,
)
from ..store.storage import Location, locate
from ..store.tree import read_tree
from .cost import estimate_seconds, lower_bound, makespan


@dataclass
class PlannedRun:
    """One unique config and every experiment that contains it."""

    config: RunConfig
    experiments: list[str]
    resources: Resources
    done_in: list[str] = field(default_factory=list)  # experiments that already hold its result
    source: Location | None = None  # an existing result, anywhere under the root
    failed_before: bool = False  # a failure record (an earlier invocation) and no result
    corrupt_in: list[str] = field(default_factory=list)  # experiments with an invalid file

    @cached_property
    def run_id(self) -> str:
        """Hashed once: the driver asks for it several times per run (the config is never
        replaced; a changed copy of a config is a new PlannedRun)."""
        return self.config.run_id

    @property
    def done(self) -> bool:
        return self.source is not None

    @property
    def missing_in(self) -> list[str]:
        return [name for name in self.experiments if name not in self.done_in]

    @property
    def seconds(self) -> float:
        return estimate_seconds(self.config)


@dataclass
class Plan:
    experiments: list[Experiment]
    root: Location
    runs: list[PlannedRun]  # unique, in order of first appearance
    force: bool = False
    longest_first: bool = True  # False keeps file order (benchmarks/bench_order.py compares)
    corrupt: list[tuple[Location, str]] = field(default_factory=list)  # invalid files, why
    resources: dict[str, Resources] = field(default_factory=dict)  # per run, by experiment
    # What a label needs from the whole grid, once at plan time: each experiment's axes by name.
    axes: dict[str, list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.axes = {exp.name: [*exp.axes, SEED_FIELD] for exp in self.experiments}

    @property
    def planned(self) -> int:
        return sum(len(exp.runs) for exp in self.experiments)

    @property
    def todo(self) -> list[PlannedRun]:
        """The runs to train, longest first (so no long run starts last and runs alone)."""
        pending = [run for run in self.runs if self.force or not run.done]
        if not self.longest_first:
            return pending
        return sorted(pending, key=lambda run: run.seconds, reverse=True)

    @property
    def to_file(self) -> list[PlannedRun]:
        """Done somewhere under the root but missing from some experiment that contains them."""
        return [run for run in self.runs if run.done and run.missing_in and not self.force]

    def folder(self, experiment: str) -> Location:
        return self.root / experiment

    def wall_seconds(self, slots: int) -> tuple[float, float]:
        """Estimated wall time of the pending runs, longest first, and its lower bound."""
        durations = [run.seconds for run in self.todo]
        return makespan(durations, slots), lower_bound(durations, slots)


def make_plan(
    experiments: list[Experiment],
    results: str | Path | Location,
    force: bool = False,
    resources: dict[str, float | None] | None = None,
) -> Plan:
    """Collect the unique runs of `experiments` and look each one up under the results root.

    `resources` (gpus, cpus; None = not given) overrides every file's [resources].
    """
    root = locate(results)
    overrides = {k: v for k, v in (resources or {}).items() if v is not None}
    runs: dict[str, PlannedRun] = {}
    per_experiment = {}
    for exp in experiments:
        per_run = Resources(**(exp.resources.model_dump() | overrides))
        per_experiment[exp.name] = per_run
        for cfg in exp.runs:
            run = runs.setdefault(cfg.run_id, PlannedRun(cfg, [], per_run))
            run.experiments.append(exp.name)
    # Only this invocation's folders are tidied: invalid files elsewhere are no source of ours.
    mine = {(root / exp.name / RUNS_DIR).path for exp in experiments}
    # Every id under the root is seen (from the names), but only the files of planned runs,
    # and every file of this invocation's folders, are opened and checked.
    tree = read_tree([root], only=lambda path: path.stem in runs or path.parent.path in mine)
    index, corrupt = tree.by_id(), tree.invalid
    failed = {
        p.stem for exp in experiments for p in (root / exp.name / FAILURES_DIR).files(".json")
    }
    for run in runs.values():
        found = index.get(run.run_id, [])
        run.done_in = [path.path.rsplit("/", 3)[-3] for path in found]
        run.source = found[0] if found else None
        run.failed_before = not found and run.run_id in failed
    corrupt = [(path, why) for path, why in corrupt if path.parent.path in mine]
    for path, _ in corrupt:
        if path.stem in runs:
            runs[path.stem].corrupt_in.append(path.parent.parent.name)
    return Plan(
        experiments, root, list(runs.values()), force, corrupt=corrupt, resources=per_experiment
    )


def prepare(plan: Plan) -> list[str]:
    """Before training: move invalid results to quarantine (they train again) and file each
    valid result into the experiments that lack it. Returns what it did, one line each."""
    lines = []
    for path, why in plan.corrupt:
        target = quarantine(path)
        lines.append(f"warning: {path}: {why}; moved to {target}, and its run trains again")
    plan.corrupt = []
    filed = 0
    for run in plan.to_file:
        for name in run.missing_in:
            place_run(run.source, plan.folder(name))
            run.done_in.append(name)
            filed += 1
    if filed:
        lines.append(f"filed {filed} existing results into the other experiments that hold them")
    return lines


def run_devices(plan: Plan, experiment: Experiment) -> list[str]:
    """Where each done run of `experiment` trained (devices.device_label), from its result's
    metadata: the copy in the experiment's folder, else the one found elsewhere."""
    by_id = {run.run_id: run for run in plan.runs}
    labels = []
    for run in (by_id[run_id] for run_id in dict.fromkeys(c.run_id for c in experiment.runs)):
        if run.source is None:
            continue
        own = experiment.name in run.done_in
        path = run_path(plan.folder(experiment.name), run.run_id) if own else run.source
        labels.append(device_label(read_metadata(path)))
    return labels


def label(plan: Plan, run: PlannedRun) -> str:
    """`experiment: axis=value ... seed=N`, by the first experiment that contains the run; the
    same cost per run at any grid size (the axes come from the plan)."""
    name = run.experiments[0]
    values = " ".join(f"{f}={format_value(getattr(run.config, f))}" for f in plan.axes[name])
    more = f" (+{len(run.experiments) - 1} more)" if len(run.experiments) > 1 else ""
    return f"{name}{more}: {values}"
