"""The report's data: runs as read back, arms (runs differing only by seed), their statistics,
published references, one experiment's report, and `ReportError`. Plain dataclasses (numpy
only), so matching the error, as the CLI does, loads neither matplotlib nor scipy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FmnistRayError
from ..spec.config import SEED_FIELD
from ..spec.metrics import FIT, HEADLINE
from ..store.devices import UNKNOWN, mixed_warning

EXPERIMENT_FILE = "experiment.toml"  # the copy of the experiment file beside its runs/
SETTLE_FILE = "settle.json"  # beside runs/: the design a `settle` ran under, and its rounds
# Each experiment's figures, by file name: the curves of FIT and HEADLINE, and HEADLINE's final
# values per arm.
FINAL_FIGURE = f"final_{HEADLINE.name}"
FIGURES = (FIT.name, HEADLINE.name, FINAL_FIGURE)
OVERVIEW = "overview"  # the figure of the whole report: one panel per experiment


class ReportError(FmnistRayError, ValueError):
    """Nothing to report on: one line saying what is missing, where we looked, what to do."""


# How an arm compares with the base case, in the words the tables and figures use.
BASE = "base case"
BETTER = "better than base"
WORSE = "worse than base"
NOT_SIGNIFICANT = "not significant"
INCOMPLETE = "incomplete"
NO_RUNS = "no finished runs"
NO_TEST = "no test"


@dataclass(frozen=True)
class Summary:
    """One sample (an arm's final values over its seeds); NaN where n is too small."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    ci_low: float  # 95% CI of the mean: mean -/+ t(0.975, n-1) * s / sqrt(n)
    ci_high: float
    pi_low: float  # 95% prediction interval of one new run: mean -/+ t * s * sqrt(1 + 1/n)
    pi_high: float


@dataclass(frozen=True)
class Comparison:
    """An arm against the base case: difference of means, its 95% CI, and the test's p-values."""

    test: str  # WELCH (default), PAIRED or DUNNETT; '' when untested (under 2 values a side)
    n: int  # the arm's values
    base_n: int
    diff: float  # arm mean - base mean (for paired data also the mean of the differences)
    diff_low: float
    diff_high: float
    p_value: float
    p_adjusted: float = math.nan  # Holm over the arms of the experiment (see `holm`)
    p_study: float = math.nan  # Holm over every comparison of the report (all experiments)


@dataclass(frozen=True)
class Power:
    """What an experiment's seeds can see: the pooled sd of its arms' final HEADLINE values, the
    difference from the base case the verdicts' two-sample t-test detects with 80% power, and
    the seeds per arm that `effect` would need (None: more than stats.MOST_SEEDS, or no sd),
    at the measured sd and at the low and high ends of the true sd's 95% range."""

    sd: float  # pooled over the arms with 2 or more seeds
    df: int
    arms: int  # arms pooled
    seeds: int  # seeds per arm now (the fewest among the arms pooled)
    comparisons: int  # arms compared with the base case: Holm's first step tests at alpha / this
    detectable: float  # with `seeds` seeds per arm
    effect: float
    seeds_needed: int | None
    seeds_low: int | None  # if the true sd is at the low end of its 95% range
    seeds_high: int | None  # ... at the high end
    base_sd: float  # the base case's own sd (NaN below 2 runs): Dunnett pools it with the arms'


@dataclass(frozen=True)
class Correlation:
    """How alike runs of the same seed are across arms: ICC(C,1) of a seed x arm ANOVA."""

    icc: float  # the correlation of two arms' runs of one seed
    low: float  # its exact 95% interval (F distribution)
    high: float
    f: float  # F of the seed effect
    df1: int
    df2: int
    p: float  # of 'seeds share nothing'
    arms: int
    seeds: int


@dataclass(frozen=True)
class Offset:
    """Published minus our mean over the reference values of one metric."""

    n: int
    mean: float
    ci_low: float  # 95% t-interval of the mean offset
    ci_high: float
    higher: int  # published above our mean
    lower: int
    sign_p: float  # two-sided sign test: published as often above as below


@dataclass(frozen=True)
class Reference:
    """One published value: `pairs` name the arm by its axis values, as written in the file."""

    experiment: str
    pairs: tuple[tuple[str, str], ...]
    metric: str
    value: float
    note: str
    line: int  # in the file, for messages

    @property
    def arm_text(self) -> str:
        return " ".join(f"{field}={value}" for field, value in self.pairs)


@dataclass(frozen=True)
class ReferenceCheck:
    """A reference value next to our final values of the same arm and metric."""

    arm: Arm
    reference: Reference
    ours: Summary  # our final values of `reference.metric` over the arm's ok seeds

    @property
    def inside(self) -> bool | None:
        """Whether the value lies in our 95% prediction interval (None: n < 2, no interval)."""
        if math.isnan(self.ours.pi_low):
            return None
        return self.ours.pi_low <= self.reference.value <= self.ours.pi_high


@dataclass(frozen=True, eq=False)
class Run:
    """One run's per-epoch history as read back from its Parquet file."""

    experiment: str
    run_id: str
    status: str
    config: dict[str, Any]  # config columns (channels as 'c1,c2,c3'), seed included
    epochs: np.ndarray
    metrics: dict[str, np.ndarray]
    device: str = UNKNOWN  # where it trained (devices.device_label): `cpu`, a GPU's name

    @property
    def seed(self) -> int:
        return self.config[SEED_FIELD]

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
    fit: Summary | None = None  # final values of metrics.FIT over the ok seeds
    headline: Summary | None = None  # final values of metrics.HEADLINE: what arms are compared on
    comparison: Comparison | None = None  # the headline metric against the base case
    paired: Comparison | None = None  # the paired t-test by seed, Holm over the experiment
    pooled: Comparison | None = None  # by Dunnett's test on the experiment's pooled variance
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
    power: Power | None = None  # None: no arm with two seeds
    correlation: Correlation | None = None  # of seeds across its arms that ran the same seeds
    study_correlation: Correlation | None = None  # the same over every distinct arm read
    settle: dict[str, Any] | None = None  # the settle record of its folder (settle.json)
    settled: list[tuple[Arm, Any]] = field(default_factory=list)  # (arm, sequential.Verdict)

    @property
    def better(self) -> list[Arm]:
        """Complete arms significantly above the base case (Holm), highest mean first."""
        return sorted(
            (arm for arm in self.arms if arm.verdict == BETTER),
            key=lambda arm: -arm.headline.mean,
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
        """The complete arm or the base case with the highest mean final test accuracy."""
        # The base case counts even when short of seeds: it is the yardstick, never a winner.
        candidates = [a for a in self.shown_arms if a.runs and (a.is_base or not a.incomplete)]
        return max(candidates, key=lambda arm: arm.headline.mean, default=None)

    @property
    def base_borrowed(self) -> bool:
        return self.base is not None and self.base not in self.arms

    @property
    def shown_arms(self) -> list[Arm]:
        """The rows of the summary table: a borrowed base case first, then the arms."""
        return ([self.base] if self.base_borrowed else []) + self.arms

    def devices(self, borrowed: bool = False) -> list[str]:
        """The device of each finished run of its arms, or (`borrowed`) of a borrowed base case."""
        arms = ([self.base] if self.base_borrowed else []) if borrowed else self.arms
        return [run.device for arm in arms for run in [*arm.runs, *arm.diverged]]

    @property
    def device_warning(self) -> str | None:
        """Why comparing its arms is unsafe when they mix CPU and GPU runs (the base case's
        included), else None."""
        return mixed_warning(self.name, self.devices() + self.devices(borrowed=True))

    @property
    def diverged(self) -> list[tuple[Arm, Run]]:
        return [(arm, run) for arm in self.arms for run in arm.diverged]

    @property
    def failed(self) -> list[tuple[Arm, dict[str, Any]]]:
        return [(arm, record) for arm in self.arms for record in arm.failed]
