"""The report's figures, the only part of the report that imports matplotlib (Agg, no pyplot
state, so tests inspect figures unsaved): per experiment curves and final accuracy, and the
overview of all experiments."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..model import ExperimentReport
from .common import arm_colors, grid_roles, save_figure
from .curves import curve_figure
from .final import final_figure
from .overview import overview_figure

__all__ = [
    "arm_colors",
    "build_figures",
    "curve_figure",
    "final_figure",
    "grid_roles",
    "overview_figure",
    "save_figure",
]


def build_figures(report: ExperimentReport) -> dict[str, Figure]:
    """The experiment's three figures, unsaved: {'train_loss', 'test_acc', 'final_test_acc'}."""
    return {
        "train_loss": curve_figure(report, "train_loss"),
        "test_acc": curve_figure(report, "test_acc"),
        "final_test_acc": final_figure(report),
    }
