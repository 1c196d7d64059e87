"""The report's figures, the only part of the report that imports matplotlib (Agg, no pyplot
state, so tests inspect figures unsaved): per experiment curves and final accuracy, and the
overview of all experiments."""

from __future__ import annotations

from matplotlib.figure import Figure

from ...spec.metrics import FIT, HEADLINE
from ..model import FINAL_FIGURE, ExperimentReport
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
    """The experiment's figures, unsaved, by file name (model.FIGURES): the curves of the fit
    and headline metrics, and the headline's final values."""
    return {
        FIT.name: curve_figure(report, FIT.name),
        HEADLINE.name: curve_figure(report, HEADLINE.name),
        FINAL_FIGURE: final_figure(report),
    }
