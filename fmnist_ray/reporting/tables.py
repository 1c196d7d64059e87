"""The report's pages, each described once as document blocks (rendered to Markdown and HTML by
document.py): per experiment the summary, and the index across experiments."""

from __future__ import annotations

import numpy as np

from ..spec.metrics import FIT, HEADLINE, LOSSES
from ..store.devices import describe_devices
from ..words import error_headline
from .arms import describe_config
from .document import (
    Block,
    Bullets,
    Column,
    Facts,
    Figure,
    Heading,
    Inline,
    Link,
    Nowrap,
    Paragraph,
    Row,
    Table,
)
from .model import FIGURES, OVERVIEW, Arm, ExperimentReport, Reference, ReferenceCheck, Run
from .power_pages import (
    analyses_blocks,
    offset_blocks,
    power_blocks,
    study_blocks,
    unadjusted_blocks,
    width_note,
)
from .settled import settled_blocks, settled_index_blocks
from .text import (
    DASH,
    format_p,
    interval,
    metric_interval,
    metric_text,
    number,
    p_text,
    seeds_text,
    short_verdict,
    signed,
    verdict_lines,
)

METHODS = (
    "How to read the numbers: each run counts with its last epoch, and only runs with status ok "
    "(diverged and failed runs are listed, not averaged). Per arm: the mean over seeds and its "
    "95% confidence interval, mean ± t(0.975, n−1)·s/√n. Each arm is compared with the base "
    "case by Welch's t-test (two samples, unequal variances): runs with the same seed see the "
    "training data in the same order, and start from the same weights when the architecture "
    "is the same, but {correlation}, so the runs are treated as what they are made as, "
    "independent samples. Δ is the arm's mean minus the base "
    "case's, in percentage points, with its 95% CI. With several arms, one of them can reach "
    "p < 0.05 by chance alone, so the p-values of an experiment are adjusted for the number of "
    "arms compared (Holm's method): an arm counts as above or below the base case only when its "
    "Holm p is below 0.05. An arm with fewer finished seeds than planned is marked incomplete "
    "and is never singled out. Other analyses (the paired t-test by seed, Dunnett's test on a "
    "pooled variance, Holm over every comparison of the report) are shown beside this one, with "
    "the verdicts where they differ, and so is the difference these seeds can detect."
)


def methods_text(report: ExperimentReport | None) -> str:
    """METHODS with the seed correlation measured over every distinct arm read."""
    c = report.study_correlation if report is not None else None
    if c is None:
        said = "how alike such runs are could not be measured here (fewer than 2 seeds)"
    else:
        said = (
            f"measured over the {c.arms} distinct arms read, two arms' runs of one seed "
            f"correlate by {number(c.icc)} (95% CI {interval(c.low, c.high)}; seed effect "
            f"{p_text('p', c.p)})"
        )
    return METHODS.format(correlation=said)


REFERENCE_METHOD = (
    "A published value is a single run, not a mean, so it is checked against the 95% prediction "
    "interval for one new run, mean ± t(0.975, n−1)·s·√(1 + 1/n), which is wider than the 95% "
    "CI of the mean (shown too). Outside the prediction interval means that one run of ours would "
    "rarely land there: a real difference in setup or a copy error, not seed noise."
)


def arm_name(report: ExperimentReport, arm: Arm) -> str:
    """The arm's label, saying which row is the base case and which one is singled out."""
    if arm.is_base and report.base_borrowed:
        label = f"base case (from {report.base_source})"
    else:
        label = arm.label + (" (base case)" if arm.is_base else "")
    return label + (" ★ best" if arm is report.winner else "")


def _ci_cell(arm: Arm) -> str:
    n = arm.headline.n
    if n < 2:
        return "no finished runs" if n == 0 else "n=1: no interval"
    return metric_interval(HEADLINE.name, arm.headline.ci_low, arm.headline.ci_high)


def _delta(arm: Arm, spread: bool = True) -> str:
    """'+0.45 [+0.21, +0.69]': the difference to the base case in pp, with its 95% CI."""
    c = arm.comparison
    if c is None:
        return DASH
    ci = interval(c.diff_low * 100, c.diff_high * 100, sign=True)
    return signed(c.diff * 100) + (f" {ci}" if spread and ci != DASH else "")


def _comparison_cells(arm: Arm) -> list[str]:
    """Δ with its CI, the test, p and Holm p (dashes for the base case and arms not compared)."""
    c = arm.comparison
    if c is None:
        return [DASH] * 4
    test = c.test or f"none (n={min(c.n, c.base_n)})"
    return [_delta(arm), test, format_p(c.p_value), format_p(c.p_adjusted)]


def _verdict_cell(arm: Arm) -> str:
    if arm.incomplete and arm.runs:
        return f"incomplete ({seeds_text(arm)} seeds)"
    return arm.verdict


def _inside_text(check: ReferenceCheck) -> str:
    return {True: "inside", False: "outside", None: "n<2: no interval"}[check.inside]


