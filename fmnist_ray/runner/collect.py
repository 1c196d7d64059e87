"""Saving what a run produced: its result into every experiment that holds it, retried when the
destination fails, and spilled elsewhere (or printed in full) when it keeps failing, so that a
finished run is never lost silently; and failure records for runs that did not finish."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from ..planning.plan import Plan, PlannedRun
from ..spec.result import RunResult
from ..store.results import history_table, now_iso, table_bytes, write_failure, write_run
from ..store.storage import Location

WRITE_ATTEMPTS = 3
RETRY_PAUSE_S = (1.0, 3.0)  # before the 2nd and 3rd attempt
SPILL_DIR = Path(tempfile.gettempdir()) / "fmnist-ray-spill"


class DestinationError(RuntimeError):
    """The results destination kept failing; `kept_at` says where the run's history went."""

    def __init__(self, run_id: str, reason: str, kept_at: str):
        self.run_id, self.reason, self.kept_at = run_id, reason, kept_at
        super().__init__(f"run {run_id}: could not be written ({reason}); kept at {kept_at}")


def _retried(write):
    """Call `write()` up to WRITE_ATTEMPTS times, pausing RETRY_PAUSE_S between; re-raise the
    last error."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return write()
        except OSError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
            time.sleep(RETRY_PAUSE_S[min(attempt, len(RETRY_PAUSE_S) - 1)])


def save_result(run: PlannedRun, plan: Plan, result: RunResult) -> Location:
    """Write a finished run into each of its experiments; DestinationError if that fails. Safe
    from several threads at once (the driver's writers): each run has its own files. A failure
    record is looked for only where the plan found one (`failed_before`)."""
    path, clear = None, run.failed_before
    for name in run.experiments:
        table = history_table(run.config, result.history, result.status, name, result.metadata)
        folder = plan.folder(name)
        try:
            path = _retried(lambda table=table, folder=folder: write_run(folder, table, clear))
        except OSError as error:
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            raise DestinationError(run.run_id, reason, spill(table)) from None
    return path


def spill(table) -> str:
    """Keep a run that could not be written: a Parquet file under the system's temporary
    folder, or, if even that fails, its whole history printed as JSON on stderr."""
    run_id = table.column("run_id")[0].as_py()
    try:
        SPILL_DIR.mkdir(parents=True, exist_ok=True)
        path = SPILL_DIR / f"{run_id}.parquet"
        path.write_bytes(table_bytes(table))
        return str(path)
    except OSError:
        print(f"run {run_id} (history as JSON): {json.dumps(table.to_pylist(), default=str)}",
              file=sys.stderr, flush=True)  # fmt: skip
        return "stderr (above)"


def save_failure(
    run: PlannedRun, plan: Plan, detail: str, commit: str | None, attempts: int
) -> Location | str:
    """Record a run that did not finish in each of its experiments' failures/."""
    path: Location | str = "not recorded"
    for name in run.experiments:
        try:
            path = _retried(
                lambda name=name: write_failure(
                    plan.folder(name), run.config, detail, failed_at=now_iso(),
                    git_commit=commit, attempts=attempts,
                )
            )  # fmt: skip
        except OSError as error:
            print(f"warning: could not record the failure of {run.run_id} in {name}: {error}",
                  file=sys.stderr)  # fmt: skip
    return path
