"""How the report writes numbers and verdicts, for tables and figures alike: one p format, one
minus sign (U+2212, as matplotlib's ticks), axis values as in experiment files, and the sentences
that say which arm, if any, differs from the base case."""

from __future__ import annotations

import math
from typing import Any

from ..spec.config import format_value
from ..spec.metrics import metric
from .model import Arm, ExperimentReport

MINUS = "\u2212"
DASH = "–"  # an empty cell: no value to show


def arm_label(values: dict[str, Any]) -> str:
    """'lr=0.001' or 'activation=relu, pooling=max'. Options that do not apply (None, e.g.
    LeNet-5 options of an fc run) are left out unless nothing else is left."""
    shown = {axis: value for axis, value in values.items() if value is not None} or values
    return ", ".join(f"{axis}={format_value(value)}" for axis, value in shown.items())


def number(value: float | None, spec: str = ".2f") -> str:
    """A number with the report's minus sign; a dash for a missing value (None or NaN)."""
    if value is None or math.isnan(value):
        return DASH
    return format(value, spec).replace("-", MINUS)


def signed(value: float, spec: str = ".2f") -> str:
    """'+0.45' or '−0.45': a difference always shows its sign."""
    return number(value, "+" + spec)


def interval(low: float, high: float, spec: str = ".2f", sign: bool = False) -> str:
    """'[83.92, 85.70]' (or with signs, for a difference); a dash when undefined."""
    if math.isnan(low) or math.isnan(high):
        return DASH
    show = signed if sign else number
    return f"[{show(low, spec)}, {show(high, spec)}]"


def format_p(p: float) -> str:
    """Every p in the report: three significant digits, '<0.001' below that, a dash for none."""
    if math.isnan(p):
        return DASH
    return "<0.001" if p < 0.001 else format(p, ".3g")


def metric_text(name: str, value: float) -> str:
    """A metric's value as the tables show it (its vocabulary entry's scale and format)."""
    shown = metric(name)
    return number(value * shown.scale, shown.spec)


def metric_interval(name: str, low: float, high: float) -> str:
    """An interval of a metric's values, written like `metric_text`."""
    shown = metric(name)
    return interval(low * shown.scale, high * shown.scale, shown.spec)


def p_text(name: str, p: float) -> str:
    """'p = 0.0312', 'Holm p < 0.001': a p-value in a sentence."""
    shown = format_p(p)
    return f"{name} < {shown[1:]}" if shown.startswith("<") else f"{name} = {shown}"


def seeds_text(arm: Arm) -> str:
    """'3' or '2 of 3': finished seeds, and the plan when the arm falls short of it."""
    n = len(arm.runs)
    return f"{n} of {arm.planned}" if arm.incomplete else str(n)


def difference_text(arm: Arm) -> str:
    """'+0.45 pp [+0.21, +0.69], paired t, p = 0.0042, Holm p = 0.012' for an arm vs the base."""
    c = arm.comparison
    if c is None:
        return "no base case to compare"
    text = f"{signed(c.diff * 100)} pp"
    if not c.test or math.isnan(c.p_value):
        return text + ", no test (" + ("n < 2)" if not c.test else "no spread)")
    text += f" {interval(c.diff_low * 100, c.diff_high * 100, sign=True)}, {c.test}"
    return text + f", {p_text('p', c.p_value)}, {p_text('Holm p', c.p_adjusted)}"


def arm_result(arm: Arm) -> str:
    """'lr=0.0016, 89.40% (+0.45 pp [...], paired t, ...)': one arm in one line."""
    head = f"{arm.label}, {arm.headline.mean * 100:.2f}%"
    return head + ("" if arm.is_base else f" ({difference_text(arm)})")


def _compared(report: ExperimentReport) -> bool:
    """Whether any arm besides the base case has finished runs to compare."""
    return any(arm.runs and not arm.is_base for arm in report.arms)


def short_verdict(report: ExperimentReport) -> str:
    """The verdict of `verdict_lines` in a table cell."""
    if report.base is None:
        return "no base case"
    if not _compared(report):
        return "one configuration: nothing to compare"
    if report.better:
        text = "better than base: " + "; ".join(arm.label for arm in report.better)
    else:
        text = "no arm above base" if report.worse else "no arm differs significantly"
    lower = "; ".join(arm.label for arm in report.worse)
    return text + (f"; lower: {lower}" if lower else "")


def verdict_lines(report: ExperimentReport) -> list[tuple[str, str]]:
    """What the experiment shows about its arms against the base case, as (key, sentence).

    'better than the base case' only for a significant gain (Holm p < 0.05) of a complete arm;
    otherwise the plain statement that none is, and the highest mean marked as not significant.
    """
    if report.base is None:
        return [("comparison", "no base case in the results read: arms not compared")]
    if not _compared(report):
        return [("comparison", "one configuration (the base case): nothing to compare")]
    if report.winner is not None:
        lines = [("better than the base case", arm_result(report.winner))]
        lines += [("also significantly higher", arm_result(a)) for a in report.better[1:]]
    else:
        lines = [("verdict", "no arm differs significantly from the base case at 95%")]
        if report.worse:
            lines = [("verdict", "no arm is significantly above the base case at 95%")]
        highest = report.highest
        if highest is not None and highest.is_base:
            lines.append(("highest mean", f"the base case itself, {highest.headline.mean:.2%}"))
        elif highest is not None:
            lines.append(("highest mean (not significant)", arm_result(highest)))
    lines += [("significantly lower", arm_result(arm)) for arm in report.worse]
    return lines
