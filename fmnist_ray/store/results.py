"""Results on disk: the per-run Parquet schema (one row per epoch, config fields as columns, run
metadata in the schema: versions, git commit, times), atomic writes, failure records, and one run
file read back and checked (a whole tree: tree.py)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from .. import __version__
from ..spec.config import (
    CONFIG_FIELDS,
    NEUTRAL,
    TRAINING_VERSION,
    RunConfig,
    stored_config,
    to_columns,
    value_type,
)
from ..spec.metrics import EPOCH, NAMES
from .storage import Location, locate

METADATA_KEY = b"fmnist_ray"
RUNS_DIR = "runs"
FAILURES_DIR = "failures"
QUARANTINE_DIR = "quarantine"  # result files that did not read back as a whole run
TRAIN_DIR = "train"  # where `fmnist-ray train` files ad-hoc runs: no experiment of a study
RUN_STATUSES = ("ok", "diverged")  # of a finished run

# Config fields as columns, typed from RunConfig's declarations (a tuple as "c1,c2,c3": groupable;
# the exact value is in the metadata).
ARROW_TYPES = {str: pa.string(), bool: pa.bool_(), int: pa.int64(), float: pa.float64(),
               tuple: pa.string()}  # fmt: skip
CONFIG_COLUMNS = pa.schema([(name, ARROW_TYPES[value_type(name)]) for name in CONFIG_FIELDS])
# epoch, then every metric of the vocabulary (fmnist_ray.metrics), in its order.
METRIC_COLUMNS = pa.schema([(EPOCH, pa.int64())] + [(name, pa.float64()) for name in NAMES])
ID_COLUMNS = pa.schema(
    [("experiment", pa.string()), ("run_id", pa.string()), ("status", pa.string())]
)
SCHEMA = pa.schema(list(ID_COLUMNS) + list(CONFIG_COLUMNS) + list(METRIC_COLUMNS))


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds: the run metadata's timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _git(*args: str) -> subprocess.CompletedProcess:
    here = Path(__file__).resolve().parent
    return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)


def git_commit() -> str | None:
    """The project's git commit (with '+dirty' when the tree has changes), if it is a checkout."""
    try:
        sha = _git("rev-parse", "HEAD")
        if sha.returncode != 0:
            return None
        dirty = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (no import: the driver never loads torch)."""
    versions = {"fmnist_ray": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "ray", "pyarrow", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_metadata(
    facts: dict[str, Any],
    started_at: str,
    commit: str | None,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run's metadata, built where it trained, the same shape for `train` and the runner:
    times, host, what training reported in `facts` (a RunResult's metadata: device, step,
    threads, what shared its process: `runs_at_once`, `fused_with`; files written before these
    lack them), versions, the driver's git `commit`, and where Ray placed it (`placement`:
    ray_node_id, gpu_ids, gpu_share, the trainer's pid, how many runs it had started before
    this one and the most that shared its GPU at once; None outside Ray). `retried_alone` is
    the driver's to set."""
    return {
        "started_at": started_at,
        "ended_at": now_iso(),
        "host": socket.gethostname(),
        "device": facts.get("device", "cpu"),
        "device_name": facts.get("device_name", ""),
        "training_step": facts.get("training_step", "eager"),
        "torch_threads": facts.get("torch_threads", 1),
        "runs_at_once": facts.get("runs_at_once", 1),
        "fused_with": facts.get("fused_with", 0),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "ray_node_id": None,
        "gpu_ids": [],
        "trainer_pid": None,
        "trainer_runs_before": None,
        "gpu_share": None,  # the GPU share Ray gave the run's trainer
        "runs_on_gpu": None,  # the most runs training on its GPU at once while it trained
        "retried_alone": False,  # out of GPU memory beside others, then trained on a whole GPU
        "git_commit": commit,
        "versions": library_versions() | facts.get("versions", {}),
    } | (placement or {})