def arm_table(report: ExperimentReport) -> Table:
    """One row per arm (a borrowed base case first); a reference column when values match."""
    columns = [Column("arm", text=True), Column("seeds"), Column("train loss")]
    columns += [Column("test acc (%)"), Column("95% CI (%)"), Column("Δ vs base, 95% CI (pp)")]
    columns += [Column("test", text=True), Column("p"), Column("Holm p")]
    columns += [Column("verdict", text=True, wrap=True)]
    checks = {c.arm: c for c in report.references if c.reference.metric == HEADLINE.name}
    if checks:
        columns += [Column("reference (%)"), Column("in 95% PI", text=True)]
    rows = []
    for arm in report.shown_arms:
        cells = [arm_name(report, arm), seeds_text(arm), metric_text(FIT.name, arm.fit.mean)]
        cells += [metric_text(HEADLINE.name, arm.headline.mean), _ci_cell(arm)]
        cells += _comparison_cells(arm)
        cells.append(_verdict_cell(arm))
        if checks:
            check = checks.get(arm)
            value = metric_text(HEADLINE.name, check.reference.value) if check else DASH
            cells += [value, _inside_text(check) if check else DASH]
        kind = "winner" if arm is report.winner else "base" if arm.is_base else ""
        rows.append(Row(cells, kind))
    return Table(columns, rows)


def reference_table(checks: list[ReferenceCheck]) -> Table:
    """Each reference value beside our mean, CI of the mean and prediction interval."""
    columns = [Column("arm", text=True), Column("metric", text=True), Column("reference")]
    columns += [Column("our mean"), Column("seeds"), Column("95% CI of the mean")]
    columns += [Column("95% PI, one new run"), Column("reference is", text=True)]
    columns += [Column("note", text=True, wrap=True)]
    rows = []
    for check in checks:
        metric, ours = check.reference.metric, check.ours
        ci = metric_interval(metric, ours.ci_low, ours.ci_high)
        pi = metric_interval(metric, ours.pi_low, ours.pi_high)
        cells = [check.arm.label, metric, metric_text(metric, check.reference.value)]
        cells += [metric_text(metric, ours.mean), str(ours.n), ci, pi]
        cells += [_inside_text(check), check.reference.note or DASH]
        rows.append(Row(cells))
    return Table(columns, rows)


def _base_fact(report: ExperimentReport) -> str:
    config = describe_config(report.base_config)
    if report.base is None:
        return f"{config}: not found in the results read"
    if report.base_borrowed:
        return f"{config} (from experiment {report.base_source})"
    return f"{config} (arm {report.base.label})"


def _diverged_epoch(run: Run) -> str:
    bad = np.zeros(len(run.epochs), dtype=bool)
    for loss in LOSSES:
        bad |= ~np.isfinite(run.metrics[loss.name])
    return f"loss not finite at epoch {int(run.epochs[bad][0])}" if bad.any() else "diverged"


def problem_lines(report: ExperimentReport) -> tuple[list[str], list[str]]:
    """Diverged and failed runs as '`run id` arm, seed N: what happened'."""
    diverged = [
        f"`{run.run_id}` {arm.label}, seed {run.seed}: {_diverged_epoch(run)}"
        for arm, run in report.diverged
    ]
    failed = [
        f"`{record.get('run_id')}` {arm.label}, seed {record.get('config', {}).get('seed', '?')}: "
        + error_headline(record.get("error"))
        for arm, record in report.failed
    ]
    return diverged, failed


def summary_blocks(report: ExperimentReport, figures: tuple[str, ...] = FIGURES) -> list[Block]:
    """summary.md/.html: facts and verdict, the arm table, methods, references, figures,
    diverged and failed runs, notes."""
    facts = [
        ("description", report.description or DASH),
        ("axes", ", ".join(report.axes) or "none (one configuration)"),
        ("runs", report.completeness.describe()),
        ("devices", devices_text(report)),
        ("base case", _base_fact(report)),
    ]
    blocks: list[Block] = [
        Heading(f"Experiment {report.name}", 1),
        Paragraph(Link("← all experiments", "../index", page=True)),
        Facts(facts + verdict_lines(report)),
        *device_blocks([report]),
        arm_table(report),
        *unadjusted_blocks(report),
        Paragraph(methods_text(report)),
        *power_blocks(report),
        *analyses_blocks(report),
        *settled_blocks(report),
    ]
    if report.references:
        blocks += [Heading("Published reference values"), reference_table(report.references)]
        blocks += [Paragraph(REFERENCE_METHOD), Paragraph(width_note([report]))]
    blocks.append(Heading("Figures"))
    blocks += [Figure(f"{name}.png", f"{name}.svg", name) for name in figures]
    diverged, failed = problem_lines(report)
    blocks += [Heading("Diverged runs"), Bullets(diverged), Heading("Failed runs"), Bullets(failed)]
    if report.notes:
        blocks += [Heading("Notes"), Bullets(list(report.notes))]
    return blocks


