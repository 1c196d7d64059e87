"""The report's "how sure" blocks: what each experiment's seeds can detect and how many a given
difference needs, the other analyses beside the default one, Holm across the whole report, and
the systematic offset of published values from ours."""

from __future__ import annotations

import math

from ..spec.metrics import HEADLINE, metric
from ..words import plural
from .analysis import verdict_of
from .document import Block, Bullets, Column, Heading, Link, Paragraph, Row, Table
from .model import NOT_SIGNIFICANT, Arm, Correlation, ExperimentReport, Offset, Power
from .power import reference_offsets
from .stats import ALPHA, CONFIDENCE, MOST_SEEDS, POWER, pairing_threshold, sd_range
from .text import DASH, format_p, interval, metric_text, number, p_text, signed

ANALYSES_METHOD = (
    "The verdicts use the default analysis: each arm's Welch t-test against the base case, "
    "Holm-adjusted over the experiment's arms. It is the default because the runs are made "
    "independently: an arm's seed i shares the data order (and the initial weights, when the "
    "architecture matches) with the base case's seed i, but those runs barely correlate "
    "(see the seed correlation above), so pairing them would cost half the degrees of freedom "
    "and buy nothing. Welch's test also asks the least of the data: each comparison rests on "
    "its own two arms only, so an arm with a wider spread (in this experiment the largest sd "
    "of an arm is {ratio} times the smallest) or an arm added to the experiment changes no "
    "other verdict. Two other analyses are shown beside it: the paired t-test by seed, "
    "Holm-adjusted the same way, and Dunnett's many-to-one test, which pools one variance over "
    "every arm of the experiment (many more degrees of freedom, so it sees smaller differences, "
    "but only if the arms really share one spread, which a few seeds per arm cannot check) and "
    "gives p-values and 95% intervals that are simultaneous: adjusted for all the experiment's "
    "comparisons at once."
)
POWER_METHOD = (
    "Detectable difference: the smallest true difference from the base case that the verdicts' "
    "test finds with {power:.0%} probability, at Holm's first step (α = 0.05 divided by the arms "
    "compared; Holm finds at least what this finds), computed from the sd pooled over the "
    "experiment's arms: a two-sample t-test with 2(n − 1) degrees of freedom for n seeds per "
    "arm, which is Welch's test when the arms share that sd, as the pooled sd assumes. The "
    "detectable difference and the seeds needed are read off one curve, this test's power "
    "against seeds per arm, so they are on one scale: the seeds needed for the detectable "
    "difference are the seeds there are. A difference smaller than it can be real and still "
    "come out not significant. The pooled sd rests on few runs, so the seeds needed are given "
    "as a range too: at the two ends of the true sd's 95% interval (chi-square on the pooled "
    "degrees of freedom). The seeds needed are per arm, for every arm and the base case alike. "
    "The base case's runs are the control of every comparison of its experiments: they enter "
    "each experiment's pooled sd, and one unlucky base sample moves every difference of those "
    "experiments the same way, so their verdicts are not independent of each other."
)


def _pp(value: float) -> str:
    """A difference of HEADLINE in its table unit (percentage points of accuracy)."""
    return metric_text(HEADLINE.name, value)


def _seeds(seeds: int | None) -> str:
    return str(seeds) if seeds else f"more than {MOST_SEEDS:,}"


def seeds_needed_text(power: Power) -> str:
    """'13 (6 to 84)': at the measured sd, and at the ends of the true sd's 95% range."""
    return f"{_seeds(power.seeds_needed)} ({_seeds(power.seeds_low)} to {_seeds(power.seeds_high)})"


def _test_text(power: Power) -> str:
    alpha = ALPHA / max(1, power.comparisons)
    return f"two-sample t-test, df 2(n − 1), at α = {number(alpha, '.3g')}"


def compared_text(power: Power) -> str:
    """The arms compared, or a dash where the experiment compares nothing."""
    return str(power.comparisons) if power.comparisons else DASH


