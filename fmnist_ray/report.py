"""Figures and summary tables from a results tree: per-arm statistics over seeds (mean, 95% CI,
Welch's t-test against the base case), loss/accuracy curves, and an overview of all experiments.
Figures are matplotlib `Figure`s drawn with Agg (no pyplot state), so tests inspect them unsaved."""

from __future__ import annotations

import html
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator
from scipy import stats as scipy_stats

from .config import CONFIG_FIELDS, RunConfig
from .grid import Experiment, load_experiment
from .results import (
    FAILURES_DIR,
    METRIC_COLUMNS,
    RUNS_DIR,
    config_columns,
    find_run_files,
    read_failures,
    read_results,
)

EXPERIMENT_FILE = "experiment.toml"  # the copy of the experiment file beside its runs/
REPORT_DIR = "report"
CONFIDENCE = 0.95
DPI = 150
FIGURES = ("train_loss", "test_acc", "final_test_acc")
METRIC_NAMES = {"train_loss": "training loss", "test_acc": "test accuracy"}
AXIS_LABELS = {
    "lr": "learning rate lr",
    "batch_size": "batch size (images per step)",
    "step_size": "StepLR step_size (optimizer steps)",
    "gamma": "StepLR gamma (factor per step_size)",
    "epochs": "epochs",
    "momentum": "momentum",
    "weight_decay": "weight decay",
    "channels": "channels (c1,c2,c3)",
}
# One sequential colour family per value of a grid's second axis; shades follow the first axis.
FAMILIES = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys")
BASE_COLOR = "0.2"
BEST_COLOR = "crimson"


class ReportError(ValueError):
    """Nothing to report on: one line saying what is missing, where we looked, what to do."""


# ---------------------------------------------------------------------------- data structures


@dataclass(frozen=True, eq=False)
class Run:
    """One run's per-epoch history as read back from its Parquet file."""

    experiment: str
    run_id: str
    status: str
    config: dict[str, Any]  # config columns (channels as 'c1,c2,c3'), seed included
    epochs: np.ndarray
    metrics: dict[str, np.ndarray]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    def final(self, metric: str) -> float:
        return float(self.metrics[metric][-1])


@dataclass(frozen=True)
class Stats:
    """Final-epoch statistics of one arm over its seeds; NaN where undefined (n too small)."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    ci_low: float  # 95% CI: mean -/+ t(0.975, n-1) * std / sqrt(n)
    ci_high: float
    diff: float  # mean - base mean
    p_value: float  # Welch's t-test against the base runs
    base_n: int  # seeds on the base side of the comparison (0: no base)


@dataclass(eq=False)
class Arm:
    """Runs sharing every axis value: they differ only by seed."""

    label: str
    values: dict[str, Any]  # axis -> value, as in the Parquet columns
    config: dict[str, Any]  # the full config without seed
    runs: list[Run] = field(default_factory=list)  # status ok: these make the statistics
    diverged: list[Run] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    is_base: bool = False
    train_loss: Stats | None = None
    test_acc: Stats | None = None

    def finals(self, metric: str) -> np.ndarray:
        return np.array([run.final(metric) for run in self.runs], dtype=float)


@dataclass(frozen=True)
class Completeness:
    """How much of the experiment file's grid has results."""

    expected: int | None  # None: no experiment file, so unknown
    finished: int  # runs with a result file (ok or diverged)
    failed: int
    missing: int
    extra: int  # runs found that the experiment file does not list

    @property
    def partial(self) -> bool:
        return self.expected is not None and self.finished < self.expected

    def describe(self) -> str:
        if self.expected is None:
            failed = f", {self.failed} failed" if self.failed else ""
            return f"{self.finished} runs{failed} (no {EXPERIMENT_FILE}: expected count unknown)"
        state = "partial" if self.partial else "complete"
        text = f"{state}: {self.finished} of {self.expected} runs"
        if self.partial:
            text += f" ({self.failed} failed, {self.missing} not run)"
        return text


@dataclass
class ExperimentReport:
    """Everything the summary and the figures of one experiment show."""

    name: str
    description: str
    axes: list[str]
    arms: list[Arm]
    base: Arm | None  # the base case's runs; one of `arms` or borrowed from other experiments
    base_source: str | None  # where the base runs came from: this experiment or others
    base_config: dict[str, Any]
    completeness: Completeness
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Arm | None:
        """The arm with the highest mean final test accuracy (over its ok seeds)."""
        scored = [arm for arm in self.arms if arm.test_acc and arm.test_acc.n]
        return max(scored, key=lambda arm: arm.test_acc.mean) if scored else None

    @property
    def base_borrowed(self) -> bool:
        return self.base is not None and self.base not in self.arms

    @property
    def diverged(self) -> list[tuple[Arm, Run]]:
        return [(arm, run) for arm in self.arms for run in arm.diverged]

    @property
    def failed(self) -> list[tuple[Arm, dict[str, Any]]]:
        return [(arm, record) for arm in self.arms for record in arm.failed]


@dataclass
class ReportResult:
    """What `make_report` wrote, and the notes the CLI prints."""

    out_dir: Path
    index_path: Path  # index.html, the page to open first
    index_md: Path
    summaries: dict[str, list[Path]]  # experiment -> [summary.md, summary.html]
    figures: dict[str, list[Path]]  # experiment -> PNG and SVG files
    notes: list[str]
    experiments: dict[str, ExperimentReport]  # the numbers behind the files


# ---------------------------------------------------------------------------- statistics


