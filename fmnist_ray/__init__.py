"""fmnist-ray: ablation studies of small Fashion-MNIST classifiers, trained in parallel on Ray,
with per-epoch results in Parquet and reports with statistics across seeds. The Python API,
`fmnist_ray.plan/run/settle/load/report/export` (fmnist_ray.api), loads on first use: importing is
instant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Defined in fmnist_ray.api, imported when first used.
__all__ = ["plan", "run", "settle", "load", "report", "export", "FmnistRayError", "ConfigError",
           "ExportError", "GridInterrupted", "PlanView", "RunOutcome", "RunRecord",
           "ExportCounts"]  # fmt: skip
_API = frozenset(__all__)

if TYPE_CHECKING:
    from .api import (
        ConfigError,
        ExportCounts,
        ExportError,
        FmnistRayError,
        GridInterrupted,
        PlanView,
        RunOutcome,
        RunRecord,
        export,
        load,
        plan,
        report,
        run,
        settle,
    )


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import api

    value = globals()[name] = getattr(api, name)
    return value
