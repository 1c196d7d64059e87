"""Reading a results tree for the report: every file the report reads goes through `_read_tree`
(the store's `read_tree`, failure records, experiment files) or `read_reference`; the rest groups
what was read by experiment. Paths are local folders or pyarrow.fs URIs alike, checked here."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow.fs import FileType

from ..spec.config import CONFIG_FIELDS
from ..spec.grid import Experiment, load_experiment
from ..spec.metrics import EPOCH, NAMES
from ..store.devices import UNKNOWN, device_label
from ..store.results import FAILURES_DIR, RUNS_DIR, TRAIN_DIR, read_failures
from ..store.storage import Location, StorageError, is_uri, locate
from ..store.tree import LOCAL_READERS, REMOTE_READERS, read_tree
from .model import EXPERIMENT_FILE, SETTLE_FILE, ReportError, Run

REPORT_DIR = "report"
HINT = "pass an experiment's results folder (results/NAME) or a results root (results/)"


@dataclass
class ExperimentFiles:
    """What the results tree holds for one experiment."""

    name: str
    runs: list[Run]
    failures: list[dict[str, Any]]  # failure records of runs that never finished
    experiment: Experiment | None  # its experiment.toml, when present and valid
    notes: list[str] = field(default_factory=list)
    settle: dict[str, Any] | None = None  # its settle.json: the design `settle` ran under


@dataclass
class _Tree:
    """The raw contents of the folders read: run files, their rows, failures, experiment files.
    Folders are keyed by their Location's path (local or on object storage)."""

    run_files: list[Location]
    table: pa.Table
    folders: dict[str, Location]  # every experiment folder met
    failures: dict[str, list[dict[str, Any]]]  # folder -> its failure records
    experiments: dict[str, Experiment | None]  # folder -> its experiment.toml
    unreadable: dict[str, str]  # folder -> why its experiment.toml was not used
    skipped: list[Location]  # train/ folders left out
    invalid: list[tuple[Location, str]]  # run files that do not read back as a run, and why
    bad_failures: dict[str, list[str]]  # folder -> failure files that do not parse, and why
    devices: dict[tuple[str, str], str]  # (experiment, run id) -> where it trained
    settles: dict[str, dict[str, Any] | None]  # folder -> its settle record


@dataclass
class _Folder:
    """What one experiment folder holds besides its runs."""

    experiment: Experiment | None
    unreadable: str | None  # why its experiment.toml was not used
    failures: list[dict[str, Any]]
    bad_failures: list[str]
    settle: dict[str, Any] | None


def _read_folder(folder: Location) -> _Folder:
    experiment, why = _read_experiment(folder)
    bad: list[str] = []
    failures = read_failures(folder, bad)
    return _Folder(experiment, why, failures, bad, _read_settle(folder))


def _experiment_folder(path: Location) -> Location:
    """A run file or a runs/ or failures/ folder stands for its experiment folder."""
    if path.kind() == FileType.File:
        return path.parent.parent
    return path.parent if path.name in (RUNS_DIR, FAILURES_DIR) else path


def default_out_dir(paths: list[str | Path]) -> Path:
    """`report/` inside the one folder given (results/NAME/report for one experiment,
    results/report for a results root); for several folders, inside their common parent.
    Results on object storage get `report/` in the current folder."""
    if any(is_uri(p) for p in paths):
        return Path(REPORT_DIR)
    folders = list(dict.fromkeys(Path(_experiment_folder(locate(p)).path) for p in paths))
    if len(folders) == 1:
        return folders[0] / REPORT_DIR
    return Path(os.path.commonpath([str(f) for f in folders])) / REPORT_DIR


def _check_paths(paths: list[Location]) -> None:
    if not paths:
        raise ReportError(f"no results folder given: {HINT}")
    for path in paths:
        if not path.exists():
            raise ReportError(f"{path}: no such file or folder; {HINT}")


def _read_experiment(folder: Location) -> tuple[Experiment | None, str | None]:
    """The experiment.toml copy in a results folder, or why it could not be used."""
    copy = folder / EXPERIMENT_FILE
    if copy.kind() != FileType.File:
        return None, None
    try:
        return load_experiment(str(copy), text=copy.read_text()), None
    except ValueError as error:
        return None, str(error).splitlines()[0]


def _read_settle(folder: Location) -> dict[str, Any] | None:
    """The settle record in a results folder (fmnist_ray.settling writes it), if any."""
    record = folder / SETTLE_FILE
    if record.kind() != FileType.File:
        return None
    try:
        return json.loads(record.read_text())
    except ValueError:
        return None


def _read_tree(paths: list[Location]) -> _Tree:
    """Read everything under `paths`: the one place the report touches result files.

    A `train/` folder met while walking a results root holds ad-hoc `fmnist-ray train` runs,
    not an experiment: it is skipped unless it (or a file in it) is named in `paths`.
    A run file that does not read back as a whole run is left out and named."""
    given = {_experiment_folder(p).path for p in paths}
    read = read_tree(paths)
    folders = {file.parent.parent.path: file.parent.parent for file in read.files}
    for path in map(_experiment_folder, paths):
        for file in path.files(".json", recursive=True):
            if file.parent.name == FAILURES_DIR:
                folders.setdefault(file.parent.parent.path, file.parent.parent)
    skipped = [f for key, f in folders.items() if f.name == TRAIN_DIR and key not in given]
    for folder in skipped:
        del folders[folder.path]
    read = read.within(folders)
    # Folders read several at once: on an object store each of a folder's few requests waits a
    # round trip. One folder after another, 73 folders at 30 ms per request made the report's
    # reader 15 s slower than reading the runs alone (100 s against 85, bench_store.py).
    workers = LOCAL_READERS if all(f.local for f in folders.values()) else REMOTE_READERS
    with ThreadPoolExecutor(max(1, min(workers, len(folders)))) as pool:
        contents = dict(zip(folders, pool.map(_read_folder, folders.values())))
    experiments = {key: folder.experiment for key, folder in contents.items()}
    unreadable = {key: folder.unreadable for key, folder in contents.items() if folder.unreadable}
    failures = {key: folder.failures for key, folder in contents.items()}
    bad_failures = {key: folder.bad_failures for key, folder in contents.items()}
    run_files = [run.path for run in read.runs]
    devices = {(run.meta.get("experiment"), run.meta.get("run_id")): device_label(run.meta)
               for run in read.runs}  # fmt: skip
    return _Tree(
        run_files, read.table(), folders, failures, experiments, unreadable, skipped,
        read.invalid, bad_failures, devices,
        {key: folder.settle for key, folder in contents.items()},
    )  # fmt: skip