def seed_stats(values: Iterable[float], base: Iterable[float] | None = None) -> Stats:
    """Mean, sample std, 95% t interval, and difference + Welch p-value against `base`.

    With n < 2 there is no interval; with n < 2 on either side there is no p-value (NaN).
    """
    x = np.asarray(list(values), dtype=float)
    b = np.asarray([] if base is None else list(base), dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n >= 2 else math.nan
    half = (
        scipy_stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * std / math.sqrt(n) if n >= 2 else math.nan
    )
    diff = mean - float(b.mean()) if n and len(b) else math.nan
    p_value = math.nan
    if n >= 2 and len(b) >= 2:
        with warnings.catch_warnings():  # identical values on both sides: p is NaN, say nothing
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(scipy_stats.ttest_ind(x, b, equal_var=False).pvalue)
    return Stats(n, mean, std, mean - half, mean + half, diff, p_value, len(b))


# ---------------------------------------------------------------------------- reading results


def runs_from_table(table: pa.Table) -> list[Run]:
    """Split a results table into runs, epochs in order (a run read twice counts once)."""
    rows: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for row in table.to_pylist():
        rows[(row["experiment"], row["run_id"])][row["epoch"]] = row
    runs = []
    metric_names = [name for name in METRIC_COLUMNS.names if name != "epoch"]
    for (experiment, run_id), by_epoch in rows.items():
        ordered = [by_epoch[epoch] for epoch in sorted(by_epoch)]
        first = ordered[0]
        metrics = {m: np.array([r[m] for r in ordered], dtype=float) for m in metric_names}
        config = {name: first[name] for name in CONFIG_FIELDS}
        epochs = np.array(sorted(by_epoch))
        runs.append(Run(experiment, run_id, first["status"], config, epochs, metrics))
    return runs


def _check_paths(paths: list[Path]) -> None:
    hint = "pass an experiment's results folder (results/NAME) or a results root (results/)"
    if not paths:
        raise ReportError(f"no results folder given: {hint}")
    for path in paths:
        if not path.exists():
            raise ReportError(f"{path}: no such file or folder; {hint}")


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


def _failure_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(_experiment_folder, paths):
        if path.is_dir():
            files += sorted(f for f in path.rglob("*.json") if f.parent.name == FAILURES_DIR)
    return files


def _folder_experiments(
    run_files: list[Path], failure_files: list[Path], runs: list[Run]
) -> dict[Path, str]:
    """Which experiment each results folder holds: its own name when runs carry that name,
    else the experiment whose run ids its files have (a folder renamed after the runs)."""
    ids_by_folder: dict[Path, set[str]] = defaultdict(set)
    for file in run_files:
        ids_by_folder[file.parent.parent].add(file.stem)
    for file in failure_files:
        ids_by_folder.setdefault(file.parent.parent, set())
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


def _load_experiment_file(folders: list[Path], notes: list[str], name: str) -> Experiment | None:
    for folder in folders:
        path = folder / EXPERIMENT_FILE
        if path.is_file():
            try:
                return load_experiment(path)
            except ValueError as error:
                first = str(error).splitlines()[0]
                notes.append(f"{name}: {path} unreadable ({first}); axes inferred from the runs")
                return None
    return None


def _failure_records(folders: list[Path], finished_ids: set[str]) -> list[dict[str, Any]]:
    """Failure records of these folders, once per run, skipping runs that later succeeded."""
    records: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for record in read_failures(folder):
            if record.get("run_id") not in finished_ids:
                records.setdefault(str(record.get("run_id")), record)
    return list(records.values())


# ---------------------------------------------------------------------------- arms and base case


def format_value(value: Any) -> str:
    """An axis value as people write it: 0.001, on/off, 6,16,120, none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def arm_label(values: dict[str, Any]) -> str:
    """'lr=0.001' or 'activation=relu, pooling=max'. Options that do not apply (None, e.g.
    LeNet-5 options of an fc run) are left out unless nothing else is left."""
    shown = {axis: value for axis, value in values.items() if value is not None} or values
    return ", ".join(f"{axis}={format_value(value)}" for axis, value in shown.items())


def _without_seed(config: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in config.items() if name != "seed"}


def describe_config(config: dict[str, Any]) -> str:
    """A config (Parquet columns) in RunConfig.describe()'s words, without the seed."""
    options = {k: v for k, v in config.items() if v is not None} | {"seed": 0}
    if isinstance(options.get("channels"), str):
        options["channels"] = tuple(int(c) for c in options["channels"].split(","))
    try:
        text = RunConfig(**options).describe().removesuffix(" seed=0")
        return f"{text} epochs={options.get('epochs')}"  # describe() leaves epochs out
    except ValueError:
        return arm_label(_without_seed(config))


def _failure_config(record: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return config_columns(RunConfig(**record.get("config", {})))
    except (TypeError, ValueError):
        return None


def _axes(
    experiment: Experiment | None, configs: list[dict[str, Any]], notes: list[str], name: str
) -> list[str]:
    """The experiment file's axes, plus any other field that varies among the runs found."""
    varying = [
        field_name
        for field_name in CONFIG_FIELDS
        if field_name != "seed" and len({repr(c[field_name]) for c in configs}) > 1
    ]
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


def _sort_key(values: tuple) -> tuple:
    return tuple((value is None, 0 if value is None else value) for value in values)


def _build_arms(
    axes: list[str],
    runs: list[Run],
    failures: list[tuple[dict[str, Any], dict[str, Any]]],
    experiment: Experiment | None,
) -> list[Arm]:
    """Group runs into arms by axis values, in the experiment file's order when there is one."""
    arms: dict[tuple, Arm] = {}

    def arm_for(config: dict[str, Any]) -> Arm:
        key = tuple(config[axis] for axis in axes)
        if key not in arms:
            values = dict(zip(axes, key, strict=True))
            label = arm_label(values) if axes else describe_config(config)
            arms[key] = Arm(label, values, _without_seed(config))
        return arms[key]

    for run in sorted(runs, key=lambda r: r.seed):
        target = arm_for(run.config)
        (target.runs if run.status == "ok" else target.diverged).append(run)
    for record, config in failures:
        arm_for(config).failed.append(record)
    order: dict[tuple, int] = {}
    for cfg in experiment.runs if experiment else ():
        columns = config_columns(cfg)
        order.setdefault(tuple(columns[axis] for axis in axes), len(order))
    keys = sorted(arms, key=lambda k: (order.get(k, len(order)), _sort_key(k)))
    return [arms[key] for key in keys]


def _base_config(experiment: Experiment | None, notes: list[str], name: str) -> dict[str, Any]:
    """The experiment's [base] (the study's base case without an experiment file), no seed.

    A [base] that is not a run by itself (scheduler 'steplr' with step_size swept in [grid])
    falls back to [base] without its scheduler/momentum settings: the study's reference.
    """
    if experiment is None:
        return _without_seed(config_columns(RunConfig()))
    try:
        return _without_seed(config_columns(experiment.base_config))
    except ValueError:
        pass
    dropped = ("scheduler", "step_size", "gamma", "momentum")
    options = {k: v for k, v in experiment.base.items() if k not in dropped}
    try:
        config = RunConfig(**options)
    except ValueError:
        config = RunConfig()
    notes.append(
        f"{name}: [base] is not a complete run by itself; base case = [base] without "
        f"{', '.join(d for d in dropped if d in experiment.base)}"
    )
    return _without_seed(config_columns(config))


def _choose_base(
    name: str,
    experiment: Experiment | None,
    arms: list[Arm],
    all_runs: list[Run],
    notes: list[str],
) -> tuple[dict[str, Any], Arm | None, str | None]:
    """The experiment's base case if any results hold it; else the study's base case with the
    same epochs (e.g. 'combined' sets a wide model in [base] and runs only its variants)."""
    wanted = _base_config(experiment, notes, name)
    study = _without_seed(config_columns(RunConfig(epochs=wanted["epochs"])))
    for config in [wanted] + ([study] if study != wanted else []):
        base, source = _find_base(name, arms, config, all_runs)
        if base is not None:
            if config is not wanted:
                notes.append(
                    f"{name}: [base] ({describe_config(wanted)}) has no results; compared with "
                    f"the study's base case instead"
                )
            return config, base, source
    return wanted, None, None


def _find_base(
    name: str, arms: list[Arm], base_config: dict[str, Any], all_runs: list[Run]
) -> tuple[Arm | None, str | None]:
    """The base case among this experiment's arms, else the same config run elsewhere."""
    for arm in arms:
        if arm.config == base_config:
            arm.is_base = True
            if arm.runs:
                return arm, name
    by_experiment: dict[str, list[Run]] = defaultdict(list)
    configs: dict[str, set[tuple]] = defaultdict(set)
    for run in all_runs:
        configs[run.experiment].add(tuple(_without_seed(run.config).values()))
        if (
            run.experiment != name
            and run.status == "ok"
            and _without_seed(run.config) == base_config
        ):
            by_experiment[run.experiment].append(run)
    # A dedicated baseline experiment first: most base seeds, then fewest configurations.
    ranked = sorted(by_experiment, key=lambda e: (-len(by_experiment[e]), len(configs[e]), e))
    runs: dict[str, Run] = {}
    sources = []
    for experiment in ranked:
        fresh = [run for run in by_experiment[experiment] if run.run_id not in runs]
        runs |= {run.run_id: run for run in fresh}  # the same run in two folders counts once
        sources += [experiment] if fresh else []
    if not runs:
        return None, None
    base = Arm("base case", {}, base_config, sorted(runs.values(), key=lambda r: r.seed))
    base.is_base = True
    return base, ", ".join(sources)


def _completeness(
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


def summarize_experiment(
    name: str,
    runs: list[Run],
    failures: list[dict[str, Any]],
    experiment: Experiment | None,
    all_runs: list[Run],
) -> ExperimentReport:
    """Arms, base case, statistics and notes of one experiment (no files touched)."""
    notes: list[str] = []
    failure_configs = []
    for record in failures:
        config = _failure_config(record)
        if config is None:
            notes.append(f"{name}: failure record {record.get('run_id')} has an unreadable config")
        else:
            failure_configs.append((record, config))
    configs = [run.config for run in runs] + [config for _, config in failure_configs]
    axes = _axes(experiment, configs, notes, name)
    arms = _build_arms(axes, runs, failure_configs, experiment)
    base_config, base, source = _choose_base(name, experiment, arms, all_runs, notes)
    _fill_stats(arms, base)
    completeness = _completeness(experiment, runs, failures)
    description = experiment.description if experiment else ""
    report = ExperimentReport(
        name, description, axes, arms, base, source, base_config, completeness, notes
    )
    notes.extend(_experiment_notes(report))
    return report


def _fill_stats(arms: list[Arm], base: Arm | None) -> None:
    base_acc = base.finals("test_acc") if base else None
    base_loss = base.finals("train_loss") if base else None
    if base is not None and base not in arms:
        base.test_acc = seed_stats(base_acc)
        base.train_loss = seed_stats(base_loss)
    for arm in arms:
        own = arm is base
        arm.test_acc = seed_stats(arm.finals("test_acc"), None if own else base_acc)
        arm.train_loss = seed_stats(arm.finals("train_loss"), None if own else base_loss)
        if own:  # the reference itself: difference 0 by definition, no test against itself
            arm.test_acc = _as_reference(arm.test_acc)
            arm.train_loss = _as_reference(arm.train_loss)


def _as_reference(stats: Stats) -> Stats:
    return Stats(
        stats.n, stats.mean, stats.std, stats.ci_low, stats.ci_high, 0.0, math.nan, stats.n
    )


def _experiment_notes(report: ExperimentReport) -> list[str]:
    name, notes = report.name, []
    if report.completeness.partial:
        notes.append(f"{name}: {report.completeness.describe()}")
    if report.completeness.extra:
        notes.append(f"{name}: {report.completeness.extra} runs not in {EXPERIMENT_FILE} (kept)")
    if report.diverged:
        notes.append(
            f"{name}: {_plural(len(report.diverged), 'diverged run')}, excluded from statistics"
        )
    if report.failed:
        notes.append(
            f"{name}: {_plural(len(report.failed), 'failed run')}, excluded from statistics"
        )
    if report.base is None:
        notes.append(
            f"{name}: no base case ({describe_config(report.base_config)}) found in the "
            "results read; differences left blank (include its experiment's folder)"
        )
    elif report.base_borrowed:
        notes.append(f"{name}: base case taken from experiment {report.base_source}")
    if any(arm.test_acc.n == 1 for arm in report.arms):
        notes.append(f"{name}: some arms have a single seed: no interval, no p-value for them")
    return notes


# ---------------------------------------------------------------------------- colours and layout


def _is_numeric(arms: list[Arm], axis: str) -> bool:
    values = [arm.values[axis] for arm in arms]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _spans(values: Any, factor: float) -> bool:
    """Whether positive values span more than `factor` (max/min): log scale helps then."""
    return min(values) > 0 and max(values) / min(values) > factor


def _use_log(values: list[float]) -> bool:
    """Log scale when a positive numeric axis spans more than 10x."""
    return _spans(values, 10)


def _distinct(arms: list[Arm], axis: str) -> list[Any]:
    return sorted({arm.values[axis] for arm in arms}, key=lambda v: _sort_key((v,)))


def grid_roles(report: ExperimentReport) -> tuple[str, str]:
    """For two axes: (x axis, one line per value of this axis). The x axis is the numeric one
    with more values, so that e.g. step_size is the x axis and lr names the lines."""
    first, second = report.axes

    def rank(axis: str) -> tuple:
        return (_is_numeric(report.arms, axis), len(_distinct(report.arms, axis)))

    return (second, first) if rank(second) > rank(first) else (first, second)


def arm_colors(report: ExperimentReport) -> dict[str, Any]:
    """One deterministic colour per arm label, the same in every figure of the experiment."""
    arms = report.arms
    if len(report.axes) == 1 and _is_numeric(arms, report.axes[0]):
        ordered = sorted(arms, key=lambda a: a.values[report.axes[0]])
        cmap = colormaps["viridis"]
        return {a.label: cmap(0.85 * i / max(1, len(arms) - 1)) for i, a in enumerate(ordered)}
    if len(report.axes) == 2:
        x_axis, line_axis = grid_roles(report)
        lines, xs = _distinct(arms, line_axis), _distinct(arms, x_axis)
        if len(lines) <= len(FAMILIES):
            return {
                a.label: colormaps[FAMILIES[lines.index(a.values[line_axis])]](
                    0.45 + 0.5 * xs.index(a.values[x_axis]) / max(1, len(xs) - 1)
                )
                for a in arms
            }
    cmap = colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {arm.label: cmap(i % cmap.N) for i, arm in enumerate(arms)}


def _line_color(report: ExperimentReport, line_axis: str, value: Any) -> Any:
    lines = _distinct(report.arms, line_axis)
    if len(lines) <= len(FAMILIES):
        return colormaps[FAMILIES[lines.index(value)]](0.75)
    return colormaps["tab10"](lines.index(value) % 10)


def _pp(value: float) -> str:
    return f"{value * 100:+.2f} pp"


def best_text(report: ExperimentReport) -> str:
    """'lr=0.0008, 90.12% (+0.45 pp vs base case, Welch p=0.031)': the best arm in one line."""
    best = report.best
    if best is None:
        return "none (no finished runs)"
    stats = best.test_acc
    text = f"{best.label}, {stats.mean * 100:.2f}%"
    if best.is_base:
        return text + " (the base case itself)"
    if math.isnan(stats.diff):
        return text + " (no base case to compare)"
    p = "" if math.isnan(stats.p_value) else f", Welch p={stats.p_value:.2g}"
    worse = "; no arm beats the base case" if stats.diff < 0 else ""
    return text + f" ({_pp(stats.diff)} vs base case{p}{worse})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


# ---------------------------------------------------------------------------- figures


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written plainly (0.3, not 3e-01)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _new_figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _band(runs: list[Run], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean, min and max across runs (runs may have different lengths)."""
    epochs = np.array(sorted({int(e) for run in runs for e in run.epochs}))
    matrix = np.full((len(runs), len(epochs)), np.nan)
    for i, run in enumerate(runs):
        matrix[i, np.searchsorted(epochs, run.epochs)] = run.metrics[metric]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return epochs, np.nanmean(matrix, 0), np.nanmin(matrix, 0), np.nanmax(matrix, 0)


def _legend_outside(ax: Any) -> None:
    """Legend to the right of the axes, so that it never covers data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)


def _curve_subtitle(report: ExperimentReport, metric: str) -> str:
    lines = ["line = mean over seeds, shaded band = min..max across seeds"]
    scored = [arm for arm in report.arms if arm.runs]
    if metric == "test_acc":
        lines.append("highest final test accuracy: " + best_text(report))
    elif scored:
        lowest = min(scored, key=lambda a: a.train_loss.mean)
        base = report.base.train_loss.mean if report.base else math.nan
        versus = "" if math.isnan(base) else f" (base case {base:.3f})"
        lines.append(
            f"lowest final training loss: {lowest.label}, {lowest.train_loss.mean:.3f}" + versus
        )
    empty = [arm.label for arm in report.arms if not arm.runs]
    if empty:
        lines.append("no finished runs (diverged/failed): " + "; ".join(empty))
    return "\n".join(lines)


def _say_empty(ax: Any, ylim: tuple[float, float] | None) -> None:
    """An empty plot says why it is empty instead of showing meaningless axes."""
    ax.text(
        0.5,
        0.5,
        "no finished runs (all diverged or failed)",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.35",
    )
    if ylim:
        ax.set_ylim(*ylim)


def _counts(arm: Arm) -> str:
    """'n=2, 1 diverged': seeds in the line, and those left out of it."""
    parts = [f"n={len(arm.runs)}"]
    parts += [f"{len(arm.diverged)} diverged"] if arm.diverged else []
    parts += [f"{len(arm.failed)} failed"] if arm.failed else []
    return ", ".join(parts)


def curve_figure(report: ExperimentReport, metric: str) -> Figure:
    """One line per arm of `metric` over epochs (mean over seeds, band = min..max)."""
    fig, ax = _new_figure()
    colors = arm_colors(report)
    scale = 100.0 if metric.endswith("_acc") else 1.0  # accuracy in %, losses as they are
    finals = {arm.label: arm.finals(metric).mean() for arm in report.arms if arm.runs}
    pick = max if metric.endswith("_acc") else min
    highlight = pick(finals, key=finals.get) if finals else None
    for arm in (arm for arm in report.arms if arm.runs):
        epochs, mean, low, high = _band(arm.runs, metric)
        label = f"{arm.label} ({_counts(arm)})" + (" [base case]" if arm.is_base else "")
        width = 2.6 if arm.label == highlight else 1.5
        color = colors[arm.label]
        # The base case is dashed and drawn on top, so an arm level with it cannot hide it.
        style = {"ls": "--", "zorder": 3} if arm.is_base else {}
        ax.plot(epochs, mean * scale, color=color, lw=width, label=label, gid=f"arm:{arm.label}",
                **style)  # fmt: skip
        ax.fill_between(epochs, low * scale, high * scale, color=color, alpha=0.15, lw=0)
    if report.base_borrowed:
        epochs, mean, low, high = _band(report.base.runs, metric)
        label = f"base case (from {report.base_source}, n={len(report.base.runs)})"
        ax.plot(epochs, mean * scale, color=BASE_COLOR, ls="--", lw=1.5, label=label, gid="base")
        ax.fill_between(epochs, low * scale, high * scale, color=BASE_COLOR, alpha=0.08, lw=0)
    if not ax.get_lines():
        _say_empty(ax, ylim=(0, 100) if scale == 100 else None)
    _curve_axes(ax, metric, scale)
    fig.suptitle(f"{report.name}: {METRIC_NAMES.get(metric, metric)} per epoch", weight="bold")
    ax.set_title(_curve_subtitle(report, metric), fontsize="small", loc="left")
    _legend_outside(ax)
    return fig


def _curve_axes(ax: Any, metric: str, scale: float) -> None:
    """Epochs as integers; a loss on a log axis (plain tick labels) when it spans > 3x."""
    values = np.array([v for line in ax.get_lines() for v in line.get_ydata()], dtype=float)
    finite = values[np.isfinite(values)]
    if metric.endswith("_loss") and finite.size and finite.min() > 0 and _spans(finite, 3):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        minor = PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4))
        ax.yaxis.set_minor_formatter(minor)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    y_label = METRIC_NAMES.get(metric, metric) + (" (%)" if scale == 100 else "")
    if metric == "train_loss":
        y_label += " (mean over the epoch's batches)"
    ax.set_ylabel(y_label + (", log scale" if ax.get_yscale() == "log" else ""))
    ax.grid(True, alpha=0.3, which="both")


def _final_positions(
    report: ExperimentReport,
) -> tuple[str, dict[str, float], dict[str, float]]:
    """Where each arm sits on the x axis of the final-accuracy figure, and how x is drawn:
    'numeric' (one numeric axis, values on x), 'grid' (two axes) or 'categorical'; plus the
    tick labels of a categorical x axis."""
    arms = report.arms
    if len(report.axes) == 1 and _is_numeric(arms, report.axes[0]):
        return "numeric", {a.label: float(a.values[report.axes[0]]) for a in arms}, {}
    if len(report.axes) == 2:
        x_axis, _ = grid_roles(report)
        if _is_numeric(arms, x_axis):
            return "grid", {a.label: float(a.values[x_axis]) for a in arms}, {}
        xs = _distinct(arms, x_axis)
        ticks = {format_value(v): float(i) for i, v in enumerate(xs)}
        return "grid", {a.label: float(xs.index(a.values[x_axis])) for a in arms}, ticks
    ticks = {}
    for i, arm in enumerate(arms):
        # Values only, one axis per line: the x label names the axes, top to bottom.
        shown = [v for v in arm.values.values() if v is not None] or list(arm.values.values())
        name = "\n".join(map(format_value, shown)) or arm.label
        ticks[name + ("\n(base case)" if arm.is_base else "")] = float(i)
    return "categorical", {a.label: float(i) for i, a in enumerate(arms)}, ticks


def _draw_points(ax: Any, report: ExperimentReport, arms: list[Arm], xs: list[float]) -> None:
    colors = arm_colors(report)
    for arm, x in zip(arms, xs, strict=True):
        stats = arm.test_acc
        y = stats.mean * 100
        single = stats.n < 2
        yerr = None if single else [[y - stats.ci_low * 100], [stats.ci_high * 100 - y]]
        ax.errorbar(
            [x],
            [y],
            yerr=yerr,
            fmt="s" if arm.is_base else "o",
            ms=8,
            capsize=4,
            color=colors[arm.label],
            mfc="white" if single else colors[arm.label],
            mec=colors[arm.label],
            mew=1.8,
            zorder=3,
            gid=f"arm:{arm.label}",
        )


def _draw_base(ax: Any, report: ExperimentReport) -> None:
    if report.base is None or not report.base.test_acc.n:
        return
    stats = report.base.test_acc
    where = f", from {report.base_source}" if report.base_borrowed else ""
    label = f"base case: {stats.mean * 100:.2f}% (n={stats.n}{where})"
    ax.axhline(stats.mean * 100, color=BASE_COLOR, ls="--", lw=1.2, label=label, zorder=1)
    if stats.n >= 2:
        ax.axhspan(
            stats.ci_low * 100,
            stats.ci_high * 100,
            color=BASE_COLOR,
            alpha=0.08,
            lw=0,
            label="base case 95% CI",
            zorder=0,
        )


def final_figure(report: ExperimentReport) -> Figure:
    """Final test accuracy per arm: mean with 95% CI over seeds, base case line, best ringed."""
    fig, ax = _new_figure()
    kind, positions, ticks = _final_positions(report)
    arms = [arm for arm in report.arms if arm.runs]
    values = list(positions.values())
    log = kind != "categorical" and not ticks and bool(values) and _use_log(values)
    _draw_base(ax, report)
    if kind == "grid" and positions:
        positions = _dodged(report, positions, log, categorical=bool(ticks))
        _draw_grid_lines(ax, report, arms, positions)
    else:
        if kind == "numeric" and len(arms) > 1:
            ordered = sorted(arms, key=lambda a: positions[a.label])
            xs = [positions[a.label] for a in ordered]
            ax.plot(xs, [a.test_acc.mean * 100 for a in ordered], color="0.6", lw=1, zorder=2)
        _draw_points(ax, report, arms, [positions[arm.label] for arm in arms])
    _draw_unfinished(ax, report, positions)
    if not arms:
        _say_empty(ax, ylim=(0, 100))
    _ring_best(ax, report, positions)
    _final_axes(ax, report, kind, ticks, log)
    return fig


def _draw_unfinished(ax: Any, report: ExperimentReport, positions: dict[str, float]) -> None:
    """Arms whose every run diverged or failed: a cross at the bottom, so the gap is visible."""
    xs = [positions[arm.label] for arm in report.arms if not arm.runs]
    if xs:
        ax.plot(
            xs,
            [0.04] * len(xs),
            "x",
            color="0.35",
            ms=10,
            mew=2,
            transform=ax.get_xaxis_transform(),
            label="no finished runs (diverged/failed)",
        )


def _dodged(
    report: ExperimentReport, positions: dict[str, float], log: bool, categorical: bool
) -> dict[str, float]:
    """Shift each line's points sideways a little so that error bars at one x do not overlap
    (in log space on a log axis; a tenth of a slot on a categorical one)."""
    _, line_axis = grid_roles(report)
    values = _distinct(report.arms, line_axis)
    xs = list(positions.values())
    step = 0.1 if categorical else 0.025 * (max(xs) - min(xs) or 1.0)
    decades = 0.025 * math.log10(max(xs) / min(xs)) if log else 0.0
    dodged = {}
    for label, x in positions.items():
        arm = next(a for a in report.arms if a.label == label)
        offset = values.index(arm.values[line_axis]) - (len(values) - 1) / 2
        dodged[label] = x * 10 ** (offset * decades) if log else x + offset * step
    return dodged


def _draw_grid_lines(
    ax: Any, report: ExperimentReport, arms: list[Arm], positions: dict[str, float]
) -> None:
    """One line per value of the second axis over the first."""
    _, line_axis = grid_roles(report)
    for value in _distinct(report.arms, line_axis):
        members = [a for a in arms if a.values[line_axis] == value]
        members.sort(key=lambda a: positions[a.label])
        if not members:
            continue
        xs = [positions[a.label] for a in members]
        ax.plot(
            xs,
            [a.test_acc.mean * 100 for a in members],
            lw=1.6,
            zorder=2,
            color=_line_color(report, line_axis, value),
            label=f"{line_axis}={format_value(value)}",
        )
        _draw_points(ax, report, members, xs)


def _ring_best(ax: Any, report: ExperimentReport, positions: dict[str, float]) -> None:
    """A ring around the best arm, annotated with its mean and its gain over the base case."""
    best = report.best
    if best is None:
        return
    x, y = positions[best.label], best.test_acc.mean * 100
    label = f"best: {best.label}" if len(best.label) <= 40 else "best arm (named above)"
    ax.plot([x], [y], "o", ms=20, mfc="none", mec=BEST_COLOR, mew=2.2, zorder=4, label=label)
    note = f"{y:.2f}%"
    if not (math.isnan(best.test_acc.diff) or best.is_base):
        note += f"\n{_pp(best.test_acc.diff)} vs base"
    box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}
    ax.annotate(
        note,
        (x, y),
        xytext=(0, 16),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize="small",
        color=BEST_COLOR,
        weight="bold",
        zorder=5,
        bbox=box,
    )


