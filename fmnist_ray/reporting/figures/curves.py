"""Per-epoch curves of one experiment: one line per arm (mean over seeds, band = min..max across
seeds), the base case dashed on top, published final values marked at the last epoch."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...spec.metrics import FIT, HEADLINE, metric
from ..model import Arm, ExperimentReport, Run
from ..text import number, verdict_lines
from .common import (
    BASE_COLOR,
    PlainLogFormatter,
    arm_colors,
    draw_reference,
    legend_outside,
    new_figure,
    say_empty,
    spans,
)


def band(runs: list[Run], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean, min and max across runs (runs may have different lengths)."""
    epochs = np.array(sorted({int(e) for run in runs for e in run.epochs}))
    matrix = np.full((len(runs), len(epochs)), np.nan)
    for i, run in enumerate(runs):
        matrix[i, np.searchsorted(epochs, run.epochs)] = run.metrics[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return epochs, np.nanmean(matrix, 0), np.nanmin(matrix, 0), np.nanmax(matrix, 0)


def counts(arm: Arm) -> str:
    """'n=2, 1 diverged': seeds in the line, and those left out of it."""
    parts = [f"n={len(arm.runs)}"]
    parts += [f"{len(arm.diverged)} diverged"] if arm.diverged else []
    parts += [f"{len(arm.failed)} failed"] if arm.failed else []
    return ", ".join(parts)


def _subtitle(report: ExperimentReport, name: str) -> str:
    lines = ["line = mean over seeds, shaded band = min..max across seeds"]
    scored = [arm for arm in report.arms if arm.runs]
    if name == HEADLINE.name:
        lines += [f"{key}: {text}" for key, text in verdict_lines(report)]
    elif name == FIT.name and scored:
        lowest = min(scored, key=lambda a: a.fit.mean)
        base = f" (base case {number(report.base.fit.mean, '.3f')})" if report.base else ""
        lines.append(
            f"lowest final {FIT.label}: {lowest.label}, {number(lowest.fit.mean, '.3f')}{base}"
        )
    empty = [arm.label for arm in report.arms if not arm.runs]
    if empty:
        lines.append("no finished runs (diverged/failed): " + "; ".join(empty))
    return "\n".join(lines)


def _draw_arm(ax: Any, arm: Arm, name: str, color: Any, label: str, **style: Any) -> None:
    epochs, mean, low, high = band(arm.runs, name)
    factor = metric(name).scale
    ax.plot(epochs, mean * factor, color=color, label=label, **style)
    ax.fill_between(epochs, low * factor, high * factor, color=color, alpha=0.15, lw=0)


def curve_figure(report: ExperimentReport, name: str) -> Figure:
    """One line per arm of metric `name` over epochs (mean over seeds, band = min..max)."""
    fig = new_figure()
    ax = fig.add_subplot()
    colors = arm_colors(report)
    for arm in (arm for arm in report.arms if arm.runs):
        label = f"{arm.label} ({counts(arm)})" + (" [base case]" if arm.is_base else "")
        # The base case is dashed and drawn on top, so an arm level with it cannot hide it.
        style = {"ls": "--", "zorder": 3} if arm.is_base else {}
        width = 2.6 if arm is report.winner else 1.5
        _draw_arm(
            ax, arm, name, colors[arm.label], label, lw=width, gid=f"arm:{arm.label}", **style
        )
    if report.base_borrowed:
        label = f"base case (from {report.base_source}, n={len(report.base.runs)})"
        _draw_arm(ax, report.base, name, BASE_COLOR, label, ls="--", lw=1.5, gid="base")
    shown = metric(name)
    checks = [c for c in report.references if c.reference.metric == name and c.arm.runs]
    for i, check in enumerate(checks):
        last = max(int(run.epochs[-1]) for run in check.arm.runs)
        draw_reference(ax, last, check.reference.value * shown.scale, first=i == 0)
    if not ax.get_lines():
        say_empty(ax, ylim=(0, 100) if shown.unit == "%" else None)
    _axes(ax, name)
    fig.suptitle(f"{report.name}: {shown.label} per epoch", weight="bold")
    ax.set_title(_subtitle(report, name), fontsize="small", loc="left")
    legend_outside(ax)
    return fig


def _axes(ax: Any, name: str) -> None:
    """Epochs as integers; a loss on a log axis (plain tick labels) when it spans > 3x."""
    values = np.array([v for line in ax.get_lines() for v in line.get_ydata()], dtype=float)
    finite = values[np.isfinite(values)]
    shown = metric(name)
    if shown.kind == "loss" and finite.size and finite.min() > 0 and spans(finite, 3):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        minor = PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4))
        ax.yaxis.set_minor_formatter(minor)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    y_label = shown.label + (f" ({shown.unit})" if shown.unit == "%" else "")
    if shown.note:
        y_label += f" ({shown.note})"
    ax.set_ylabel(y_label + (", log scale" if ax.get_yscale() == "log" else ""))
    ax.grid(True, alpha=0.3, which="both")
