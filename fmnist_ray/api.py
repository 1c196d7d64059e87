"""The Python API, `fmnist_ray.plan/run/load/report`: the code the command line runs (the CLI
only parses options and sets exit codes). Options are the CLI's, with its defaults; mistakes
raise FmnistRayError with the CLI's `error:` lines; Ctrl-C in `run` raises GridInterrupted."""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .errors import FmnistRayError
from .exporting import ExportCounts, ExportError, export
from .outcome import GridInterrupted, PlanView, RunOutcome, RunRecord
from .spec.config import DEFAULT_RETRIES, ConfigError
from .spec.metrics import DEFAULT_SHOWN_EFFECT, EFFECT_SCALE

if TYPE_CHECKING:
    import pyarrow as pa

    from .planning.plan import Plan
    from .reporting import ReportResult

__all__ = ["plan", "run", "settle", "load", "report", "export", "FmnistRayError", "ConfigError",
           "ExportError", "GridInterrupted", "PlanView", "RunOutcome", "RunRecord",
           "ExportCounts"]  # fmt: skip

DEFAULT_RESULTS = "results"  # the results root, relative to the working folder
Paths = str | os.PathLike | Sequence[str | os.PathLike]


def _listed(paths: Paths) -> list:
    """One path or several, as a list."""
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


