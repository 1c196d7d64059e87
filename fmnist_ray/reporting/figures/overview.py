"""The whole study in one image: a small panel per experiment with the final test accuracy of
each arm (95% CI), the base case line and band, the arm singled out, and published references."""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...spec.config import format_value
from ..model import ExperimentReport
from .common import BASE_COLOR, BEST_COLOR, REFERENCE_LABEL, REFERENCE_STYLE, arm_colors, new_figure
from .final import draw_base, draw_points, draw_references, ring_top

COLUMNS = 4  # panels per row: readable at a README's width


def _tick(values: dict) -> str:
    shown = [v for v in values.values() if v is not None] or list(values.values())
    return ",".join(map(format_value, shown))


def _panel(ax, report: ExperimentReport, first_column: bool) -> None:
    arms = [arm for arm in report.arms if arm.runs]
    where = {arm.label: float(i) for i, arm in enumerate(arms)}
    draw_base(ax, report, label=False)
    draw_points(ax, arms, list(where.values()), arm_colors(report))
    ring_top(ax, report, where, note=False)
    draw_references(ax, report, where)
    labels = [_tick(arm.values) or "base case" for arm in arms]
    rotate = len(arms) > 4 or max(map(len, labels), default=0) > 8
    ax.set_xticks(
        list(where.values()),
        labels,
        fontsize="x-small",
        rotation=60 if rotate else 0,
        ha="right" if rotate else "center",
    )
    ax.set_xlim(-0.6, max(len(arms), 1) - 0.4)
    ax.set_title(report.name, fontsize="medium", weight="bold")
    ax.set_xlabel(" / ".join(report.axes) or "(one configuration)", fontsize="small")
    if first_column:
        ax.set_ylabel("final test accuracy (%)", fontsize="small")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.grid(True, axis="y", alpha=0.3)
    if not arms:
        ax.text(0.5, 0.5, "no finished runs", transform=ax.transAxes, ha="center", color="0.35")


def overview_figure(reports: list[ExperimentReport]) -> Figure:
    """One panel per experiment (their own y range: the arms' spread is what matters)."""
    columns = min(COLUMNS, max(1, len(reports)))
    rows = math.ceil(len(reports) / columns)
    # Never narrower than two panels, so that the title and the legend fit above one panel.
    fig = new_figure((max(3.4 * columns + 0.6, 7.4), 3.3 * rows + 1.1))
    for i, report in enumerate(reports):
        _panel(fig.add_subplot(rows, columns, i + 1), report, first_column=i % columns == 0)
    fig.suptitle("Final test accuracy per arm (mean, 95% CI over seeds)", weight="bold")
    fig.legend(
        handles=_legend(reports),
        loc="outside lower center",
        ncols=2 if columns < 3 else 4,
        fontsize="small",
        frameon=False,
    )
    return fig


def _legend(reports: list[ExperimentReport]) -> list[Line2D]:
    """One legend for all panels: only the marks that some panel shows."""
    handles = [
        Line2D([], [], marker="o", color="0.3", label="arm: mean, 95% CI"),
        Line2D([], [], ls="--", color=BASE_COLOR, label="base case mean (band: 95% CI)"),
    ]
    if any(report.winner for report in reports):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ms=12,
                mfc="none",
                mec=BEST_COLOR,
                ls="",
                label="best: above base, Holm p < 0.05",
            )
        )
    if any(r.highest and not r.winner and not r.highest.is_base for r in reports):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ms=12,
                mfc="none",
                mec="0.45",
                ls="",
                label="highest mean (not significant)",
            )
        )
    if any(report.references for report in reports):
        handles.append(Line2D([], [], label=REFERENCE_LABEL, **REFERENCE_STYLE))
    return handles