def devices_text(report: ExperimentReport) -> str:
    """'cpu: 24; base case: cpu: 3': where its runs trained, and a borrowed base case's."""
    text = describe_devices(report.devices())
    if report.base_borrowed:
        text += f"; base case: {describe_devices(report.devices(borrowed=True))}"
    return text


def device_blocks(reports: list[ExperimentReport]) -> list[Block]:
    """A warning for each experiment whose arms mix CPU and GPU runs (none: no blocks)."""
    warnings = [report.device_warning for report in reports if report.device_warning]
    if not warnings:
        return []
    return [Heading("Warning: CPU and GPU runs compared"), Bullets(list(warnings))]


def _top_cells(report: ExperimentReport) -> list[Inline]:
    """The arm singled out (or the highest mean, marked not significant): name, mean, Δ, Holm p."""
    top = report.winner or report.highest
    if top is None:
        return [DASH] * 4
    name: Inline = Nowrap(arm_name(report, top))
    if top.is_base and not report.base_borrowed and len(report.arms) == 1:
        name = "the base case (one configuration)"
    elif top is not report.winner and not top.is_base:
        name = (name, " (highest mean, not significant)")
    holm_p = _comparison_cells(top)[3]
    return [name, metric_text(HEADLINE.name, top.headline.mean), _delta(top, spread=False), holm_p]


def _index_row(report: ExperimentReport, folder: str) -> Row:
    cells: list[Inline] = [Link(report.name, f"{folder}/summary", page=True)]
    state, sep, detail = report.completeness.describe().partition(" (")
    cells += [(Nowrap(state), sep + detail), devices_text(report)]
    cells += [metric_text(HEADLINE.name, report.base.headline.mean) if report.base else DASH]
    cells += [short_verdict(report), *_top_cells(report)]
    links = [Link(name, f"{folder}/{name}.png") for name in FIGURES]
    cells.append(tuple(part for link in links for part in (link, " "))[:-1])
    return Row(cells)


def _reference_blocks(reports: list[ExperimentReport], source: str, refs: list[Reference]) -> list:
    checks = [check for report in reports for check in report.references]
    blocks: list[Block] = [Heading(f"Published reference values ({source})")]
    if not checks:
        covered = ", ".join(dict.fromkeys(ref.experiment for ref in refs)) or "none"
        reported = ", ".join(report.name for report in reports)
        text = (
            f"No reference value matches an arm reported here: the file has {len(refs)} values "
            f"for the experiments {covered}; this report has {reported}. Nothing was checked."
        )
        return blocks + [Paragraph(text)]
    outside = [check for check in checks if check.inside is False]
    blocks.append(
        Paragraph(
            f"{len(checks)} reference values match arms here; {len(outside)} lie outside our "
            "95% prediction interval for one new run:"
        )
    )
    lines = [
        f"{report.name}, {reference_line(check)}"
        for report in reports
        for check in report.references
        if check.inside is False
    ]
    return blocks + [Bullets(lines), Paragraph(REFERENCE_METHOD), *offset_blocks(reports)]


def reference_line(check: ReferenceCheck) -> str:
    """'lr=0.0128, <metric>: reference 81.36 outside our 95% PI [84.10, 86.20] (mean 85.15, n=3)'"""
    metric, ours = check.reference.metric, check.ours
    pi = metric_interval(metric, ours.pi_low, ours.pi_high)
    return (
        f"{check.arm.label}, {metric}: reference {metric_text(metric, check.reference.value)} "
        f"{_inside_text(check)} our 95% PI {pi} (mean {metric_text(metric, ours.mean)}, "
        f"n={ours.n})"
    )


def index_blocks(
    reports: list[ExperimentReport],
    folders: dict[str, str],
    notes: list[str],
    reference: tuple[str, list[Reference]] | None = None,
) -> list[Block]:
    """index.md/.html: the overview figure, one row per experiment, references outside our
    prediction intervals, methods and notes."""
    columns = [Column("experiment", text=True), Column("runs", text=True, wrap=True)]
    columns += [Column("devices", text=True)]
    columns += [Column("base case (%)"), Column("verdict vs base", text=True, wrap=True)]
    columns += [Column("top arm", text=True, wrap=True), Column("test acc (%)")]
    columns += [Column("Δ vs base (pp)")]
    columns += [Column("Holm p"), Column("figures", text=True, wrap=True)]
    rows = [_index_row(report, folders[report.name]) for report in reports]
    blocks: list[Block] = [
        Heading("Report: all experiments", 1),
        Table(columns, rows),
        *device_blocks(reports),
        Figure(f"{OVERVIEW}.png", f"{OVERVIEW}.svg", "final test accuracy of every experiment"),
        Paragraph(methods_text(reports[0] if reports else None)),
        *study_blocks(reports, folders),
        *settled_index_blocks(reports),
    ]
    if reference is not None:
        blocks += _reference_blocks(reports, *reference)
    if notes:
        blocks += [Heading("Notes"), Bullets(list(notes))]
    return blocks