def read_reference(path: Path) -> str:
    """The text of a reference file (its format: references.py)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such reference file")
    return path.read_text(encoding="utf-8")


def runs_from_table(
    table: pa.Table, devices: dict[tuple[str, str], str] | None = None
) -> list[Run]:
    """Split a results table into runs, epochs in order (a run read twice counts once: its
    last copy of an epoch is kept); `devices`: where each (experiment, run id) trained (unknown
    when absent). Column by column: a dict per row cost two to four times as much (0.12-0.21
    ms per run file against 0.05 here), seconds of a 10,000-run report's reading."""
    columns = table.to_pydict()
    rows: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for index, key in enumerate(zip(columns["experiment"], columns["run_id"])):
        rows[key][columns[EPOCH][index]] = index
    values = {m: np.asarray(columns[m], dtype=float) for m in NAMES}
    runs = []
    for (experiment, run_id), by_epoch in rows.items():
        epochs = np.array(sorted(by_epoch))
        order = [by_epoch[epoch] for epoch in epochs]
        first = order[0]
        metrics = {m: values[m][order] for m in NAMES}
        config = {name: columns[name][first] for name in CONFIG_FIELDS}
        device = (devices or {}).get((experiment, run_id), UNKNOWN)
        status = columns["status"][first]
        runs.append(Run(experiment, run_id, status, config, epochs, metrics, device))
    return runs


def _folder_names(tree: _Tree, runs: list[Run]) -> dict[str, str]:
    """Which experiment each results folder holds: its own name when runs carry that name,
    else the experiment whose run ids its files have (a folder renamed after the runs)."""
    ids_by_folder: dict[str, set[str]] = {key: set() for key in tree.folders}
    for file in tree.run_files:
        ids_by_folder[file.parent.parent.path].add(file.stem)
    ids_by_experiment: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        ids_by_experiment[run.experiment].add(run.run_id)
    names = {}
    for key, ids in ids_by_folder.items():
        own = tree.folders[key].name
        overlap = {e: len(run_ids & ids) for e, run_ids in ids_by_experiment.items()}
        best = max(overlap, key=overlap.get, default=None)
        renamed = own not in overlap and best is not None and overlap[best] > 0
        names[key] = best if renamed else own
    return names


def _unfinished(records: list[dict[str, Any]], finished_ids: set[str]) -> list[dict[str, Any]]:
    """Failure records once per run, skipping runs that later succeeded."""
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("run_id") not in finished_ids:
            unique.setdefault(str(record.get("run_id")), record)
    return list(unique.values())


def load_tree(paths: list[str | Path]) -> tuple[list[ExperimentFiles], list[Run], list[str]]:
    """Every experiment under `paths` (by name), every run read, and notes on what was skipped."""
    try:
        where = [locate(p) for p in paths]
    except StorageError as error:
        raise ReportError(str(error)) from None
    _check_paths(where)
    tree = _read_tree(where)
    if not tree.folders:
        raise ReportError(
            f"no results under {', '.join(map(str, paths))}: found no runs/*.parquet or "
            "failures/*.json; run an experiment first, or pass its results folder (results/NAME)"
        )
    all_runs = runs_from_table(tree.table, tree.devices)
    names = _folder_names(tree, all_runs)
    invalid_by_folder: dict[str, list[str]] = defaultdict(list)
    for path, why in tree.invalid:
        invalid_by_folder[path.parent.parent.path].append(f"{path}: {why}")
    experiments = []
    for name in sorted(set(names.values()) | {run.experiment for run in all_runs}):
        keys = sorted(key for key, n in names.items() if n == name)
        runs = [run for run in all_runs if run.experiment == name]
        records = [record for key in keys for record in tree.failures[key]]
        failures = _unfinished(records, {run.run_id for run in runs})
        found = [tree.experiments[k] for k in keys if tree.experiments[k] is not None]
        notes = [
            f"{name}: {tree.folders[key] / EXPERIMENT_FILE} unreadable ({why}); axes inferred "
            "from the runs"
            for key, why in tree.unreadable.items()
            if key in keys
        ]
        notes += [
            f"{name}: left out {line} (`fmnist-ray run` moves such files to quarantine/ and "
            "trains the run again)"
            for key in keys
            for line in invalid_by_folder[key]
        ]
        notes += [
            f"{name}: left out {line}: not a failure record (delete or fix it)"
            for key in keys
            for line in tree.bad_failures[key]
        ]
        settle = next(filter(None, (tree.settles[k] for k in keys)), None)
        experiment = (found or [None])[0]
        experiments.append(ExperimentFiles(name, runs, failures, experiment, notes, settle))
    skipped = [
        f"skipped {folder} (ad-hoc `fmnist-ray train` runs): name that folder to report it"
        for folder in tree.skipped
    ]
    return experiments, all_runs, skipped
