"""Export to TensorBoard: LOGDIR/<experiment>/<run_id>/ holds one event file per run (every
metric as a scalar, step = epoch, and the HParams plugin's session start and end), LOGDIR itself
the HParams experiment config. The event file's name ends with the result file's sha256, so an
unchanged run is skipped and a changed one rewritten. Written with tensorboard's own writer and
protos: no TensorFlow, no torch."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from ..spec.config import (
    CONFIG_FIELDS,
    SEED_FIELD,
    RunConfig,
    axis_label,
    choices,
    format_value,
    value_type,
)
from ..spec.metrics import EPOCH, METRICS
from ..store.tree import StoredRun
from . import ExportCounts

EVENTS = "tfevents"  # what TensorBoard looks for in a file's name
CONFIG_SUFFIX = ".hparams-"  # LOGDIR's config event file: the name ends with its content's hash
# The seed is no hparam: runs that differ only in it are one session group (an arm), whose
# metrics the HParams view shows as the mean over seeds.
HPARAMS = ("experiment",) + tuple(name for name in CONFIG_FIELDS if name != SEED_FIELD)
HPARAM_TYPES = {str: api_pb2.DATA_TYPE_STRING, tuple: api_pb2.DATA_TYPE_STRING,
                bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64,
                float: api_pb2.DATA_TYPE_FLOAT64}  # fmt: skip


def export_tensorboard(runs: list[StoredRun], logdir: Path) -> ExportCounts:
    """Write each run not yet under `logdir` (or changed since), and the HParams config."""
    logdir.mkdir(parents=True, exist_ok=True)
    write_config(logdir)
    counts = ExportCounts()
    for run in runs:
        target = logdir / run.experiment / run.run_id
        if any(target.glob(f"*{EVENTS}*.{run.sha256}")):
            counts.unchanged += 1
            continue
        existed = target.exists()
        _replace(target, run)
        counts.updated += existed
        counts.exported += not existed
    return counts


def _replace(target: Path, run: StoredRun) -> None:
    """Write the run's events into a fresh folder beside `target`, then put it in its place: a
    crash leaves the old folder or none, never a part (the next export writes it then)."""
    fresh = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    write_run(fresh, run)
    if target.exists():
        shutil.rmtree(target)
    fresh.rename(target)


def write_run(folder: Path, run: StoredRun) -> None:
    """One event file: the session start (hparams), each epoch's metrics, the session end."""
    writer = EventFileWriter(str(folder), filename_suffix=f".{run.sha256}")
    started, ended = run.span
    start = summary_v2.hparams_pb(
        hparams(run), trial_id=arm_name(run), start_time_secs=started.timestamp()
    )
    writer.add_event(event_pb2.Event(wall_time=started.timestamp(), step=0, summary=start))
    for row, wall in zip(run.history, run.wall_times()):
        values = [summary_pb2.Summary.Value(tag=m.name, simple_value=row[m.name]) for m in METRICS]
        summary = summary_pb2.Summary(value=values)
        writer.add_event(event_pb2.Event(wall_time=wall, step=row[EPOCH], summary=summary))
    status = api_pb2.STATUS_SUCCESS if run.status == "ok" else api_pb2.STATUS_FAILURE
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=ended.timestamp())
    end_summary = _plugin_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)
    last = run.history[-1][EPOCH]
    writer.add_event(event_pb2.Event(wall_time=ended.timestamp(), step=last, summary=end_summary))
    writer.close()


def hparams(run: StoredRun) -> dict[str, Any]:
    """The run's hparams: its experiment and config without the seed; a field that does not
    apply (None) is left out, a tuple shown as 6,16,120."""
    values = {"experiment": run.experiment} | run.config.model_dump()
    return {
        name: format_value(value) if isinstance(value, tuple) else value
        for name, value in values.items()
        if name in HPARAMS and value is not None
    }


def arm_name(run: StoredRun) -> str:
    """The session group: the experiment and the config's run id at seed 0 (one per arm)."""
    return f"{run.experiment}/{run.config.model_copy(update={SEED_FIELD: 0}).run_id}"


def write_config(logdir: Path) -> None:
    """The HParams experiment config in `logdir`, from the declarations alone (each field's
    label, description and allowed values; each metric's label), so it holds for every run
    ever exported there. Rewritten only when the declarations change."""
    summary = _plugin_summary(metadata.EXPERIMENT_TAG, experiment=experiment_config())
    digest = _digest(summary.SerializeToString(deterministic=True))
    if any(logdir.glob(f"*{EVENTS}*{CONFIG_SUFFIX}{digest}")):
        return
    for old in logdir.glob(f"*{EVENTS}*{CONFIG_SUFFIX}*"):
        old.unlink()
    writer = EventFileWriter(str(logdir), filename_suffix=f"{CONFIG_SUFFIX}{digest}")
    writer.add_event(event_pb2.Event(step=0, summary=summary))
    writer.close()


def experiment_config() -> api_pb2.Experiment:
    """Every hparam (typed; allowed values where they are a closed set) and every metric."""
    infos = []
    for name in HPARAMS:
        if name == "experiment":
            infos.append(api_pb2.HParamInfo(name=name, type=api_pb2.DATA_TYPE_STRING))
            continue
        kind = value_type(name)
        info = api_pb2.HParamInfo(
            name=name,
            type=HPARAM_TYPES[kind],
            display_name=axis_label(name),
            description=RunConfig.model_fields[name].description or "",
        )
        info.domain_discrete.extend([False, True] if kind is bool else choices(name))
        infos.append(info)
    metrics = [
        api_pb2.MetricInfo(
            name=api_pb2.MetricName(tag=m.name), display_name=m.label, description=m.note
        )
        for m in METRICS
    ]
    return api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)


def _plugin_summary(tag: str, **plugin_data: Any) -> summary_pb2.Summary:
    """A summary holding the HParams plugin's data under `tag`, as the plugin reads it."""
    content = plugin_data_pb2.HParamsPluginData(**plugin_data)
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=tag, metadata=metadata.create_summary_metadata(content), tensor=metadata.NULL_TENSOR
    )
    return summary


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
