"""What every exporter reads: each valid run file under a results root, read once by the store's
`read_tree` with its bytes (what is hashed and exported), one per (experiment, run id)."""

from __future__ import annotations

from ..store.storage import Location, describe, locate
from ..store.tree import StoredRun, read_tree
from . import ExportError


def read_run_files(root: str | Location) -> tuple[list[StoredRun], list[tuple[str, str]]]:
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


def _read_all(where: Location) -> tuple[list[StoredRun], list[tuple[str, str]]]:
    if not where.exists():
        raise ExportError(f"{where}: no such folder or file")
    tree = read_tree([where], with_bytes=True)
    runs: dict[tuple[str, str], StoredRun] = {}
    invalid = {path.path: (str(path), why) for path, why in tree.invalid}
    for run in tree.runs:
        first = runs.setdefault((run.experiment, run.run_id), run)
        if first is not run:  # one target entry per (experiment, run id)
            why = f"the same run of the same experiment as {first.path}"
            invalid[run.path.path] = (str(run.path), why)
    order = [path.path for path in tree.files]
    return list(runs.values()), [invalid[path] for path in order if path in invalid]
