"""What every figure shares: Agg figures without pyplot state, one colour per arm across an
experiment's figures, axis roles of a two-axis grid, legends beside the axes, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from ..arms import sort_key
from ..model import Arm, ExperimentReport

DPI = 150
BASE_COLOR = "0.2"
BEST_COLOR = "crimson"
REFERENCE_STYLE = {"marker": "D", "ms": 7, "mfc": "gold", "mec": "black", "mew": 1.2, "ls": ""}
REFERENCE_LABEL = "published reference (one run)"
# One sequential colour family per value of a grid's second axis; shades follow the first axis.
FAMILIES = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys")


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written plainly (0.3, not 3e-01)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def new_figure(size: tuple[float, float] = (10, 5.6)) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def is_numeric(arms: list[Arm], axis: str) -> bool:
    values = [arm.values[axis] for arm in arms]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def spans(values: Any, factor: float) -> bool:
    """Whether positive values span more than `factor` (max/min): log scale helps then."""
    return min(values) > 0 and max(values) / min(values) > factor


def distinct(arms: list[Arm], axis: str) -> list[Any]:
    return sorted({arm.values[axis] for arm in arms}, key=lambda v: sort_key((v,)))


def grid_roles(report: ExperimentReport) -> tuple[str, str]:
    """For two axes: (x axis, one line per value of this axis). The x axis is the numeric one
    with more values, so that e.g. step_size is the x axis and lr names the lines."""
    first, second = report.axes

    def rank(axis: str) -> tuple:
        return (is_numeric(report.arms, axis), len(distinct(report.arms, axis)))

    return (second, first) if rank(second) > rank(first) else (first, second)


def arm_colors(report: ExperimentReport) -> dict[str, Any]:
    """One deterministic colour per arm label, the same in every figure of the experiment."""
    arms = report.arms
    if len(report.axes) == 1 and is_numeric(arms, report.axes[0]):
        ordered = sorted(arms, key=lambda a: a.values[report.axes[0]])
        cmap = colormaps["viridis"]
        return {a.label: cmap(0.85 * i / max(1, len(arms) - 1)) for i, a in enumerate(ordered)}
    if len(report.axes) == 2:
        x_axis, line_axis = grid_roles(report)
        lines, xs = distinct(arms, line_axis), distinct(arms, x_axis)
        if len(lines) <= len(FAMILIES):
            return {
                a.label: colormaps[FAMILIES[lines.index(a.values[line_axis])]](
                    0.45 + 0.5 * xs.index(a.values[x_axis]) / max(1, len(xs) - 1)
                )
                for a in arms
            }
    cmap = colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {arm.label: cmap(i % cmap.N) for i, arm in enumerate(arms)}


def line_color(report: ExperimentReport, line_axis: str, value: Any) -> Any:
    lines = distinct(report.arms, line_axis)
    if len(lines) <= len(FAMILIES):
        return colormaps[FAMILIES[lines.index(value)]](0.75)
    return colormaps["tab10"](lines.index(value) % 10)


def legend_outside(ax: Any) -> None:
    """Legend to the right of the axes, so that it never covers data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)


def say_empty(ax: Any, ylim: tuple[float, float] | None) -> None:
    """An empty plot says why it is empty instead of showing meaningless axes."""
    ax.text(
        0.5,
        0.5,
        "no finished runs (all diverged or failed)",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.35",
    )
    if ylim:
        ax.set_ylim(*ylim)


def draw_reference(ax: Any, x: float, y: float, first: bool) -> None:
    """A published value: its own marker, with one legend entry per axes."""
    ax.plot([x], [y], zorder=6, label=REFERENCE_LABEL if first else "_nolegend_", **REFERENCE_STYLE)


def save_figure(fig: Figure, folder: Path, name: str) -> list[Path]:
    """PNG (for reading) and SVG (for papers) side by side; SVG without a date, so reruns match."""
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1], metadata={"Date": None})
    return paths