def plan(
    experiments: Paths,
    *,
    results: str | os.PathLike = DEFAULT_RESULTS,
    slots: int | None = None,
    runs: bool | None = None,
    seeds_for: float | None = None,
) -> PlanView:
    """The runs experiment files (or folders of them) expand to, which are done under
    `results`, and what the rest will cost, as `fmnist-ray plan` prints it (`.text`).

    `slots`: runs at once, for the wall-time estimate (default: CPUs here / CPUs per run).
    `runs`: list every run (default: for one file). `seeds_for`: instead, size each experiment
    for a difference of that many percentage points of final test accuracy."""
    from .console import plan_overview, run_table
    from .planning.plan import make_plan
    from .spec.grid import load_experiments

    exps = load_experiments(_listed(experiments))
    the_plan = make_plan(exps, results)
    cpus = max((run.resources.cpus for run in the_plan.todo), default=1.0)
    slots = slots or max(1, int((os.cpu_count() or 1) // cpus))
    if seeds_for is not None:
        return PlanView(the_plan, slots, _seeds_for(exps, results, seeds_for, slots))
    parts = [plan_overview(the_plan, slots)]
    if runs or (runs is None and len(exps) == 1):
        parts += [run_table(the_plan, exp) for exp in exps]
    return PlanView(the_plan, slots, "\n".join(parts))


def _seeds_for(exps, results, effect: float, slots: int) -> str:
    """`plan --seeds-for`: each experiment sized for `effect` (pp) from the results so far."""
    _check_effect("--seeds-for", effect)
    from .console import seeds_table
    from .planning.plan import make_plan
    from .reporting.build import size_experiments
    from .spec.grid import with_seeds

    reports = size_experiments(exps, results, effect / EFFECT_SCALE)
    sized = []
    for exp in exps:
        report = reports[exp.name]
        needed = report.power.seeds_needed if report.power and report.base else None
        bigger = make_plan([with_seeds(exp, needed)], results) if needed else None
        sized.append((exp, report, bigger))
    return seeds_table(sized, slots)


def _check_effect(option: str, effect: float) -> None:
    if not effect > 0:
        raise ConfigError([f"{option}: {effect:g} is not allowed: need a difference > 0 "
                           "(percentage points)"])  # fmt: skip


def run(
    experiments: Paths,
    *,
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float | None = None,
    results: str | os.PathLike = DEFAULT_RESULTS,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    download: bool = True,
    retries: int = DEFAULT_RETRIES,
    progress: bool = True,
) -> RunOutcome:
    """Train every run of the experiment files in parallel on Ray, longest first; a run whose
    result exists anywhere under `results` is reused, not trained again. The options are
    `fmnist-ray run`'s (`fmnist-ray run --help`); Ray is started here and stopped at the end
    unless one is already initialized in this process, which is then used.

    `progress`: live progress (a terminal, a notebook) and what the CLI prints; False prints
    only warnings and failures (on stderr). A failed run does not raise: see the outcome's
    `failed` and `exit_code`. Ctrl-C (in a notebook: interrupt the kernel), SIGTERM or SIGHUP
    cancel pending runs, keep every finished one, and raise GridInterrupted (a
    KeyboardInterrupt; its `outcome` says what was kept)."""
    from .spec.grid import load_experiments

    exps = load_experiments(_listed(experiments))
    options = dict(address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                   results=results, data_dir=data_dir, force=force, num_cpus=num_cpus,
                   num_gpus=num_gpus, download=download, retries=retries)  # fmt: skip
    return _run_loaded(exps, options, _Printer(progress))


def _run_loaded(exps, options: dict, say: _Printer) -> RunOutcome:
    """`run` on experiments already loaded (settle hands it one round's runs)."""
    from .planning.plan import make_plan
    from .store.lock import acquire, release
    from .store.storage import locate, preflight

    gpus_per_run, cpus_per_run = options["gpus_per_run"], options["cpus_per_run"]
    _check_run_options(gpus_per_run, cpus_per_run, options["retries"])
    root = locate(options["results"])
    preflight(root)  # a destination that can't be written stops us before Ray starts
    locks, lock_warnings = acquire([root / exp.name for exp in exps])
    try:
        for line in lock_warnings:
            say(line, err=True)
        overrides = {"gpus": gpus_per_run, "cpus": cpus_per_run}
        the_plan = make_plan(exps, root, force=options["force"], resources=overrides)
        ray_options = {key: options[key] for key in ("address", "num_cpus", "num_gpus")}
        outcome = _train_plan(the_plan, ray_options, options["data_dir"], options["download"],
                              options["retries"], say)  # fmt: skip
    finally:
        release(locks)
    if outcome.signal is not None:
        raise GridInterrupted(outcome)
    return outcome


def settle(
    experiments: Paths,
    *,
    results: str | os.PathLike = DEFAULT_RESULTS,
    effect: float = DEFAULT_SHOWN_EFFECT,
    alpha: float = 0.05,
    power: float = 0.80,
    max_seeds: int = 20,
    step: int = 1,
    plan: bool = False,
    slots: int | None = None,
    data_dir: str | os.PathLike | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
    download: bool = True,
    retries: int = DEFAULT_RETRIES,
    progress: bool = True,
):
    """Add seeds in rounds to the arms whose comparison with their base case is still open
    (and to the base case, which every experiment sharing it gains) until each is decided by
    the sequential test (reporting/sequential.py): a difference found, or smaller than `effect`
    percentage points, or `max_seeds` reached. False positives stay at most `alpha` over every
    comparison and round; a difference of `effect` is found with probability `power` when
    `max_seeds` suffices. `plan=True`: the rounds and their cost, nothing trained.
    Existing runs count (by id); Ctrl-C raises GridInterrupted, and calling again resumes.
    Returns settling.Settled (`.text`: the verdicts or the plan)."""
    from .settling import Settled, settle_rounds, setup
    from .spec.grid import load_experiments
    from .store.storage import locate

    _check_effect("--effect", effect)
    exps = load_experiments(_listed(experiments))
    job = setup(exps, locate(results), effect / EFFECT_SCALE, alpha, power, max_seeds, step)
    if plan:
        from .settling import plan_text

        return Settled([], [], plan_text(job, slots or max(1, os.cpu_count() or 1)), False)
    say = _Printer(progress)
    options = dict(address=address, gpus_per_run=None, cpus_per_run=None, results=results,
                   data_dir=data_dir, force=False, num_cpus=num_cpus, num_gpus=None,
                   download=download, retries=retries)  # fmt: skip

    settled = settle_rounds(job, lambda round_exps: _run_loaded(round_exps, options, say), say)
    say(settled.text)
    return settled


def _check_run_options(gpus_per_run, cpus_per_run, retries: int) -> None:
    if (gpus_per_run is not None and gpus_per_run < 0) or (
        cpus_per_run is not None and cpus_per_run <= 0
    ):
        raise ConfigError([f"--gpus-per-run must be >= 0 and --cpus-per-run > 0 (got "
                           f"{gpus_per_run}, {cpus_per_run})"])  # fmt: skip
    if retries < 0:
        raise ConfigError([f"--retries: {retries} is not allowed: need an integer >= 0"])


class _Printer:
    """Where `run` says things: stdout and stderr, or (quiet) only stderr."""

    def __init__(self, progress: bool):
        self.progress = progress

    @property
    def stream(self) -> TextIO:
        """The live progress's stream: this process's stdout now (a notebook replaces it)."""
        return sys.stdout if self.progress else _Discard()

    def __call__(self, text: str, err: bool = False) -> None:
        if err or self.progress:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)


class _Discard(io.TextIOBase):
    """A stream that drops what is written: `progress=False`."""

    def write(self, text: str) -> int:
        return len(text)


def _train_plan(
    the_plan: Plan, ray_options: dict, data_dir, download: bool, retries: int, say: _Printer
) -> RunOutcome:
    """Quarantine and file what exists, then train the rest on Ray and sum it up."""
    from .outcome import outcome_of
    from .planning.plan import prepare

    for line in prepare(the_plan):
        say(line, err=line.startswith("warning"))
    names = ", ".join(exp.name for exp in the_plan.experiments)
    if not the_plan.todo:
        say(f"nothing to train: all {len(the_plan.runs)} runs of {names} are done in "
            f"{the_plan.root} (--force retrains them)")  # fmt: skip
        return outcome_of(the_plan, [])

    from .training.data import load_fashion_mnist

    data = load_fashion_mnist(data_dir, download=download)  # fail before starting Ray
    from .runner.cluster import use_token_auth

    use_token_auth()  # before ray is imported: Ray reads the mode once
    from .runner import driver as runner

    say(f"{names}: {len(the_plan.todo)} of {len(the_plan.runs)} unique runs to train "
        f"({the_plan.planned} planned) -> {the_plan.root}")  # fmt: skip
    started_here = runner.connect(**ray_options)
    try:
        cluster = runner.ray.cluster_resources()
        say(f"Ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs")
        outcome = runner.run_grid(the_plan, data, stream=say.stream, max_retries=retries)
    finally:
        runner.shutdown(started_here)
    from .console import grid_summary

    out, err = grid_summary(the_plan, outcome)
    say(out)
    for line in err:
        say(line, err=True)
    return outcome


def load(root: str | os.PathLike, experiments: Paths | None = None) -> pa.Table:
    """Every valid run under a results root (a folder or a URI), or under the named experiments
    in it, as one table: one row per epoch, the config's fields and every metric as columns
    (`.to_pandas()` where pandas is installed). Files that do not read back as a whole run are
    left out with a warning. `experiments`: names, or experiment files (NAME.toml)."""
    from .store.storage import StorageError, locate
    from .store.tree import read_tree

    where = locate(root)
    if not where.exists():
        raise StorageError(f"{where}: no such file or folder")
    folders = [where]
    if experiments is not None:
        names = [Path(name).stem if str(name).endswith(".toml") else str(name)
                 for name in _listed(experiments)]  # fmt: skip
        folders = [where / name for name in names]
        missing = [folder.name for folder in folders if not folder.exists()]
        if missing:
            raise StorageError(f"{where}: no experiment {', '.join(missing)} here")
    tree = read_tree(folders)
    if tree.invalid:
        why = "; ".join(f"{path}: {reason}" for path, reason in tree.invalid)
        warnings.warn(f"left out {len(tree.invalid)} invalid result files: {why}", stacklevel=2)
    return tree.table()


def report(
    paths: Paths,
    *,
    out: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    effect: float = DEFAULT_SHOWN_EFFECT,
) -> ReportResult:
    """Plots and summary tables of the runs under `paths` (experiment folders or a results
    root, local or URIs), as `fmnist-ray report` writes them; `.files` lists every file written,
    `.index_path` the page to open first, `.notes` what the CLI prints as notes. `effect`: the
    difference in percentage points to size seeds for."""
    _check_effect("--effect", effect)
    from .reporting import make_report

    out_dir = Path(out) if out is not None else None
    reference_path = Path(reference) if reference is not None else None
    return make_report(
        [str(p) for p in _listed(paths)], out_dir, reference=reference_path,
        effect=effect / EFFECT_SCALE,
    )  # fmt: skip
