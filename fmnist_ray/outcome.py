"""What a grid did, run by run: the runner makes one `RunRecord` for each run it ends (trained,
failed, not saved) and `outcome_of` sums them with the plan into the `RunOutcome` that `run`
hands back (inside `GridInterrupted` when a signal stopped it); and `PlanView`, a plan with the
text `fmnist-ray plan` prints. Plain dataclasses: importing them loads no pyarrow, torch or ray."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .planning.plan import Plan, PlannedRun
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
    seconds: float | None = None  # of training, summed over epochs, of a run trained here
    metadata: dict[str, Any] | None = None  # as stored with a run trained here


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

    @property
    def interrupted(self) -> bool:
        return self.signal is not None


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) stopped `run`: pending runs were cancelled and every finished
    run was kept; `outcome` says which."""

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome
        super().__init__(interrupted_message(outcome.signal or signal.SIGINT))


def record(plan: Plan, run: PlannedRun, status: str, paths: Any = None, **more: Any) -> RunRecord:
    """`run`'s record; `paths` by default: its result file in every experiment that holds it."""
    from .planning.plan import label
    from .store.results import run_path

    if paths is None:
        paths = [run_path(plan.folder(name), run.run_id) for name in run.experiments]
    shown = tuple(str(path) for path in paths)
    return RunRecord(run.run_id, label(plan, run), run.config, status, shown, **more)


def outcome_of(plan: Plan, ended: list[RunRecord], signal: int | None = None) -> RunOutcome:
    """The outcome of `plan`'s grid from the records of the runs it ended (none: nothing was
    trained); the plan's other runs were done before (reused) or cancelled. Exit code: 128 +
    the signal when one stopped the grid, 1 when a run failed or was not saved, else 0."""
    todo = {run.run_id for run in plan.todo}
    reused = tuple(record(plan, run, "done") for run in plan.runs if run.run_id not in todo)
    by_status: dict[str, list[RunRecord]] = {"failed": [], "not saved": []}
    trained = []
    for item in ended:
        (by_status[item.status] if item.status in by_status else trained).append(item)
    seen = {item.run_id for item in ended}
    cancelled = tuple(record(plan, run, "cancelled", []) for run in plan.todo
                      if run.run_id not in seen)  # fmt: skip
    failed, not_saved = tuple(by_status["failed"]), tuple(by_status["not saved"])
    code = 128 + signal if signal is not None else 1 if failed or not_saved else 0
    return RunOutcome(str(plan.root), tuple(trained), reused, failed, not_saved, cancelled,
                      signal, code)  # fmt: skip