def _final_axes(
    ax: Any, report: ExperimentReport, kind: str, ticks: dict[str, float], log: bool
) -> None:
    if log:
        ax.set_xscale("log")
    if ticks:
        ax.set_xticks(list(ticks.values()), list(ticks.keys()), fontsize="small")
        ax.set_xlim(min(ticks.values()) - 0.5, max(ticks.values()) + 0.5)
    elif kind != "categorical":
        ax.set_xticks(
            sorted({float(v) for v in _axis_values(report)}),
            [format_value(v) for v in sorted(set(_axis_values(report)))],
        )
        ax.minorticks_off()
    if kind == "grid":
        x_label = AXIS_LABELS.get(grid_roles(report)[0], grid_roles(report)[0])
    elif len(report.axes) == 1:
        x_label = AXIS_LABELS.get(report.axes[0], report.axes[0])
    elif report.axes:
        x_label = " / ".join(report.axes) + " (tick lines, top to bottom)"
    else:
        x_label = "configuration"
    ax.set_xlabel(x_label + (" (log scale)" if log else ""))
    ax.set_ylabel("final test accuracy (%)")
    ax.margins(y=0.25)  # room above the best point for its annotation
    ax.grid(True, axis="y", alpha=0.3)
    fig = ax.get_figure()
    fig.suptitle(f"{report.name}: final test accuracy per arm", weight="bold")
    hollow = any(arm.test_acc.n == 1 for arm in report.arms)
    lines = [
        "mean over seeds with 95% CI (t interval)"
        + ("; hollow marker: n=1, no interval" if hollow else ""),
        "best: " + best_text(report),
    ]
    empty = [arm.label for arm in report.arms if not arm.runs]
    if empty:
        lines.append("no finished runs (diverged/failed): " + "; ".join(empty))
    ax.set_title("\n".join(lines), fontsize="small", loc="left")
    _legend_outside(ax)  # entries name their axis: 'lr=0.01', 'base case', 'best: ...'


