"""What `settle` decided: each compared arm of an experiment with a settle record, replayed by
the sequential test over the runs read (reporting/sequential.py), and the blocks that show it."""

from __future__ import annotations

from ..spec.grid import with_seeds
from ..spec.metrics import HEADLINE
from .document import Block, Column, Heading, Paragraph, Row, Table
from .model import ExperimentReport
from .sequential import CAPPED, DIFFERENT, OPEN, Design, replay
from .text import signed


def design_of(record: dict) -> tuple[Design, tuple[int, ...]]:
    """The design and looks a settle record names."""
    design = Design(effect=record["effect"], alpha=record["alpha"], power=record["power"],
                    comparisons=record["comparisons"], spending=record["spending"],
                    futility=record["futility"])  # fmt: skip
    return design, tuple(record["looks"])


def _in_order(arm, seeds: tuple[int, ...]) -> list[float]:
    by_seed = {run.seed: run.final(HEADLINE.name) for run in arm.runs}
    values = []
    for seed in seeds:
        if seed not in by_seed:
            break
        values.append(by_seed[seed])
    return values


def fill_settled(report: ExperimentReport, experiment) -> None:
    """Replay each compared arm against the base case under the record's design."""
    record, base = report.settle, report.base
    if not record or base is None:
        return
    design, looks = design_of(record)
    seeds = with_seeds(experiment, looks[-1]).seeds if experiment else tuple(range(looks[-1]))
    base_values = _in_order(base, seeds)
    for arm in report.arms:
        if arm.comparison is not None:
            verdict = replay(_in_order(arm, seeds), base_values, looks, design)
            report.settled.append((arm, verdict))


def _decision(verdict) -> str:
    if verdict.decision == DIFFERENT:
        return "settled: " + ("higher than base" if verdict.sign > 0 else "lower than base")
    if verdict.decision in (OPEN, CAPPED):
        return verdict.decision
    return f"settled: {verdict.decision}"


def settled_blocks(report: ExperimentReport) -> list[Block]:
    """A summary page's 'Settled by the sequential test': one row per compared arm."""
    if not report.settled:
        return []
    design, looks = design_of(report.settle)
    columns = [Column("arm", text=True), Column("decision", text=True), Column("at look")]
    columns += [Column("seeds per arm"), Column("Δ there (pp)")]
    rows = [Row([arm.label, _decision(v), str(v.look or "–"), str(v.seeds or "–"),
                 signed(v.diff * 100) if v.look else "–"])
            for arm, v in report.settled]  # fmt: skip
    rounds = len(report.settle.get("rounds", []))
    text = (
        f"`fmnist-ray settle` ran {rounds} rounds on this experiment: seeds added where a "
        f"comparison was open, looks at {', '.join(map(str, looks))} seeds per arm. Each "
        "comparison is Welch's t-test against the base case at each look, with group-sequential "
        f"boundaries ({design.spending} alpha spending) that keep false positives at "
        f"{design.alpha:g} over all {design.comparisons} comparisons of that settle and all its "
        f"looks; 'smaller than effect' means within ±{design.effect * 100:g} pp, a call wrong "
        f"at most {design.beta:.0%} of the time. Look 1 is the experiment's own seeds; look k "
        "is round k − 1."
    )
    return [Heading("Settled by the sequential test"), Table(columns, rows), Paragraph(text)]


def settled_index_blocks(reports: list[ExperimentReport]) -> list[Block]:
    """The index's list of every comparison a settle decided or left open, by experiment."""
    rows = [Row([r.name, arm.label, _decision(v), str(v.look or "–"), str(v.seeds or "–")])
            for r in reports for arm, v in r.settled]  # fmt: skip
    if not rows:
        return []
    columns = [Column("experiment", text=True), Column("arm", text=True)]
    columns += [Column("decision", text=True), Column("at look"), Column("seeds per arm")]
    text = "Each experiment's summary says how `settle` ran and what its decisions promise."
    return [Heading("Settled by the sequential test"), Table(columns, rows), Paragraph(text)]