def correlation_text(c: Correlation | None) -> str:
    """'0.02 [−0.21, 0.48], p = 0.17' or a dash."""
    if c is None:
        return DASH
    return f"{number(c.icc)} {interval(c.low, c.high)}"


def base_lines(report: ExperimentReport) -> list[str]:
    """What the shared base case does here: Dunnett pools the base's spread with the arms'."""
    power = report.power
    if power is None or math.isnan(power.base_sd) or not power.comparisons:
        return []
    line = f"the base case's own sd: {_pp(power.base_sd)} pp, against {_pp(power.sd)} pooled"
    if power.sd < power.base_sd:
        line += (
            ": Dunnett's test, which uses the pooled sd for the base case's side too, is "
            "optimistic here (its p-values too small)"
        )
    return [line]


def correlation_lines(report: ExperimentReport) -> list[str]:
    """The seed correlation of this experiment and of every arm read, with what pairing needs."""
    lines = []
    for where, c in (("this experiment", report.correlation),
                     ("all distinct arms read", report.study_correlation)):  # fmt: skip
        if c is not None:
            lines.append(
                f"seed correlation, {where}: {correlation_text(c)} (ICC over {c.seeds} seeds × "
                f"{c.arms} arms, seed effect F({c.df1}, {c.df2}) = {number(c.f)}, "
                f"{p_text('p', c.p)})"
            )
    c = report.correlation or report.study_correlation
    if c is not None and c.seeds >= 2:
        threshold = pairing_threshold(c.seeds, ALPHA)
        lines.append(
            f"pairing by seed narrows the test only above a correlation of {number(threshold)} "
            f"with {c.seeds} seeds (α = 0.05; higher at Holm's levels)"
        )
    return lines


def power_blocks(report: ExperimentReport) -> list[Block]:
    """A summary page's 'What these seeds can see': pooled sd, detectable difference, seeds."""
    power = report.power
    if power is None:
        return []
    unit = "pp" if HEADLINE.kind == "accuracy" else ""
    lines = [
        f"pooled sd of the final {HEADLINE.label}: {_pp(power.sd)} {unit} over "
        f"{plural(power.arms, 'arm')} ({power.df} degrees of freedom)",
        f"detectable with {power.seeds} seeds per arm ({POWER:.0%} power, {_test_text(power)}): "
        f"{_pp(power.detectable)} {unit}",
        f"seeds per arm to detect {_pp(power.effect)} {unit}: {seeds_needed_text(power)} (at "
        f"the measured sd, and at the ends of the true sd's 95% range)",
        *base_lines(report),
        *correlation_lines(report),
    ]
    if not power.comparisons:
        lines[1] += " (one configuration: for one new arm compared with it)"
    text = POWER_METHOD.format(power=POWER)
    return [Heading("What these seeds can see"), Bullets(lines), Paragraph(text)]


def _differs(arm: Arm, study: bool = False) -> str:
    """Which other analyses give the arm another verdict than the default, and which."""
    others = [("paired", verdict_of(arm, arm.paired)), ("Dunnett", verdict_of(arm, arm.pooled))]
    if study:
        p = arm.comparison.p_study
        others.insert(0, ("Holm over all", verdict_of(arm, arm.comparison, p)))
    return "; ".join(f"{name}: {v}" for name, v in others if v != arm.verdict) or DASH


def _p(c) -> str:
    return format_p(c.p_adjusted) if c is not None else DASH


def _simultaneous(arm: Arm) -> str:
    c = arm.pooled
    return DASH if c is None else interval(c.diff_low * 100, c.diff_high * 100, sign=True)