def _axis_values(report: ExperimentReport) -> list[Any]:
    axis = grid_roles(report)[0] if len(report.axes) == 2 else report.axes[0]
    return [arm.values[axis] for arm in report.arms]


def build_figures(report: ExperimentReport) -> dict[str, Figure]:
    """The experiment's three figures, unsaved: {'train_loss', 'test_acc', 'final_test_acc'}."""
    return {
        "train_loss": curve_figure(report, "train_loss"),
        "test_acc": curve_figure(report, "test_acc"),
        "final_test_acc": final_figure(report),
    }


def save_figure(fig: Figure, folder: Path, name: str) -> list[Path]:
    """PNG (for reading) and SVG (for papers) side by side; SVG without a date, so reruns match."""
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1], metadata={"Date": None})
    return paths


# ---------------------------------------------------------------------------- tables


def _fmt(value: float, spec: str, blank: str = "–") -> str:
    return blank if value is None or math.isnan(value) else format(value, spec)


def _ci_cell(stats: Stats) -> str:
    if stats.n == 0:
        return "no finished runs"
    if stats.n == 1:
        return "n=1: no interval"
    return f"[{stats.ci_low * 100:.2f}, {stats.ci_high * 100:.2f}]"


def _diff_cell(arm: Arm, report: ExperimentReport) -> str:
    if arm.is_base and arm is report.base:
        return "base case"
    return _fmt(arm.test_acc.diff * 100, "+.2f")


