"""Results on disk: the per-run Parquet schema (one row per epoch, config fields as columns, run
metadata in the schema: versions, git commit, times), atomic writes, failure records, and reading
a results tree back."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .config import RunConfig

METADATA_KEY = b"fmnist_ray"
RUNS_DIR = "runs"
FAILURES_DIR = "failures"
STATUSES = ("ok", "diverged")

CONFIG_COLUMNS = pa.schema(
    [
        ("model", pa.string()),
        ("epochs", pa.int64()),
        ("batch_size", pa.int64()),
        ("lr", pa.float64()),
        ("optimizer", pa.string()),
        ("momentum", pa.float64()),
        ("weight_decay", pa.float64()),
        ("loss", pa.string()),
        ("activation", pa.string()),
        ("pooling", pa.string()),
        ("batchnorm", pa.bool_()),
        ("dropout", pa.bool_()),
        ("channels", pa.string()),  # "c1,c2,c3": groupable; the exact tuple is in the metadata
        ("scheduler", pa.string()),
        ("step_size", pa.int64()),
        ("gamma", pa.float64()),
        ("seed", pa.int64()),
    ]
)
METRIC_COLUMNS = pa.schema(
    [
        ("epoch", pa.int64()),
        ("train_loss", pa.float64()),
        ("train_acc", pa.float64()),
        ("test_loss", pa.float64()),
        ("test_acc", pa.float64()),
        ("last_lr", pa.float64()),
        ("seconds", pa.float64()),
        ("images_per_s", pa.float64()),
    ]
)
ID_COLUMNS = pa.schema(
    [("experiment", pa.string()), ("run_id", pa.string()), ("status", pa.string())]
)
SCHEMA = pa.schema(list(ID_COLUMNS) + list(CONFIG_COLUMNS) + list(METRIC_COLUMNS))
assert set(CONFIG_COLUMNS.names) == set(RunConfig.model_fields), "schema and RunConfig disagree"


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


def config_columns(cfg: RunConfig) -> dict[str, Any]:
    """The config as flat column values (channels as 'c1,c2,c3')."""
    values = cfg.model_dump()
    if values["channels"] is not None:
        values["channels"] = ",".join(str(c) for c in values["channels"])
    return values


def history_table(
    cfg: RunConfig, history: list[dict], status: str, experiment: str, metadata: dict[str, Any]
) -> pa.Table:
    """A run as a tidy table: one row per epoch; `metadata` (plus the config) in the schema."""
    n = len(history)
    columns = {"experiment": [experiment] * n, "run_id": [cfg.run_id] * n, "status": [status] * n}
    columns |= {name: [value] * n for name, value in config_columns(cfg).items()}
    columns |= {name: [row[name] for row in history] for name in METRIC_COLUMNS.names}
    meta = {"run_id": cfg.run_id, "experiment": experiment, "status": status}
    meta |= {"config": cfg.model_dump(mode="json")} | metadata
    schema = SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta, default=str).encode()})
    return pa.Table.from_pydict(columns, schema=schema)


def _atomic_write(path: Path, write) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_path(experiment_dir: Path, run_id: str) -> Path:
    return Path(experiment_dir) / RUNS_DIR / f"{run_id}.parquet"


def failure_path(experiment_dir: Path, run_id: str) -> Path:
    return Path(experiment_dir) / FAILURES_DIR / f"{run_id}.json"


def write_run(experiment_dir: Path, table: pa.Table) -> Path:
    """Write one run's table atomically to <experiment_dir>/runs/<run_id>.parquet."""
    path = run_path(experiment_dir, table.column("run_id")[0].as_py())
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    failure_path(experiment_dir, path.stem).unlink(missing_ok=True)  # it succeeded this time
    return path


def write_failure(experiment_dir: Path, cfg: RunConfig, error: str, **extra: Any) -> Path:
    """Record a failed run (config and error text) in <experiment_dir>/failures/<run_id>.json."""
    path = failure_path(experiment_dir, cfg.run_id)
    record = {"run_id": cfg.run_id, "config": cfg.model_dump(mode="json"), "error": error} | extra
    text = json.dumps(record, indent=2, default=str)
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """The run metadata stored in a run file's schema."""
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(METADATA_KEY, b"{}"))


def done_run_ids(experiment_dir: Path) -> set[str]:
    """Runs whose result file exists (finished, `ok` or `diverged`): resume skips these."""
    folder = Path(experiment_dir) / RUNS_DIR
    return {p.stem for p in folder.glob("*.parquet")} if folder.is_dir() else set()


def read_failures(experiment_dir: Path) -> list[dict[str, Any]]:
    folder = Path(experiment_dir) / FAILURES_DIR
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def find_run_files(paths: Iterable[Path]) -> list[Path]:
    """Every run file under the given folders (any depth) or given directly."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix == ".parquet":
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.rglob("*.parquet") if p.parent.name == RUNS_DIR)
    return files


def read_results(paths: Iterable[Path]) -> pa.Table:
    """All runs under `paths` as one table with SCHEMA (empty table when there are none)."""
    files = find_run_files(paths)
    if not files:
        return SCHEMA.empty_table()
    tables = [pq.read_table(f).cast(SCHEMA) for f in files]
    return pa.concat_tables(tables).replace_schema_metadata(None)
