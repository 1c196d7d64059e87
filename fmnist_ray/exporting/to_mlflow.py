"""Export to MLflow: one MLflow run per result file, found again by its tags. The config as
params, every metric per epoch (step = epoch), tags from the file's metadata, the file itself as
an artifact. A run whose file's sha256 changed is deleted and logged anew (MLflow keeps params
immutable and metrics append-only, so replacing a run in place is not possible)."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

from ..spec.config import format_value
from ..spec.metrics import EPOCH, NAMES
from ..store.storage import first_line
from ..store.tree import StoredRun
from . import ExportCounts, ExportError

TAG = "fmnist_ray."  # our tags' prefix
EXPERIMENT_TAG, RUN_ID_TAG, SHA256_TAG = TAG + "experiment", TAG + "run_id", TAG + "sha256"
# Metadata keys copied into tags (fmnist_ray.<key>), when the file has them.
METADATA_TAGS = ("status", "device", "device_name", "git_commit", "host", "training_version")
SEARCH_PAGE = 1000
ARTIFACT_DIR = "mlartifacts"  # beside a SQLite store: what `mlflow server` names its own


def export_mlflow(
    runs: list[StoredRun], tracking_uri: str | None, experiment_name: str
) -> ExportCounts:
    """Log each run not yet in the experiment (or changed since) into the tracking store."""
    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, experiment_name, uri)
        found = _existing_runs(client, experiment_id)
        counts = ExportCounts()
        for run in runs:
            previous = found.get((run.experiment, run.run_id), [])
            if [r.data.tags.get(SHA256_TAG) for r in previous] == [run.sha256]:
                counts.unchanged += 1
                continue
            for old in previous:  # changed, or logged twice, or cut short by a crash
                client.delete_run(old.info.run_id)
            _log_run(client, experiment_id, run)
            counts.exported += not previous
            counts.updated += bool(previous)
        return counts
    except MlflowException as error:
        raise ExportError(f"MLflow at {uri}: {first_line(error)}") from None


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created when missing (its artifacts beside a SQLite store)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    if experiment.lifecycle_stage != "active":
        raise ExportError(
            f"MLflow experiment {name!r} is deleted in {uri}: restore it "
            "(mlflow experiments restore) or give another --experiment-name"
        )
    return experiment.experiment_id


def artifact_location(uri: str) -> str | None:
    """For `sqlite:///PATH`: the folder mlartifacts/ beside the database, so a store and its
    files stay together (MLflow's default is ./mlruns in the current folder). Otherwise None:
    the tracking server decides."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    return (database.parent / ARTIFACT_DIR).as_uri()


def _existing_runs(client: MlflowClient, experiment_id: str) -> dict[tuple, list]:
    """The experiment's active runs by (experiment, run id) tags."""
    found: dict[tuple, list] = defaultdict(list)
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=SEARCH_PAGE, page_token=token)
        for run in page:
            found[(run.data.tags.get(EXPERIMENT_TAG), run.data.tags.get(RUN_ID_TAG))].append(run)
        token = page.token
        if not token:
            return found


def _log_run(client: MlflowClient, experiment_id: str, run: StoredRun) -> None:
    """One MLflow run for one result file. The sha256 tag goes last: a run cut short by a
    crash has none, so the next export replaces it."""
    started, ended = run.span
    created = client.create_run(
        experiment_id,
        start_time=_ms(started),
        tags=run_tags(run),
        run_name=f"{run.experiment}/{run.run_id}",
    )
    mlflow_id = created.info.run_id
    client.log_batch(mlflow_id, metrics=_metrics(run), params=_params(run))
    with tempfile.TemporaryDirectory(prefix="fmnist-ray-export-") as folder:
        local = Path(folder) / run.path.name  # the bytes hashed, also for a remote file
        local.write_bytes(run.data)
        client.log_artifact(mlflow_id, str(local))
    status = RunStatus.FINISHED if run.status == "ok" else RunStatus.FAILED  # FAILED: diverged
    client.set_terminated(mlflow_id, RunStatus.to_string(status), end_time=_ms(ended))
    client.set_tag(mlflow_id, SHA256_TAG, run.sha256)


def run_tags(run: StoredRun) -> dict[str, str]:
    """What finds the run again (experiment, run id), what the metadata says about it, where it
    came from, and the git commit also as MLflow's own tag (shown in its UI)."""
    tags = {EXPERIMENT_TAG: run.experiment, RUN_ID_TAG: run.run_id, TAG + "source": str(run.path)}
    tags |= {TAG + key: str(run.meta[key]) for key in METADATA_TAGS if run.meta.get(key)}
    if run.meta.get("git_commit"):
        tags["mlflow.source.git.commit"] = str(run.meta["git_commit"])
    return tags


def param_value(value: Any) -> str:
    """A config value as an MLflow param: as the rest of the project shows it (6,16,120, true,
    none), floats exact."""
    return repr(value) if isinstance(value, float) else format_value(value)


def _params(run: StoredRun) -> list[Param]:
    return [Param(name, param_value(value)) for name, value in run.config.model_dump().items()]


def _metrics(run: StoredRun) -> list[Metric]:
    """Every metric of every epoch, step = epoch, timestamped when its epoch ended."""
    return [
        Metric(name, float(row[name]), int(wall * 1000), row[EPOCH])
        for row, wall in zip(run.history, run.wall_times())
        for name in NAMES
    ]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
