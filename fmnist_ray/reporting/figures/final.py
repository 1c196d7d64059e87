"""Final test accuracy per arm of one experiment: mean with 95% CI over seeds, the base case as
a dashed line with its CI band, the arm singled out (or the highest mean) ringed, references."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from ...spec.config import axis_label, format_value
from ...spec.metrics import HEADLINE
from ..model import Arm, ExperimentReport
from ..text import p_text, signed, verdict_lines
from .common import (
    BASE_COLOR,
    BEST_COLOR,
    arm_colors,
    distinct,
    draw_reference,
    grid_roles,
    is_numeric,
    legend_outside,
    line_color,
    new_figure,
    say_empty,
    spans,
)


def positions(report: ExperimentReport) -> tuple[str, dict[str, float], dict[str, float]]:
    """Where each arm sits on the x axis, and how x is drawn: 'numeric' (one numeric axis,
    values on x), 'grid' (two axes) or 'categorical'; plus the tick labels of a categorical x."""
    arms = report.arms
    if len(report.axes) == 1 and is_numeric(arms, report.axes[0]):
        return "numeric", {a.label: float(a.values[report.axes[0]]) for a in arms}, {}
    if len(report.axes) == 2:
        x_axis, _ = grid_roles(report)
        if is_numeric(arms, x_axis):
            return "grid", {a.label: float(a.values[x_axis]) for a in arms}, {}
        xs = distinct(arms, x_axis)
        ticks = {format_value(v): float(i) for i, v in enumerate(xs)}
        return "grid", {a.label: float(xs.index(a.values[x_axis])) for a in arms}, ticks
    ticks = {}
    for i, arm in enumerate(arms):
        # Values only, one axis per line: the x label names the axes, top to bottom.
        shown = [v for v in arm.values.values() if v is not None] or list(arm.values.values())
        name = "\n".join(map(format_value, shown)) or arm.label
        ticks[name + ("\n(base case)" if arm.is_base else "")] = float(i)
    return "categorical", {a.label: float(i) for i, a in enumerate(arms)}, ticks


def draw_points(ax: Any, arms: list[Arm], xs: list[float], colors: dict[str, Any]) -> None:
    """Mean with 95% CI error bar; a square for the base case, hollow for a single seed."""
    for arm, x in zip(arms, xs, strict=True):
        stats = arm.headline
        y = stats.mean * 100
        single = stats.n < 2
        yerr = None if single else [[y - stats.ci_low * 100], [stats.ci_high * 100 - y]]
        color = colors.get(arm.label, BASE_COLOR)
        ax.errorbar(
            [x],
            [y],
            yerr=yerr,
            fmt="s" if arm.is_base else "o",
            ms=8,
            capsize=4,
            color=color,
            mfc="white" if single else color,
            mec=color,
            mew=1.8,
            zorder=3,
            gid=f"arm:{arm.label}",
        )


def draw_base(ax: Any, report: ExperimentReport, label: bool = True) -> None:
    """The base case's mean as a dashed line across the axes, its 95% CI as a grey band."""
    if report.base is None or not report.base.headline.n:
        return
    stats = report.base.headline
    where = f", from {report.base_source}" if report.base_borrowed else ""
    text = f"base case: {stats.mean * 100:.2f}% (n={stats.n}{where})" if label else "_nolegend_"
    ax.axhline(stats.mean * 100, color=BASE_COLOR, ls="--", lw=1.2, label=text, zorder=1)
    if stats.n >= 2:
        ax.axhspan(
            stats.ci_low * 100,
            stats.ci_high * 100,
            color=BASE_COLOR,
            alpha=0.08,
            lw=0,
            label="base case 95% CI" if label else "_nolegend_",
            zorder=0,
        )


def draw_references(ax: Any, report: ExperimentReport, where: dict[str, float]) -> None:
    checks = [c for c in report.references if c.reference.metric == HEADLINE.name]
    for i, check in enumerate(c for c in checks if c.arm.label in where):
        draw_reference(ax, where[check.arm.label], check.reference.value * 100, first=i == 0)


def final_figure(report: ExperimentReport) -> Figure:
    """Final test accuracy per arm: mean with 95% CI over seeds, base case line, references."""
    fig = new_figure()
    ax = fig.add_subplot()
    kind, where, ticks = positions(report)
    arms = [arm for arm in report.arms if arm.runs]
    values = list(where.values())
    log = kind != "categorical" and not ticks and bool(values) and spans(values, 10)
    draw_base(ax, report)
    if kind == "grid" and where:
        where = _dodged(report, where, log, categorical=bool(ticks))
        _draw_grid_lines(ax, report, arms, where)
    else:
        if kind == "numeric" and len(arms) > 1:
            ordered = sorted(arms, key=lambda a: where[a.label])
            xs = [where[a.label] for a in ordered]
            ax.plot(xs, [a.headline.mean * 100 for a in ordered], color="0.6", lw=1, zorder=2)
        draw_points(ax, arms, [where[arm.label] for arm in arms], arm_colors(report))
    _draw_unfinished(ax, report, where)
    if not arms:
        say_empty(ax, ylim=(0, 100))
    ring_top(ax, report, where)
    draw_references(ax, report, where)
    _axes(ax, report, kind, ticks, log)
    return fig