def analyses_blocks(report: ExperimentReport) -> list[Block]:
    """A summary page's other analyses: per compared arm, the adjusted p of each and Dunnett's
    simultaneous interval, and where a verdict would differ."""
    compared = [arm for arm in report.arms if arm.comparison is not None]
    if not compared:
        return []
    columns = [Column("arm", text=True), Column("Δ vs base (pp)"), Column("Welch t, Holm p")]
    columns += [Column("paired t, Holm p"), Column("Dunnett p")]
    columns += [Column("Dunnett simultaneous 95% CI (pp)")]
    columns += [Column("verdict by the default", text=True)]
    columns += [Column("other verdicts", text=True, wrap=True)]
    rows = [
        Row(
            [
                arm.label,
                signed(arm.comparison.diff * 100),
                _p(arm.comparison),
                _p(arm.paired),
                _p(arm.pooled),
                _simultaneous(arm),
                arm.verdict,
                _differs(arm),
            ]
        )  # fmt: skip
        for arm in compared
    ]
    sds = [arm.headline.std for arm in report.shown_arms if arm.headline.n >= 2]
    ratio = number(max(sds) / min(sds), ".1f") if sds and min(sds) > 0 else DASH
    blocks: list[Block] = [Heading("The other analyses"), Table(columns, rows)]
    return blocks + [Paragraph(ANALYSES_METHOD.format(ratio=ratio))]


def unadjusted_blocks(report: ExperimentReport) -> list[Block]:
    """A sentence for the arms whose unadjusted 95% CI excludes 0 but whose verdict is 'not
    significant' after Holm's adjustment."""
    lines = [
        f"{arm.label}: Δ {signed(arm.comparison.diff * 100)} pp "
        f"{interval(arm.comparison.diff_low * 100, arm.comparison.diff_high * 100, sign=True)}, "
        f"p = {format_p(arm.comparison.p_value)}, Holm p = {format_p(arm.comparison.p_adjusted)}"
        for arm in report.arms
        if arm.comparison is not None and _excludes_zero_only_unadjusted(arm)
    ]
    if not lines:
        return []
    text = (
        "Not significant although the 95% CI of Δ excludes 0: that interval is for one "
        "comparison alone, while the verdict is adjusted for all the experiment's comparisons "
        "(Holm). Adjusted intervals, Dunnett's simultaneous ones, are under 'The other analyses'."
    )
    return [Paragraph(text), Bullets(lines)]


def _excludes_zero_only_unadjusted(arm: Arm) -> bool:
    c = arm.comparison
    return arm.verdict == NOT_SIGNIFICANT and (c.diff_low > 0 or c.diff_high < 0)


def power_table(reports: list[ExperimentReport], folders: dict[str, str]) -> Table:
    """The index's one row per experiment: pooled sd, detectable difference, seeds needed."""
    effect = next((r.power.effect for r in reports if r.power), math.nan)
    columns = [Column("experiment", text=True), Column("arms pooled"), Column("pooled sd (pp)")]
    columns += [Column("df"), Column("arms compared"), Column("seeds per arm")]
    columns += [Column(f"detectable Δ, {POWER:.0%} power (pp)")]
    columns += [Column(f"seeds per arm for {_pp(effect)} pp (sd's 95% range)")]
    columns += [Column("seed correlation [95% CI]")]
    rows = []
    for report in reports:
        p = report.power
        link = Link(report.name, f"{folders[report.name]}/summary", page=True)
        if p is None:
            rows.append(Row([link] + [DASH] * 8))
            continue
        rows.append(Row([link, str(p.arms), _pp(p.sd), str(p.df), compared_text(p),
                         str(p.seeds), _pp(p.detectable), seeds_needed_text(p),
                         correlation_text(report.correlation)]))  # fmt: skip
    return Table(columns, rows)


