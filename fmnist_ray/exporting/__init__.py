"""Export a results tree into the trackers people already use: MLflow (one MLflow run per result
file) or TensorBoard (event files with the HParams plugin's data). Both are optional extras;
exporting again adds nothing, and a run whose file changed is replaced."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import FmnistRayError

if TYPE_CHECKING:  # importing this package stays light: the CLI reads its defaults at start
    from ..store.storage import Location

# The optional package each target needs: target -> (module imported, the project's extra).
EXTRAS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboard", "tensorboard")}
TARGETS = tuple(EXTRAS)
DEFAULT_EXPERIMENT_NAME = "fmnist-ray"  # the MLflow experiment runs land in unless told


class ExportError(FmnistRayError, ValueError):
    """A user mistake or a missing package, said in one line."""


@dataclass
class ExportCounts:
    """What one export did: runs new to the target, runs replaced because their file changed,
    runs already there as they are, and files skipped as not one whole run (path, why)."""

    exported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def require(target: str) -> ModuleType:
    """The package a target needs, or an ExportError naming the pip command that installs it."""
    module, extra = EXTRAS[target]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"--to {target} needs the {module} package: pip install -e '.[{extra}]' "
            f"(or pip install {module})"
        ) from None


def export(
    root: str | Path | Location,
    to: str,
    *,
    tracking_uri: str | None = None,
    experiment_name: str = DEFAULT_EXPERIMENT_NAME,
    logdir: str | Path | None = None,
) -> ExportCounts:
    """Export every valid run under `root` (a folder or a URI such as s3://bucket/prefix) `to`
    "mlflow" (into `tracking_uri`, default MLflow's own: $MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db in MLflow 3.17; runs in `experiment_name`) or "tensorboard" (event
    files under `logdir`). Files that are not one whole run are skipped and listed in the
    counts."""
    if to not in TARGETS:
        raise ExportError(f"--to: {to!r} is not allowed: use one of {', '.join(TARGETS)}")
    if to == "tensorboard" and logdir is None:
        raise ExportError("--to tensorboard needs --logdir DIR: the folder for the event files")
    if to == "mlflow" and logdir is not None:
        raise ExportError("--logdir is for --to tensorboard (MLflow takes --tracking-uri)")
    if to == "tensorboard" and tracking_uri is not None:
        raise ExportError("--tracking-uri is for --to mlflow (TensorBoard takes --logdir)")
    require(to)  # before reading anything: a missing package is the first thing to say
    from .runs import read_run_files

    runs, invalid = read_run_files(str(root) if isinstance(root, Path) else root)
    if to == "mlflow":
        from .to_mlflow import export_mlflow

        counts = export_mlflow(runs, tracking_uri, experiment_name)
    else:
        from .to_tensorboard import export_tensorboard

        counts = export_tensorboard(runs, Path(logdir))  # type: ignore[arg-type]
    counts.skipped = invalid
    return counts