def history_table(
    cfg: RunConfig, history: list[dict], status: str, experiment: str, metadata: dict[str, Any]
) -> pa.Table:
    """A run as a tidy table: one row per epoch; `metadata` (plus the config) in the schema."""
    n, run_id = len(history), cfg.run_id  # hashed once: every run's write passes here
    columns = {"experiment": [experiment] * n, "run_id": [run_id] * n, "status": [status] * n}
    columns |= {name: [value] * n for name, value in to_columns(cfg).items()}
    columns |= {name: [row[name] for row in history] for name in METRIC_COLUMNS.names}
    meta = {"run_id": run_id, "experiment": experiment, "status": status}
    meta |= {"training_version": TRAINING_VERSION}
    meta |= {"config": cfg.model_dump(mode="json")} | metadata
    schema = SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta, default=str).encode()})
    return pa.Table.from_pydict(columns, schema=schema)


def run_path(experiment_dir: str | Path | Location, run_id: str) -> Location:
    return locate(experiment_dir) / RUNS_DIR / f"{run_id}.parquet"


def failure_path(experiment_dir: str | Path | Location, run_id: str) -> Location:
    return locate(experiment_dir) / FAILURES_DIR / f"{run_id}.json"


def table_bytes(table: pa.Table) -> bytes:
    """A run file's bytes. No statistics and no dictionaries: a run is a few rows read whole,
    so neither helps a reader, and without them a file is cheaper to write and smaller (the
    driver writes every run; benchmarks/RESULTS.md measures both)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, write_statistics=False, use_dictionary=False)
    return sink.getvalue().to_pybytes()


def write_run(
    experiment_dir: str | Path | Location, table: pa.Table, clear_failure: bool = True
) -> Location:
    """Write one run's table durably and atomically to <experiment_dir>/runs/<run_id>.parquet,
    and delete the run's failure record: it succeeded this time. `clear_failure=False` when the
    caller knows there is none (on an object store, looking costs two requests per write)."""
    path = run_path(experiment_dir, table.column("run_id")[0].as_py())
    path.write_bytes(table_bytes(table))
    if clear_failure:
        failure_path(experiment_dir, path.stem).delete()
    return path


def for_experiment(table: pa.Table, experiment: str) -> pa.Table:
    """The same run as it is filed under another experiment (a run shared by several files)."""
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    if meta.get("experiment") not in (None, experiment):
        meta.setdefault("first_filed_in", meta["experiment"])
    meta["experiment"] = experiment
    column = table.schema.get_field_index("experiment")
    table = table.set_column(column, "experiment", pa.array([experiment] * table.num_rows))
    return table.cast(SCHEMA).replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta, default=str).encode()}
    )


def place_run(source: Location, experiment_dir: str | Path | Location) -> Location:
    """File an existing result under another experiment too: no run is trained twice."""
    target = locate(experiment_dir)
    return write_run(target, for_experiment(check_run(source), target.name))


def write_failure(
    experiment_dir: str | Path | Location, cfg: RunConfig, error: str, **extra: Any
) -> Location:
    """Record a failed run (config and error text) in <experiment_dir>/failures/<run_id>.json."""
    path = failure_path(experiment_dir, cfg.run_id)
    record = {"run_id": cfg.run_id, "config": cfg.model_dump(mode="json"), "error": error} | extra
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def read_run(path: str | Path | Location, data: bytes | None = None) -> pa.Table:
    """A run file's table; parsed from `data` (its bytes, already read) when given.

    Read as one file (`ParquetFile`), not through `read_table`'s dataset machinery, which took
    about twice the CPU per run file (1.5 ms against 0.7 ms over the study's files); and on the
    calling thread, as a file this small gains nothing from Arrow's thread pool (its hand-offs
    cost a third more CPU) and the tree reader already reads many files at once."""
    if data is not None:
        return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    where = locate(path)
    with where.fs.open_input_file(where.path) as file:
        return pq.ParquetFile(file).read(use_threads=False)


def read_metadata(path: str | Path | Location) -> dict[str, Any]:
    """The run metadata stored in a run file's schema."""
    where = locate(path)
    raw = pq.read_schema(where.path, filesystem=where.fs).metadata or {}
    return json.loads(raw.get(METADATA_KEY, b"{}"))


class InvalidResult(ValueError):
    """A result file that is not one whole run of this code; the message says why."""


def run_span(meta: dict[str, Any]) -> tuple[datetime, datetime]:
    """When a run started and ended, from its metadata."""
    return datetime.fromisoformat(meta["started_at"]), datetime.fromisoformat(meta["ended_at"])


