"""The `fmnist-ray export` command: its options and what it prints, over `export()`. Kept beside
the package and registered by cli.py, so cli.py stays one screenful per command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..words import plural
from . import DEFAULT_EXPERIMENT_NAME, TARGETS


def export(
    root: Annotated[
        str,
        typer.Argument(
            help="A results root, an experiment's folder or one run file (a folder or a URI "
            "such as s3://bucket/prefix)."
        ),
    ],
    to: Annotated[str, typer.Option("--to", help=f"Where to: {' or '.join(TARGETS)}.")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://HOST:5000 (default: "
            "$MLFLOW_TRACKING_URI, else MLflow's default)."
        ),
    ] = None,
    experiment_name: Annotated[
        str, typer.Option(help="The MLflow experiment the runs go in.")
    ] = DEFAULT_EXPERIMENT_NAME,
    logdir: Annotated[
        Path | None,
        typer.Option(help="TensorBoard: the folder for the event files (needed with it)."),
    ] = None,
) -> None:
    """Export every run under ROOT to MLflow (one MLflow run per result file) or TensorBoard
    (event files, with the HParams view's data). Exporting again adds nothing; a run whose file
    changed is replaced. Needs the package's mlflow or tensorboard extra (README: Export)."""
    from . import export as export_runs

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not each step of making a store
    counts = export_runs(  # an ExportError is a FmnistRayError: cli.user_errors says it
        root, to, tracking_uri=tracking_uri, experiment_name=experiment_name, logdir=logdir
    )
    for path, why in counts.skipped:
        typer.echo(f"warning: {path}: skipped: {why}", err=True)
    where = f"{logdir}" if to == "tensorboard" else f"MLflow experiment {experiment_name!r}"
    typer.echo(
        f"{where}: {plural(counts.exported, 'run')} exported, {counts.updated} updated, "
        f"{counts.unchanged} unchanged"
    )
