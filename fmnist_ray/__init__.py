"""fmnist-ray: ablation studies of small Fashion-MNIST classifiers, trained in parallel on Ray,
with per-epoch results in Parquet and reports with statistics across seeds. The Python API,
`fmnist_ray.plan/run/settle/load/report/export` (fmnist_ray.api), loads on first use: importing is
instant."""

from __future__ import annotations

import sys
import types
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


class _Package(types.ModuleType):
    """`plan`, `report` and `export` are also submodules (fmnist_ray/plan.py, report/, export/),
    and importing a submodule binds its name on the package: here the API's functions keep the
    names. The submodules stay importable (`from fmnist_ray.plan import make_plan`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
