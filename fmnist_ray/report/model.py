"""The report's data: runs as read back, arms (runs differing only by seed), one experiment's
report, and `ReportError`. numpy only, so matching the error (as the CLI does) loads no plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the statistics module loads scipy: only its types are needed here
    from .references import ReferenceCheck
    from .stats import Comparison, Summary

EXPERIMENT_FILE = "experiment.toml"  # the copy of the experiment file beside its runs/
FIGURES = ("train_loss", "test_acc", "final_test_acc")  # each experiment's figures, by file name
OVERVIEW = "overview"  # the figure of the whole report: one panel per experiment


class ReportError(ValueError):
    """Nothing to report on: one line saying what is missing, where we looked, what to do."""


# How an arm compares with the base case, in the words the tables and figures use.
BASE = "base case"
BETTER = "better than base"
WORSE = "worse than base"
NOT_SIGNIFICANT = "not significant"
INCOMPLETE = "incomplete"
NO_RUNS = "no finished runs"
NO_TEST = "no test"


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


@dataclass(eq=False)
class Arm:
    """Runs sharing every axis value: they differ only by seed."""

    label: str
    values: dict[str, Any]  # axis -> value, as in the Parquet columns
    config: dict[str, Any]  # the full config without seed
    runs: list[Run] = field(default_factory=list)  # status ok, by seed: these make the statistics
    diverged: list[Run] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    is_base: bool = False  # the arm every other arm is compared with (set by the base lookup)
    planned: int = 0  # seeds the experiment planned for it (0: unknown)
    train_loss: Summary | None = None
    test_acc: Summary | None = None
    comparison: Comparison | None = None  # test accuracy against the base case
    verdict: str = NO_TEST

    def finals(self, metric: str) -> np.ndarray:
        return np.array([run.final(metric) for run in self.runs], dtype=float)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def incomplete(self) -> bool:
        """Fewer ok seeds than planned: such an arm is shown but never singled out."""
        return len(self.runs) < self.planned


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
    references: list[ReferenceCheck] = field(default_factory=list)

    @property
    def better(self) -> list[Arm]:
        """Complete arms significantly above the base case (Holm), highest mean first."""
        return sorted(
            (arm for arm in self.arms if arm.verdict == BETTER),
            key=lambda arm: -arm.test_acc.mean,
        )

    @property
    def worse(self) -> list[Arm]:
        return [arm for arm in self.arms if arm.verdict == WORSE]

    @property
    def winner(self) -> Arm | None:
        """The best arm: the highest mean among those significantly better than the base case."""
        return self.better[0] if self.better else None

    @property
    def highest(self) -> Arm | None:
        """The complete arm (base case included) with the highest mean final test accuracy."""
        candidates = [arm for arm in self.shown_arms if arm.runs and not arm.incomplete]
        return max(candidates, key=lambda arm: arm.test_acc.mean, default=None)

    @property
    def base_borrowed(self) -> bool:
        return self.base is not None and self.base not in self.arms

    @property
    def shown_arms(self) -> list[Arm]:
        """The rows of the summary table: a borrowed base case first, then the arms."""
        return ([self.base] if self.base_borrowed else []) + self.arms

    @property
    def diverged(self) -> list[tuple[Arm, Run]]:
        return [(arm, run) for arm in self.arms for run in arm.diverged]

    @property
    def failed(self) -> list[tuple[Arm, dict[str, Any]]]:
        return [(arm, record) for arm in self.arms for record in arm.failed]