def _p_cell(arm: Arm, report: ExperimentReport) -> str:
    stats = arm.test_acc
    if report.base is None or arm is report.base or stats.n == 0:
        return "–"
    if stats.n < 2 or stats.base_n < 2:
        return f"n={min(stats.n, stats.base_n)}: no test"
    return _fmt(stats.p_value, ".3g")


TABLE_HEADER = [
    "arm",
    "n seeds",
    "final train loss",
    "test acc (%)",
    "95% CI (%)",
    "Δ vs base (pp)",
    "Welch p",
    "diverged",
    "failed",
]


def table_rows(report: ExperimentReport) -> list[list[str]]:
    """The per-arm table (borrowed base case first), as text cells."""
    arms = ([report.base] if report.base_borrowed else []) + report.arms
    rows = []
    for arm in arms:
        label = arm.label
        if arm is report.base and report.base_borrowed:
            label = f"base case (from {report.base_source})"
        elif arm.is_base:
            label += " (base case)"
        if arm is report.best:
            label += " ★ best"
        stats = arm.test_acc
        rows.append(
            [
                label,
                str(stats.n),
                _fmt(arm.train_loss.mean, ".4f"),
                _fmt(stats.mean * 100, ".2f"),
                _ci_cell(stats),
                _diff_cell(arm, report),
                _p_cell(arm, report),
                str(len(arm.diverged)),
                str(len(arm.failed)),
            ]
        )
    return rows


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines and lines[0].startswith("Traceback") else (lines or [""])[0]