def study_blocks(reports: list[ExperimentReport], folders: dict[str, str]) -> list[Block]:
    """The index's 'How sure': the power table, then Holm across every comparison and the other
    analyses, for the arms significant under any of them."""
    compared = [(r, a) for r in reports for a in r.arms if a.comparison is not None]
    blocks: list[Block] = [Heading("How sure: what the seeds can see")]
    blocks += [power_table(reports, folders), Paragraph(POWER_METHOD.format(power=POWER))]
    tested = sum(not math.isnan(a.comparison.p_value) for _, a in compared)
    if not tested:
        return blocks
    shown = [(r, a) for r, a in compared if _significant_anywhere(a)]
    columns = [Column("experiment", text=True), Column("arm", text=True), Column("Δ (pp)")]
    columns += [Column("p"), Column("Holm p, experiment"), Column(f"Holm p, all {tested}")]
    columns += [Column("paired t, Holm p"), Column("Dunnett p"), Column("verdict", text=True)]
    columns += [Column("other verdicts", text=True, wrap=True)]
    rows = [
        Row(
            [
                r.name,
                a.label,
                signed(a.comparison.diff * 100),
                format_p(a.comparison.p_value),
                format_p(a.comparison.p_adjusted),
                format_p(a.comparison.p_study),
                _p(a.paired),
                _p(a.pooled),
                a.verdict,
                _differs(a, study=True),
            ]
        )  # fmt: skip
        for r, a in shown
    ]
    default = sum(a.comparison.p_adjusted < ALPHA for _, a in compared)
    study = sum(a.comparison.p_study < ALPHA for _, a in compared)
    text = (
        f"{tested} arms are compared with their base case. Holm's adjustment "
        f"runs per experiment (the verdicts); over all {tested} comparisons at once, {study} of "
        f"the {default} arms significant per experiment remain so. The arms significant under "
        "any analysis (the default, Holm over all, paired, Dunnett; see a summary page for the "
        "methods):"
    )
    return blocks + [Heading("Across the report"), Paragraph(text), Table(columns, rows)]


def _significant_anywhere(arm: Arm) -> bool:
    c = arm.comparison
    ps = [c.p_adjusted, c.p_study] + [x.p_adjusted for x in (arm.paired, arm.pooled) if x]
    return any(p < ALPHA for p in ps)


def offset_blocks(reports: list[ExperimentReport]) -> list[Block]:
    """The index's systematic offset: published minus our mean, per metric, with its CI and a
    sign test; and how little a 3-run sd pins an interval's width."""
    offsets = reference_offsets(reports)
    if not offsets:
        return []
    columns = [Column("metric", text=True), Column("values"), Column("mean offset")]
    columns += [Column(f"{CONFIDENCE:.0%} CI"), Column("published higher")]
    columns += [Column("published lower"), Column("sign test p")]
    rows = [Row(_offset_cells(name, o)) for name, o in offsets.items()]
    rows += [
        Row(_offset_cells(name, o, " (one value per experiment)"))
        for name, o in reference_offsets(reports, per_experiment=True).items()
    ]
    text = (
        "A one-at-a-time check cannot see a systematic offset, so here are all the reference "
        "values of each metric together: published minus our mean, its mean over the values "
        "with a 95% t-interval, and a sign test of 'published as often above our mean as "
        "below'. The values are not fully independent (one arm can carry several, and an "
        "experiment's arms share its base case and its runs), so each metric is shown again "
        "with one value per experiment (the mean of its offsets): an offset is systematic only "
        "if it survives that too."
    )
    return [Paragraph(text), Table(columns, rows), Paragraph(width_note(reports))]


def _offset_cells(name: str, o: Offset, how: str = "") -> list[str]:
    shown = metric(name)
    mean = signed(o.mean * shown.scale, shown.spec) + (" pp" if shown.kind == "accuracy" else "")
    low, high = o.ci_low * shown.scale, o.ci_high * shown.scale
    ci = interval(low, high, shown.spec, sign=True)
    cells = [str(o.n), mean, ci, str(o.higher), str(o.lower), format_p(o.sign_p)]
    return [shown.label + how, *cells]


def width_note(reports: list[ExperimentReport]) -> str:
    """Each prediction interval's width rests on an sd of few runs: how uncertain that is."""
    ns = [c.ours.n for r in reports for c in r.references if c.ours.n >= 2]
    if not ns:
        return ""
    n = min(ns)
    low, high = sd_range(n - 1)
    return (
        f"Each prediction interval's width rests on the sd of as few as {n} runs ({n - 1} "
        f"degrees of freedom): the true sd may be from {low:.2f} to {high:.1f} times the one "
        "measured (95%, chi-square), so a value just outside or just inside an interval says "
        "little on its own."
    )
