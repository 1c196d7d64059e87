"""What the Python API hands back: a plan with the text `fmnist-ray plan` prints, and what a grid
did (runs trained, reused, failed, each with its files), inside `GridInterrupted` when a signal
stopped it. Plain dataclasses: importing them loads no pyarrow, torch or ray."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .planning.plan import Plan, PlannedRun
    from .runner.dispatch import GridOutcome
    from .spec.config import RunConfig


def interrupted_message(signum: int) -> str:
    """What the CLI prints, and GridInterrupted says, when a signal stopped a grid."""
    name = signal.Signals(signum).name
    return f"interrupted ({name}): finished runs are kept; run the same command to resume."


@dataclass(frozen=True)
class PlanView:
    """A plan (`plan`: the unique runs, what is done, the training order) and what
    `fmnist-ray plan` prints about it (`text`, also the way a notebook shows it)."""

    plan: Plan
    slots: int  # runs at once, for the wall-time estimate
    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display
        printer.text(self.text)


@dataclass(frozen=True)
class RunRecord:
    """One unique run of a grid. `paths`: its result file in each experiment that holds it; for
    a failed run, its failure record; for a run not saved, where its history was kept."""

    run_id: str
    label: str  # `experiment: axis=value ... seed=N`
    config: RunConfig
    status: str  # ok, diverged; done (reused); failed, not saved, cancelled
    paths: tuple[str, ...] = ()
    error: str | None = None
    final: dict[str, float] | None = None  # the last epoch's metrics, of a run trained here


@dataclass(frozen=True)
class RunOutcome:
    """What `run` did with each unique run of its experiment files."""

    root: str  # the results root
    trained: tuple[RunRecord, ...]
    reused: tuple[RunRecord, ...]  # done before, under the root: filed, not trained
    failed: tuple[RunRecord, ...]
    not_saved: tuple[RunRecord, ...]  # finished, but the destination kept failing
    cancelled: tuple[RunRecord, ...]  # pending when the grid stopped
    signal: int | None  # the signal that stopped the grid, if one did
    exit_code: int  # `fmnist-ray run`'s: 0, 1 (a run failed or was not saved), 128 + signal

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) stopped `run`: pending runs were cancelled and every finished
    run was kept; `outcome` says which."""

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome
        super().__init__(interrupted_message(outcome.signal or signal.SIGINT))


def run_outcome(plan: Plan, grid: GridOutcome | None) -> RunOutcome:
    """The outcome of `plan`'s grid (None: nothing was trained), run by run."""
    from .planning.plan import label
    from .store.results import run_path

    def record(run: PlannedRun, status: str, paths: Any = None, **more: Any) -> RunRecord:
        if paths is None:  # its result file in every experiment that holds it
            paths = [run_path(plan.folder(name), run.run_id) for name in run.experiments]
        shown = tuple(str(path) for path in paths)
        return RunRecord(run.run_id, label(plan, run), run.config, status, shown, **more)

    by_id = {run.run_id: run for run in plan.runs}
    todo = {run.run_id for run in plan.todo}
    reused = tuple(record(run, "done") for run in plan.runs if run.run_id not in todo)
    if grid is None:
        return RunOutcome(str(plan.root), (), reused, (), (), (), None, 0)
    trained = tuple(record(item.run, item.status, final=item.final) for item in grid.finished)
    failed = tuple(
        record(item.run, "failed", [] if isinstance(item.path, str) else [item.path],
               error=item.error)
        for item in grid.failed
    )  # fmt: skip
    not_saved = tuple(
        record(by_id[lost.run_id], "not saved", [lost.kept_at], error=lost.reason)
        for lost in grid.lost
    )
    ended = {item.run_id for item in trained + failed + not_saved}
    cancelled = tuple(record(run, "cancelled", []) for run in plan.todo if run.run_id not in ended)
    return RunOutcome(str(plan.root), trained, reused, failed, not_saved, cancelled, grid.signal,
                      grid.exit_code)  # fmt: skip
