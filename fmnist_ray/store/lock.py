"""One driver per experiment folder: a lock file recording host, pid and start time, taken
before anything runs and removed at the end. A lock left by a process that is gone (same host,
pid not alive) is taken over. Object stores have no such lock; see the README."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from ..errors import FmnistRayError
from .results import now_iso
from .storage import Location

LOCK_FILE = ".lock"


class LockError(FmnistRayError, RuntimeError):
    """Another driver holds an experiment folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def acquire(folders: list[Location]) -> tuple[list[Path], list[str]]:
    """Lock each local folder; returns (lock files taken, warnings). Raises LockError naming
    the holder when a live driver has one; then nothing stays locked."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": now_iso(),
          "command": " ".join(sys.argv)}  # fmt: skip
    taken: list[Path] = []
    warnings: list[str] = []
    try:
        for folder in (f for f in folders if f.local):
            path = Path(folder.path) / LOCK_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            if not _create(path, me):
                holder = _holder(path) or {}
                same_host = holder.get("host") == me["host"]
                if holder and not (same_host and not _alive(int(holder.get("pid", 0)))):
                    raise LockError(
                        f"{folder} is in use by another fmnist-ray driver (pid {holder.get('pid')}"
                        f" on {holder.get('host')}, since {holder.get('started_at')}); wait for "
                        f"it to finish or stop it. If it is gone, delete {path}."
                    )
                path.write_text(json.dumps(me))
                warnings.append(
                    f"warning: took over {path}, left by pid {holder.get('pid', '?')} "
                    f"(no longer running) since {holder.get('started_at', '?')}"
                )
            taken.append(path)
    except BaseException:
        release(taken)
        raise
    return taken, warnings


def _create(path: Path, me: dict) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(me))
    return True


def release(paths: list[Path]) -> None:
    """Remove the lock files this process holds (not one another driver took over)."""
    for path in paths:
        holder = _holder(path)
        if holder and holder.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