def with_new_fields(table: pa.Table, cfg: RunConfig) -> pa.Table:
    """A run file written before some neutral-declared fields existed, with their columns added
    at the value `cfg` holds (the neutral one); raise InvalidResult if other columns differ."""
    missing = [name for name in NEUTRAL if name not in table.schema.names]
    kept = [(f.name, f.type) for f in SCHEMA if f.name not in missing]
    if [(f.name, f.type) for f in table.schema] != kept:
        raise InvalidResult("its columns are not those of a run file")
    if not missing:
        return table
    values = to_columns(cfg)
    for name in missing:
        kind = SCHEMA.field(name).type
        table = table.append_column(name, pa.array([values[name]] * table.num_rows, kind))
    return table.select(SCHEMA.names).replace_schema_metadata(table.schema.metadata)


def check_run(path: str | Path | Location, data: bytes | None = None) -> pa.Table:
    """Read a run file and make sure it is one whole run; raise InvalidResult saying why not.
    Returns it with SCHEMA's columns: those of fields declared since it was written (with a
    neutral value, docs/schema.md) added at that value.

    Checks: a readable Parquet file with SCHEMA; run id in the name, the rows and the metadata
    alike, and equal to the id of the config it holds (so results of another TRAINING_VERSION
    fail); epochs 1..n, all of them unless the run diverged. `data`: the file's bytes, when
    already read (then the file is not opened again)."""
    where = locate(path)
    try:
        table = read_run(where, data)
        meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
        cfg = stored_config(meta.get("config", {}))
    except (pa.ArrowException, OSError, ValueError) as error:
        why = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        raise InvalidResult(f"not a readable run file ({type(error).__name__}: {why})") from None
    table = with_new_fields(table, cfg)
    ids = {meta.get("run_id"), cfg.run_id, *table.column("run_id").to_pylist()}
    if ids != {where.stem}:
        raise InvalidResult(f"its run ids {sorted(map(str, ids))} differ from its name")
    epochs = table.column(EPOCH).to_pylist()
    statuses = set(table.column("status").to_pylist())
    if not epochs or epochs != list(range(1, len(epochs) + 1)) or len(statuses) != 1:
        raise InvalidResult(f"its epochs {epochs[:5]} are not one run's 1..n")
    status = statuses.pop()
    if status not in RUN_STATUSES or (status == "ok" and len(epochs) != cfg.epochs):
        raise InvalidResult(f"it has {len(epochs)} of {cfg.epochs} epochs with status {status}")
    return table


def quarantine(path: Location) -> Location:
    """Move an invalid result out of runs/ (into quarantine/ beside it) so it is trained again;
    kept, not deleted, since it may be the only trace of what happened."""
    stamp = now_iso().replace(":", "").replace(".", "")
    name = f"{path.stem}.{stamp}{path.name[len(path.stem) :]}"
    target = path.parent.parent / QUARANTINE_DIR / name
    path.move_to(target)
    return target


def read_failures(
    experiment_dir: str | Path | Location, unreadable: list[str] | None = None
) -> list[dict[str, Any]]:
    """The failure records in experiment_dir/failures/. A file that is not a JSON object is
    skipped, and named in `unreadable` ("PATH: why") when that list is given."""
    records = []
    for path in (locate(experiment_dir) / FAILURES_DIR).files(".json"):
        try:
            record = json.loads(path.read_text())
        except ValueError as error:  # also a file that is not UTF-8
            record = f"not JSON ({' '.join(str(error).split())})"
        if isinstance(record, dict):
            records.append(record)
        elif unreadable is not None:
            why = record if isinstance(record, str) else "not a JSON object"
            unreadable.append(f"{path}: {why}")
    return records


def find_run_files(paths: Iterable[str | Path | Location]) -> list[Location]:
    """Every run file under the given folders (any depth) or given directly."""
    files: list[Location] = []
    for where in map(locate, paths):
        kind = where.kind()
        if kind == FileType.File and where.name.endswith(".parquet"):
            files.append(where)
        elif kind == FileType.Directory:
            found = where.files(".parquet", recursive=True)
            files += [p for p in found if p.path.rsplit("/", 2)[-2] == RUNS_DIR]
    return files
