"""What `settle` decided: each compared arm of an experiment with a settle record, replayed by
the sequential test over the runs read (reporting/sequential.py), and the blocks that show it."""

from __future__ import annotations

from dataclasses import replace

from ..spec.grid import with_seeds
from ..spec.metrics import HEADLINE
from .document import Block, Column, Heading, Paragraph, Row, Table
from .model import ExperimentReport
from .sequential import CAPPED, DIFFERENT, OPEN, Design, replay_all
from .text import signed


def design_of(record: dict) -> tuple[Design, tuple[int, ...]]:
    """The design and looks a settle record names."""
    design = Design(effect=record["effect"], alpha=record["alpha"], power=record["power"],
                    comparisons=record["comparisons"], spending=record["spending"],
                    futility=record["futility"], recycle=record.get("recycle", False))  # fmt: skip
    return design, tuple(record["looks"])


def _in_order(arm, seeds: tuple[int, ...]) -> list[float]:
    by_seed = {run.seed: run.final(HEADLINE.name) for run in arm.runs}
    values = []
    for seed in seeds:
        if seed not in by_seed:
            break
        values.append(by_seed[seed])
    return values


def fill_settled(reports: list[ExperimentReport], experiments: list) -> None:
    """Replay the compared arms of every settle record under its design, the experiments of
    one settle together (Holm's recycling ties their verdicts). Where one of them is not in
    the tree read, recycling is left out and a note says so: Bonferroni holds on any subset."""
    families: dict[tuple, list] = {}
    for report, experiment in zip(reports, experiments, strict=True):
        if report.settle and report.base is not None:
            families.setdefault(tuple(report.settle["experiments"]), []).append(
                (report, experiment)
            )
    for names, members in families.items():
        design, looks = design_of(members[0][0].settle)
        missing = set(names) - {report.name for report, _ in members}
        if missing and design.recycle:
            design = replace(design, recycle=False)
            for report, _ in members:
                report.notes.append(f"{report.name}: settled with {', '.join(sorted(missing))}, "
                                    "not read here: replayed without Holm's recycling")  # fmt: skip
        compared = [(report, arm, _in_order(arm, seeds), _in_order(report.base, seeds))
                    for report, experiment in members
                    for seeds in [_seeds(experiment, looks)]
                    for arm in report.arms if arm.comparison is not None]  # fmt: skip
        verdicts = replay_all([(arm, base) for _, _, arm, base in compared], looks, design)
        for (report, arm, _, _), verdict in zip(compared, verdicts, strict=True):
            report.settled.append((arm, verdict))


def _seeds(experiment, looks: tuple[int, ...]) -> tuple[int, ...]:
    return with_seeds(experiment, looks[-1]).seeds if experiment else tuple(range(looks[-1]))


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
    holm = ", Holm: a difference found passes its alpha on" if design.recycles else ""
    text = (
        f"`fmnist-ray settle` ran {rounds} rounds on this experiment: seeds added where a "
        f"comparison was open, looks at {', '.join(map(str, looks))} seeds per arm. Each "
        "comparison is Welch's t-test against the base case at each look, with group-sequential "
        f"boundaries ({design.spending} alpha spending{holm}) that keep false positives at "
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
