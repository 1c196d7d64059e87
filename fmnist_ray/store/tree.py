"""The one reader of a results tree, for `plan`, the API's `load`, `report` and `export` alike:
`read_tree` finds every run file under some paths and reads each back whole, once. Parallel reads
or an index belong here, behind the same entry point."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..spec.config import RunConfig, stored_config
from ..spec.metrics import EPOCH, NAMES, SECONDS
from .results import (
    METADATA_KEY,
    RUNS_DIR,
    SCHEMA,
    InvalidResult,
    check_run,
    find_run_files,
    run_span,
)
from .storage import REQUESTS_AT_ONCE, Location, locate


@dataclass(frozen=True)
class StoredRun:
    """One valid run file as read back: where it is, its rows (SCHEMA's columns, one per epoch),
    the metadata stored with it, and (when asked for) its bytes, exactly as they were hashed."""

    path: Location
    table: pa.Table
    meta: dict[str, Any]
    data: bytes | None = None

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
    def config(self) -> RunConfig:
        return stored_config(self.meta["config"])

    @cached_property
    def sha256(self) -> str:
        """The file's content hash (read with `with_bytes=True`)."""
        assert self.data is not None, "read with with_bytes=True to hash a run file"
        return hashlib.sha256(self.data).hexdigest()

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


@dataclass
class ResultsTree:
    """What `read_tree` found: every run file met, the valid runs (in that order), and each
    invalid file with why."""

    files: list[Location] = field(default_factory=list)
    runs: list[StoredRun] = field(default_factory=list)
    invalid: list[tuple[Location, str]] = field(default_factory=list)

    def within(self, folders: Iterable[str]) -> ResultsTree:
        """Only the files of these experiment folders (by their paths)."""
        keep = set(folders)

        def kept(path: Location) -> bool:
            return path.parent.parent.path in keep

        return ResultsTree(
            [path for path in self.files if kept(path)],
            [run for run in self.runs if kept(run.path)],
            [(path, why) for path, why in self.invalid if kept(path)],
        )

    def table(self) -> pa.Table:
        """Every valid run's rows as one table with SCHEMA (empty when there are none)."""
        tables = [run.table for run in self.runs]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        return table.replace_schema_metadata(None)

    def by_id(self) -> dict[str, list[Location]]:
        """The valid files of each run id (a run filed in several experiments has several)."""
        index: dict[str, list[Location]] = {}
        for run in self.runs:
            index.setdefault(run.path.stem, []).append(run.path)
        return index


# Files read at once: object stores answer each request after a round trip, so many are in flight;
# a local disk gains little from more than a few.
REMOTE_READERS, LOCAL_READERS = REQUESTS_AT_ONCE, 4


def _read_one(path: Location, with_bytes: bool) -> StoredRun | tuple[Location, str]:
    """One run file read whole (on an object store: a HEAD for its size, then one GET),
    checked from memory: the run, or (path, why it is invalid)."""
    try:
        try:
            data = path.read_bytes()
        except OSError:  # gone or unreadable: check_run opens it again and says why
            if with_bytes:
                raise
            data = None
        table = check_run(path, data)  # already SCHEMA's columns
    except InvalidResult as error:
        return path, str(error)
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return StoredRun(path, table, meta, data if with_bytes else None)


def read_tree(
    paths: Iterable[str | Path | Location],
    *,
    with_bytes: bool = False,
    only: Callable[[Location], bool] | None = None,
) -> ResultsTree:
    """Every run file under `paths` (results roots, experiment folders, runs/ folders or run
    files; local or URIs), each once, read back whole and checked (results.check_run), several
    at a time, in the order found. `with_bytes`: keep each file's bytes too (what an export
    hashes). `only`: read just the files it accepts (the others are listed in `files` but
    neither runs nor invalid: `plan` opens only the files of the ids it needs)."""
    tree = ResultsTree(list({path.path: path for path in find_run_files(paths)}.values()))
    wanted = [path for path in tree.files if only is None or only(path)]
    if not wanted:
        return tree
    workers = LOCAL_READERS if wanted[0].local else REMOTE_READERS
    with ThreadPoolExecutor(min(workers, len(wanted))) as pool:
        for read in pool.map(lambda path: _read_one(path, with_bytes), wanted):
            if isinstance(read, StoredRun):
                tree.runs.append(read)
            else:
                tree.invalid.append(read)
    return tree


def read_results(paths: Iterable[str | Path | Location]) -> pa.Table:
    """All valid runs under `paths` as one table with SCHEMA (empty when there are none)."""
    return read_tree(paths).table()


def done_run_ids(experiment_dir: str | Path | Location) -> set[str]:
    """Runs with a valid result file (finished, `ok` or `diverged`): resume skips these."""
    return set(read_tree([locate(experiment_dir) / RUNS_DIR]).by_id())
