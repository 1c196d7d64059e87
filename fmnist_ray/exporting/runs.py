"""What every exporter reads: each valid run file under a results root as one `RunFile` (its
bytes and their sha256, its rows, its metadata)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import pyarrow as pa

from ..spec.config import RunConfig, stored_config
from ..spec.metrics import EPOCH, NAMES, SECONDS
from ..store.results import METADATA_KEY, InvalidResult, check_run, find_run_files, run_span
from ..store.storage import Location, describe, locate
from . import ExportError


@dataclass(frozen=True)
class RunFile:
    """One valid result file as read once: `data` is exactly what is hashed and exported."""

    path: Location
    data: bytes
    table: pa.Table  # SCHEMA's columns, one row per epoch
    meta: dict[str, Any]  # the metadata stored in the file's schema

    @property
    def experiment(self) -> str:
        return self.meta["experiment"]

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def status(self) -> str:
        return self.meta["status"]

    @cached_property
    def sha256(self) -> str:
        """The file's content hash: an export is redone when it differs from the stored one."""
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def config(self) -> RunConfig:
        return stored_config(self.meta["config"])

    @property
    def span(self) -> tuple[datetime, datetime]:
        return run_span(self.meta)

    @cached_property
    def history(self) -> list[dict[str, Any]]:
        """The rows: epoch and every metric of the vocabulary, epoch 1 first."""
        return self.table.select([EPOCH, *NAMES]).to_pylist()

    def wall_times(self) -> list[float]:
        """When each epoch ended, in seconds since 1970: the start plus the epochs' seconds."""
        elapsed, times = self.span[0].timestamp(), []
        for row in self.history:
            elapsed += row[SECONDS.name]
            times.append(elapsed)
        return times


def read_run_files(root: str | Location) -> tuple[list[RunFile], list[tuple[str, str]]]:
    """Every run file under `root` (a results root, an experiment, its runs/ folder or one
    file), each read back whole: (valid runs in path order, [(invalid file, why)])."""
    where = locate(root)
    try:
        runs, invalid = _read_all(where)
    except OSError as error:  # a store that cannot be listed or read (permissions, no bucket)
        raise ExportError(f"{where}: cannot read results here: {describe(error)}") from None
    if not runs and not invalid:
        raise ExportError(f"{where}: no run files (NAME/runs/<run_id>.parquet) found here")
    return runs, invalid


def _read_all(where: Location) -> tuple[list[RunFile], list[tuple[str, str]]]:
    if not where.exists():
        raise ExportError(f"{where}: no such folder or file")
    runs: dict[tuple[str, str], RunFile] = {}
    invalid = []
    for path in find_run_files([where]):
        try:
            data = path.read_bytes()
            table = check_run(path)
        except InvalidResult as error:
            invalid.append((str(path), str(error)))
            continue
        run = RunFile(path, data, table, _metadata(table))
        first = runs.setdefault((run.experiment, run.run_id), run)
        if first is not run:  # one target entry per (experiment, run id)
            invalid.append((str(path), f"the same run of the same experiment as {first.path}"))
    return list(runs.values()), invalid


def _metadata(table: pa.Table) -> dict[str, Any]:
    return json.loads((table.schema.metadata or {})[METADATA_KEY])