def _diverged_epoch(run: Run) -> str:
    bad = ~np.isfinite(run.metrics["train_loss"]) | ~np.isfinite(run.metrics["test_loss"])
    return f"loss not finite at epoch {int(run.epochs[bad][0])}" if bad.any() else "diverged"


def problem_lines(report: ExperimentReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Diverged and failed runs as (run id, 'arm, seed N: what happened')."""
    diverged = [
        (run.run_id, f"{arm.label}, seed {run.seed}: {_diverged_epoch(run)}")
        for arm, run in report.diverged
    ]
    failed = []
    for arm, record in report.failed:
        seed = record.get("config", {}).get("seed", "?")
        what = f"{arm.label}, seed {seed}: {_first_line(record.get('error'))}"
        failed.append((str(record.get("run_id")), what))
    return diverged, failed


def _facts(report: ExperimentReport) -> list[tuple[str, str]]:
    if report.base is None:
        base = f"{describe_config(report.base_config)}: not found in the results read"
    elif report.base_borrowed:
        base = f"{describe_config(report.base_config)} — from experiment {report.base_source}"
    else:
        base = f"{describe_config(report.base_config)} — arm {report.base.label}"
    return [
        ("description", report.description or "–"),
        ("axes", ", ".join(report.axes) or "none (one configuration)"),
        ("runs", report.completeness.describe()),
        ("base case", base),
        ("best configuration", best_text(report)),
    ]


METHOD = (
    "Statistics use the final epoch of each run with status ok: mean over seeds, sample standard "
    "deviation, 95% CI = mean ± t(0.975, n−1)·s/√n. Δ = arm mean − base-case mean, in percentage "
    "points; p = Welch's t-test (unequal variances) against the base case's seeds. Diverged and "
    "failed runs are counted but kept out of the statistics."
)


def summary_markdown(report: ExperimentReport, figure_names: Iterable[str] = FIGURES) -> str:
    """summary.md: facts, the arm table, figures (relative links), diverged and failed runs."""
    out = [f"# Experiment `{report.name}`", ""]
    out += [f"- **{key}**: {value}" for key, value in _facts(report)]
    out += ["", "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    out += ["", METHOD, "", "## Figures", ""]
    for name in figure_names:
        out.append(f"![{name}]({name}.png) ([SVG]({name}.svg))")
    diverged, failed = problem_lines(report)
    out += ["", "## Diverged runs", ""] + ([f"- `{i}` {what}" for i, what in diverged] or ["none"])
    out += ["", "## Failed runs", ""] + ([f"- `{i}` {what}" for i, what in failed] or ["none"])
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(out) + "\n"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}"
    "img{max-width:100%;border:1px solid #eee;margin:0.5em 0}.best{font-weight:bold}"
)


def _html_page(title: str, body: list[str]) -> str:
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    return head + f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def _html_table(header: list[str], rows: list[list[str]], best: int | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        css = " class='best'" if i == best else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def _html_list(items: list[str]) -> str:
    if not items:
        return "<p>none</p>"
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def summary_html(report: ExperimentReport, figure_names: Iterable[str] = FIGURES) -> str:
    """summary.html: the same content as summary.md, figures embedded."""
    body = [f"<h1>Experiment <code>{html.escape(report.name)}</code></h1><ul>"]
    body += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _facts(report)]
    rows = [[html.escape(cell) for cell in row] for row in table_rows(report)]
    best_row = next((i for i, row in enumerate(rows) if "★ best" in row[0]), None)
    body += ["</ul>", _html_table(TABLE_HEADER, rows, best_row), f"<p>{html.escape(METHOD)}</p>"]
    body.append("<h2>Figures</h2>")
    for name in figure_names:
        body.append(f"<p><a href='{name}.svg'><img src='{name}.png' alt='{name}'></a></p>")
    diverged, failed = problem_lines(report)
    body += ["<h2>Diverged runs</h2>", _html_list([f"{i} {what}" for i, what in diverged])]
    body += ["<h2>Failed runs</h2>", _html_list([f"{i} {what}" for i, what in failed])]
    if report.notes:
        body += ["<h2>Notes</h2>", _html_list(report.notes)]
    return _html_page(f"{report.name}: summary", body)


INDEX_HEADER = [
    "experiment",
    "runs",
    "best arm",
    "test acc (%)",
    "Δ vs base (pp)",
    "Welch p",
    "n seeds",
    "summary",
    "figures",
]


def _index_row(report: ExperimentReport, folder: str) -> tuple[list[str], list[str]]:
    """The overview row of one experiment as text cells and the link targets."""
    best = report.best
    cells = [report.name, report.completeness.describe()]
    if best is None:
        cells += ["–", "–", "–", "–", "0"]
    else:
        diff = "base case" if best.is_base else _fmt(best.test_acc.diff * 100, "+.2f")
        cells += [
            best.label,
            f"{best.test_acc.mean * 100:.2f}",
            diff,
            _p_cell(best, report),
            str(best.test_acc.n),
        ]
    links = [f"{folder}/summary", *(f"{folder}/{name}.png" for name in FIGURES)]
    return cells, links


def index_markdown(
    reports: list[ExperimentReport], folders: dict[str, str], notes: list[str]
) -> str:
    """index.md: one row per experiment with its best arm, gain over base, and links."""
    out = [
        "# Report: all experiments",
        "",
        "| " + " | ".join(INDEX_HEADER) + " |",
        "|" + "---|" * len(INDEX_HEADER),
    ]
    for report in reports:
        cells, links = _index_row(report, folders[report.name])
        figures = " ".join(f"[{Path(link).stem}]({link})" for link in links[1:])
        out.append("| " + " | ".join(cells + [f"[md]({links[0]}.md)", figures]) + " |")
    out += ["", METHOD]
    if notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def index_html(reports: list[ExperimentReport], folders: dict[str, str], notes: list[str]) -> str:
    """index.html: the overview table with links to each summary and figure."""
    rows = []
    for report in reports:
        cells, links = _index_row(report, folders[report.name])
        escaped = [html.escape(cell) for cell in cells]
        escaped[0] = f"<a href='{html.escape(links[0])}.html'>{escaped[0]}</a>"
        figures = " ".join(
            f"<a href='{html.escape(link)}'>{html.escape(Path(link).stem)}</a>"
            for link in links[1:]
        )
        rows.append(escaped + [f"<a href='{html.escape(links[0])}.html'>summary</a>", figures])
    body = [
        "<h1>Report: all experiments</h1>",
        _html_table(INDEX_HEADER, rows),
        f"<p>{html.escape(METHOD)}</p>",
    ]
    if notes:
        body += ["<h2>Notes</h2>", _html_list(notes)]
    return _html_page("fmnist-ray report", body)


# ---------------------------------------------------------------------------- entry point


def load_reports(paths: Iterable[Path]) -> list[ExperimentReport]:
    """Read every run under `paths` (one table) and summarize each experiment."""
    paths = [Path(p) for p in paths]
    _check_paths(paths)
    run_files = list(dict.fromkeys(Path(p.path).resolve() for p in find_run_files(paths)))
    failure_files = list(dict.fromkeys(p.resolve() for p in _failure_files(paths)))
    if not run_files and not failure_files:
        where = ", ".join(map(str, paths))
        raise ReportError(
            f"no results under {where}: found no runs/*.parquet or failures/*.json; "
            "run an experiment first, or pass its results folder (results/NAME)"
        )
    all_runs = runs_from_table(read_results(run_files))
    folder_names = _folder_experiments(run_files, failure_files, all_runs)
    names = list(dict.fromkeys([run.experiment for run in all_runs] + list(folder_names.values())))
    reports = []
    for name in sorted(names):
        folders = sorted(f for f, n in folder_names.items() if n == name)
        runs = [run for run in all_runs if run.experiment == name]
        notes: list[str] = []
        experiment = _load_experiment_file(folders, notes, name)
        failures = _failure_records(folders, {run.run_id for run in runs})
        report = summarize_experiment(name, runs, failures, experiment, all_runs)
        report.notes[:0] = notes
        reports.append(report)
    return reports


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "experiment"


def make_report(paths: list[Path], out_dir: Path | None = None) -> ReportResult:
    """Figures and summary tables for every experiment under `paths`.

    `paths`: experiment folders (results/NAME), a results root holding them, or run files.
    Writes, under `out_dir`: index.md/.html, and per experiment <NAME>/summary.md/.html and
    <NAME>/{train_loss,test_acc,final_test_acc}.{png,svg}. Default `out_dir` (see
    `default_out_dir`): report/ inside the one folder given (results/NAME/report for one
    experiment, results/report for a results root), else inside the folders' common parent.
    Raises ReportError when a path does not exist or there are no results under the paths.
    """
    paths = [Path(p) for p in paths]
    reports = load_reports(paths)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    summaries, figures, folders = {}, {}, {}
    for report in reports:
        folder = out_dir / _safe_name(report.name)
        folder.mkdir(parents=True, exist_ok=True)
        folders[report.name] = folder.name
        figures[report.name] = [
            path
            for name, fig in build_figures(report).items()
            for path in save_figure(fig, folder, name)
        ]
        summaries[report.name] = [folder / "summary.md", folder / "summary.html"]
        summaries[report.name][0].write_text(summary_markdown(report), encoding="utf-8")
        summaries[report.name][1].write_text(summary_html(report), encoding="utf-8")
    notes = [note for report in reports for note in report.notes]
    (out_dir / "index.md").write_text(index_markdown(reports, folders, notes), encoding="utf-8")
    (out_dir / "index.html").write_text(index_html(reports, folders, notes), encoding="utf-8")
    return ReportResult(
        out_dir,
        out_dir / "index.html",
        out_dir / "index.md",
        summaries,
        figures,
        notes,
        {report.name: report for report in reports},
    )
