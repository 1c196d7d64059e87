"""Reading a results tree for the report: every file the report reads goes through `_read_tree`
(results.py's readers) or `read_reference`; the rest groups what was read by experiment.
Path checks live here too, so that switching to pyarrow.fs URIs touches this module only."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..config import CONFIG_FIELDS
from ..grid import Experiment, load_experiment
from ..results import (
    FAILURES_DIR,
    METRIC_COLUMNS,
    RUNS_DIR,
    find_run_files,
    read_failures,
    read_results,
)
from .model import EXPERIMENT_FILE, ReportError, Run

REPORT_DIR = "report"
TRAIN_FOLDER = "train"  # where `fmnist-ray train` puts ad-hoc runs: no experiment of a study
METRICS = tuple(name for name in METRIC_COLUMNS.names if name != "epoch")
HINT = "pass an experiment's results folder (results/NAME) or a results root (results/)"


@dataclass
class ExperimentFiles:
    """What the results tree holds for one experiment."""

    name: str
    runs: list[Run]
    failures: list[dict[str, Any]]  # failure records of runs that never finished
    experiment: Experiment | None  # its experiment.toml, when present and valid
    notes: list[str] = field(default_factory=list)


@dataclass
class _Tree:
    """The raw contents of the folders read: run files, their rows, failures, experiment files."""

    run_files: list[Path]
    table: pa.Table
    failures: dict[Path, list[dict[str, Any]]]  # experiment folder -> its failure records
    experiments: dict[Path, Experiment | None]  # experiment folder -> its experiment.toml
    unreadable: dict[Path, str]  # experiment folder -> why its experiment.toml was not used
    skipped: list[Path]  # train/ folders left out


def _experiment_folder(path: Path) -> Path:
    """A run file or a runs/ or failures/ folder stands for its experiment folder."""
    if path.is_file():
        return path.parent.parent
    return path.parent if path.name in (RUNS_DIR, FAILURES_DIR) else path


def default_out_dir(paths: list[Path]) -> Path:
    """`report/` inside the one folder given (results/NAME/report for one experiment,
    results/report for a results root); for several folders, inside their common parent."""
    folders = list(dict.fromkeys(_experiment_folder(Path(p)) for p in paths))
    if len(folders) == 1:
        return folders[0] / REPORT_DIR
    return Path(os.path.commonpath([os.path.abspath(f) for f in folders])) / REPORT_DIR


def _check_paths(paths: list[Path]) -> None:
    if not paths:
        raise ReportError(f"no results folder given: {HINT}")
    for path in paths:
        if not path.exists():
            raise ReportError(f"{path}: no such file or folder; {HINT}")


def _read_tree(paths: list[Path]) -> _Tree:
    """Read everything under `paths`: the one place the report touches result files.

    A `train/` folder met while walking a results root holds ad-hoc `fmnist-ray train` runs,
    not an experiment: it is skipped unless it (or a file in it) is named in `paths`."""
    given = {_experiment_folder(p).resolve() for p in paths}
    run_files = list(dict.fromkeys(p.resolve() for p in find_run_files(paths)))
    folders = [file.parent.parent for file in run_files]
    for path in map(_experiment_folder, paths):
        if path.is_dir():
            found = sorted(path.rglob(f"{FAILURES_DIR}/*.json"))
            folders += [file.parent.parent.resolve() for file in found]
    skipped = [f for f in dict.fromkeys(folders) if f.name == TRAIN_FOLDER and f not in given]
    run_files = [file for file in run_files if file.parent.parent not in skipped]
    folders = [folder for folder in dict.fromkeys(folders) if folder not in skipped]
    experiments: dict[Path, Experiment | None] = dict.fromkeys(folders)
    unreadable = {}
    for folder in folders:
        if (folder / EXPERIMENT_FILE).is_file():
            try:
                experiments[folder] = load_experiment(folder / EXPERIMENT_FILE)
            except ValueError as error:
                unreadable[folder] = str(error).splitlines()[0]
    failures = {folder: read_failures(folder) for folder in folders}
    table = read_results(run_files)
    return _Tree(run_files, table, failures, experiments, unreadable, skipped)


def read_reference(path: Path) -> str:
    """The text of a reference file (its format: references.py)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such reference file")
    return path.read_text(encoding="utf-8")


def runs_from_table(table: pa.Table) -> list[Run]:
    """Split a results table into runs, epochs in order (a run read twice counts once)."""
    rows: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for row in table.to_pylist():
        rows[(row["experiment"], row["run_id"])][row["epoch"]] = row
    runs = []
    for (experiment, run_id), by_epoch in rows.items():
        ordered = [by_epoch[epoch] for epoch in sorted(by_epoch)]
        first = ordered[0]
        metrics = {m: np.array([r[m] for r in ordered], dtype=float) for m in METRICS}
        config = {name: first[name] for name in CONFIG_FIELDS}
        epochs = np.array(sorted(by_epoch))
        runs.append(Run(experiment, run_id, first["status"], config, epochs, metrics))
    return runs


def _folder_names(tree: _Tree, runs: list[Run]) -> dict[Path, str]:
    """Which experiment each results folder holds: its own name when runs carry that name,
    else the experiment whose run ids its files have (a folder renamed after the runs)."""
    ids_by_folder: dict[Path, set[str]] = {folder: set() for folder in tree.experiments}
    for file in tree.run_files:
        ids_by_folder[file.parent.parent].add(file.stem)
    ids_by_experiment: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        ids_by_experiment[run.experiment].add(run.run_id)
    names = {}
    for folder, ids in ids_by_folder.items():
        overlap = {e: len(run_ids & ids) for e, run_ids in ids_by_experiment.items()}
        best = max(overlap, key=overlap.get, default=None)
        renamed = folder.name not in overlap and best is not None and overlap[best] > 0
        names[folder] = best if renamed else folder.name
    return names


def _unfinished(records: list[dict[str, Any]], finished_ids: set[str]) -> list[dict[str, Any]]:
    """Failure records once per run, skipping runs that later succeeded."""
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("run_id") not in finished_ids:
            unique.setdefault(str(record.get("run_id")), record)
    return list(unique.values())


def load_tree(paths: list[Path]) -> tuple[list[ExperimentFiles], list[Run], list[str]]:
    """Every experiment under `paths` (by name), every run read, and notes on what was skipped."""
    paths = [Path(p) for p in paths]
    _check_paths(paths)
    tree = _read_tree(paths)
    if not tree.experiments:
        raise ReportError(
            f"no results under {', '.join(map(str, paths))}: found no runs/*.parquet or "
            "failures/*.json; run an experiment first, or pass its results folder (results/NAME)"
        )
    all_runs = runs_from_table(tree.table)
    names = _folder_names(tree, all_runs)
    experiments = []
    for name in sorted(set(names.values()) | {run.experiment for run in all_runs}):
        folders = sorted(folder for folder, n in names.items() if n == name)
        runs = [run for run in all_runs if run.experiment == name]
        records = [record for folder in folders for record in tree.failures[folder]]
        failures = _unfinished(records, {run.run_id for run in runs})
        found = [tree.experiments[f] for f in folders if tree.experiments[f] is not None]
        notes = [
            f"{name}: {folder / EXPERIMENT_FILE} unreadable ({why}); axes inferred from the runs"
            for folder, why in tree.unreadable.items()
            if folder in folders
        ]
        experiments.append(ExperimentFiles(name, runs, failures, (found or [None])[0], notes))
    skipped = [
        f"skipped {folder} (ad-hoc `fmnist-ray train` runs): name that folder to report it"
        for folder in tree.skipped
    ]
    return experiments, all_runs, skipped