def _draw_unfinished(ax: Any, report: ExperimentReport, where: dict[str, float]) -> None:
    """Arms whose every run diverged or failed: a cross at the bottom, so the gap is visible."""
    xs = [where[arm.label] for arm in report.arms if not arm.runs]
    if xs:
        ax.plot(
            xs,
            [0.04] * len(xs),
            "x",
            color="0.35",
            ms=10,
            mew=2,
            transform=ax.get_xaxis_transform(),
            label="no finished runs (diverged/failed)",
        )


def _dodged(
    report: ExperimentReport, where: dict[str, float], log: bool, categorical: bool
) -> dict[str, float]:
    """Shift each line's points sideways a little so that error bars at one x do not overlap
    (in log space on a log axis; a tenth of a slot on a categorical one)."""
    _, line_axis = grid_roles(report)
    values = distinct(report.arms, line_axis)
    xs = list(where.values())
    step = 0.1 if categorical else 0.025 * (max(xs) - min(xs) or 1.0)
    decades = 0.025 * math.log10(max(xs) / min(xs)) if log else 0.0
    dodged = {}
    for label, x in where.items():
        arm = next(a for a in report.arms if a.label == label)
        offset = values.index(arm.values[line_axis]) - (len(values) - 1) / 2
        dodged[label] = x * 10 ** (offset * decades) if log else x + offset * step
    return dodged


def _draw_grid_lines(
    ax: Any, report: ExperimentReport, arms: list[Arm], where: dict[str, float]
) -> None:
    """One line per value of the second axis over the first."""
    _, line_axis = grid_roles(report)
    colors = arm_colors(report)
    for value in distinct(report.arms, line_axis):
        members = [a for a in arms if a.values[line_axis] == value]
        members.sort(key=lambda a: where[a.label])
        if not members:
            continue
        xs = [where[a.label] for a in members]
        ax.plot(
            xs,
            [a.headline.mean * 100 for a in members],
            lw=1.6,
            zorder=2,
            color=line_color(report, line_axis, value),
            label=f"{line_axis}={format_value(value)}",
        )
        draw_points(ax, members, xs, colors)


def ring_top(ax: Any, report: ExperimentReport, where: dict[str, float], note: bool = True) -> None:
    """A red ring around the arm singled out (significantly above the base case, highest mean);
    without one, a grey ring around the highest mean, labelled as not significant."""
    top = report.winner or report.highest
    if top is None or top.is_base or top.label not in where:
        return
    x, y = where[top.label], top.headline.mean * 100
    color = BEST_COLOR if top is report.winner else "0.45"
    short = top.label if len(top.label) <= 40 else "named above"
    c = top.comparison
    if top is report.winner:
        label = f"best: {short} ({p_text('Holm p', c.p_adjusted)})"
    else:
        label = f"highest mean (not significant): {short}"
    ax.plot([x], [y], "o", ms=20, mfc="none", mec=color, mew=2.2, zorder=4, label=label)
    if not note:
        return
    text = f"{y:.2f}%" + ("" if c is None else f"\n{signed(c.diff * 100)} pp vs base")
    box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}
    ax.annotate(
        text,
        (x, y),
        xytext=(0, 16),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize="small",
        color=color,
        weight="bold",
        zorder=5,
        bbox=box,
    )


def _x_label(report: ExperimentReport, kind: str) -> str:
    if kind == "grid":
        return axis_label(grid_roles(report)[0])
    if len(report.axes) == 1:
        return axis_label(report.axes[0])
    if report.axes:
        return " / ".join(report.axes) + " (tick lines, top to bottom)"
    return "configuration"


def _axes(ax: Any, report: ExperimentReport, kind: str, ticks: dict[str, float], log: bool) -> None:
    if log:
        ax.set_xscale("log")
    if ticks:
        ax.set_xticks(list(ticks.values()), list(ticks.keys()), fontsize="small")
        ax.set_xlim(min(ticks.values()) - 0.5, max(ticks.values()) + 0.5)
    elif kind != "categorical":
        axis = grid_roles(report)[0] if len(report.axes) == 2 else report.axes[0]
        values = sorted({arm.values[axis] for arm in report.arms})
        ax.set_xticks([float(v) for v in values], [format_value(v) for v in values])
        ax.minorticks_off()
    ax.set_xlabel(_x_label(report, kind) + (" (log scale)" if log else ""))
    ax.set_ylabel("final test accuracy (%)")
    ax.margins(y=0.25)  # room above the ringed point for its annotation
    ax.grid(True, axis="y", alpha=0.3)
    ax.get_figure().suptitle(f"{report.name}: final test accuracy per arm", weight="bold")
    hollow = any(arm.headline.n == 1 for arm in report.arms)
    lines = [
        "mean over seeds with 95% CI (t interval)"
        + ("; hollow marker: n=1, no interval" if hollow else "")
    ]
    lines += [f"{key}: {text}" for key, text in verdict_lines(report)]
    empty = [arm.label for arm in report.arms if not arm.runs]
    if empty:
        lines.append("no finished runs (diverged/failed): " + "; ".join(empty))
    ax.set_title("\n".join(lines), fontsize="small", loc="left")
    legend_outside(ax)  # entries name their axis: 'lr=0.01', 'base case', 'best: ...'
