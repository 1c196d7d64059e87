"""The grid runner, and the only module that imports `ray`: start or join a cluster, share the
dataset once through the object store, one task per run with its CPUs/GPU fraction, a `ray.wait`
loop that writes each result as it lands, live progress, failures, resume and Ctrl-C."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import ray

from .cluster import PACKAGE_DIR, ClusterError, auth_problem, check_reachable, recorded_address
from .collect import DestinationError, save_failure, save_result
from .config import DEFAULT_GPUS_PER_RUN, DEFAULT_RETRIES, ConfigError, Resources, RunConfig
from .data import FashionMNIST
from .grid import Experiment
from .metrics import EPOCH, HEADLINE, SECONDS
from .plan import Plan, PlannedRun, label
from .progress import GridProgress
from .results import RunResult, git_commit, library_versions, now_iso, run_metadata
from .signals import interruptible, patient, signal_of
from .storage import Location

TrainFn = Callable[..., Any]  # train.train_run's signature; tests inject failing ones
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Tasks report here when they start and after each epoch; the driver polls it."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.epochs: dict[str, int] = {}

    def start(self, run_id: str) -> None:
        self.started[run_id] = time.time()

    def epoch(self, run_id: str, epoch: int) -> None:
        self.epochs[run_id] = epoch

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        return self.started, self.epochs


def _train_task(
    cfg_json: str, data: FashionMNIST, cpus: float, board, train_fn: TrainFn | None,
    commit: str | None,
) -> RunResult:  # fmt: skip
    """Body of one Ray task: train on the GPU Ray assigned (if any); the history and the run's
    metadata (`commit` is the driver's: a worker's copy of the code has no git checkout)."""
    import torch  # here, not at the top: the driver and the progress actor never need torch

    if train_fn is None:
        from .train import train_run as train_fn

    cfg = RunConfig.model_validate_json(cfg_json)
    torch.set_num_threads(max(1, int(cpus)))
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
    board.start.remote(cfg.run_id)
    started_at = now_iso()
    outcome = train_fn(
        cfg, data, device, on_epoch=lambda row: board.epoch.remote(cfg.run_id, row[EPOCH])
    )
    placement = {"ray_node_id": ray.get_runtime_context().get_node_id(), "gpu_ids": gpu_ids}
    metadata = run_metadata(outcome, started_at, commit, placement)
    return RunResult(outcome.history, outcome.status, metadata)


@dataclass(frozen=True)
class FinishedRun:
    """A run this grid trained and saved (`path`: its file in the first experiment)."""

    run: PlannedRun
    status: str  # ok or diverged
    final: dict[str, float]  # the last epoch's row
    seconds: float  # of training, summed over epochs
    path: Location
    metadata: dict[str, Any]


@dataclass(frozen=True)
class FailedRun:
    """A run that raised or whose worker kept dying; its record is at `path`."""

    run: PlannedRun
    error: str  # the headline of what went wrong
    path: Location | str
    attempts: int


@dataclass
class GridOutcome:
    """What `run_grid` did. Exit code: 128 + the signal when interrupted, 1 when a run failed
    or could not be written, else 0."""

    total: int
    skipped: int = 0
    finished: list[FinishedRun] = field(default_factory=list)
    failed: list[FailedRun] = field(default_factory=list)
    lost: list[DestinationError] = field(default_factory=list)  # finished, kept elsewhere
    cancelled: int = 0
    signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        return 1 if self.failed or self.lost else 0


def connect(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join `address` (or $RAY_ADDRESS), else start an embedded local Ray. True when this call
    initialized Ray (so the caller shuts it down), False when it already was."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = dict(
        include_dashboard=False, logging_level="WARNING", configure_logging=True
    )
    if not address:
        # "local": always a fresh embedded Ray, never a cluster `ray start` left recorded here.
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **options)
        return True
    if num_cpus is not None or num_gpus is not None:
        raise ConfigError(["--num-cpus/--num-gpus size the local Ray; not with --address"])
    if address == "auto" and recorded_address() is None:
        raise ClusterError("--address auto: no cluster started with `ray start` on this machine")
    check_reachable(recorded_address() if address == "auto" else address)
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # a Ray Job ships its code itself
        # Ship this package's code so worker nodes only need the libraries installed.
        options["runtime_env"] = {"py_modules": [str(PACKAGE_DIR)]}
    with tempfile.TemporaryFile("w+") as log:
        try:
            with _stderr_to(log):  # Ray's core logs each failed attempt; keep them for below
                ray.init(address=address, **options)
        except ConnectionError as error:
            log.seek(0)
            text = log.read()
            if "InvalidAuthToken" in text or "Unauthenticated" in text:
                raise auth_problem("InvalidAuthToken", address) from None
            raise ClusterError(f"cannot join the Ray cluster at {address}: {error}") from None
        log.seek(0)
        sys.stderr.write(log.read())  # joined: Ray's own notices are the user's to see
    return True


@contextmanager
def _stderr_to(file) -> Iterator[None]:
    """Send this process's fd 2 (where Ray's C++ core writes) to `file` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def resolve_resources(requested: Resources) -> Resources:
    """Fill in the GPU share and check that one node can hold one run's CPUs and GPUs together
    (else Ray would wait forever)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    max_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    max_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = requested.gpus
    if gpus is None:
        gpus = DEFAULT_GPUS_PER_RUN if max_gpus > 0 else 0.0
    problems = []
    if gpus > 1 and not float(gpus).is_integer():
        problems.append(f"gpus per run {gpus:g}: above 1 it must be a whole number (Ray's rule)")
    if gpus > max_gpus:
        problems.append(
            f"gpus per run {gpus:g}: no node of this cluster has that many GPUs "
            f"(largest: {max_gpus:g}); use --gpus-per-run 0 to train on CPUs"
        )
    if requested.cpus > max_cpus:
        problems.append(
            f"cpus per run {requested.cpus:g}: no node of this cluster has that many CPUs "
            f"(largest: {max_cpus:g})"
        )
    fits = [n for n in nodes if n.get("CPU", 0) >= requested.cpus and n.get("GPU", 0) >= gpus]
    if not problems and not fits:
        shapes = ", ".join(f"{n.get('CPU', 0):g} CPU + {n.get('GPU', 0):g} GPU" for n in nodes)
        problems.append(
            f"{requested.cpus:g} CPU + {gpus:g} GPU per run: no single node has both "
            f"(nodes: {shapes}); lower --cpus-per-run or --gpus-per-run"
        )
    if problems:
        raise ConfigError(problems)
    return Resources(gpus=gpus, cpus=requested.cpus)


def write_manifest(
    experiment: Experiment, folder: Location, plan: Plan, resources: Resources
) -> None:
    """A copy of the experiment file and the environment this invocation ran in, with the
    resources its runs got (the file's [resources] as overridden and resolved)."""
    (folder / "experiment.toml").write_text(experiment.path.read_text())
    manifest = {
        "experiment": experiment.name,
        "experiment_file": str(experiment.path),
        "invocation": {"experiments": [e.name for e in plan.experiments], "command": sys.argv},
        "started_at": now_iso(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "versions": library_versions(),
        "resources_per_run": resources.model_dump(),
        "cluster_resources": ray.cluster_resources(),
        "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
    }
    (folder / "environment.json").write_text(json.dumps(manifest, indent=2, default=str))


def run_grid(
    plan: Plan,
    data: FashionMNIST,
    train_fn: TrainFn | None = None,
    stream: TextIO = sys.stdout,
    max_retries: int = DEFAULT_RETRIES,
) -> GridOutcome:
    """Train every pending run of `plan` (made by `plan.make_plan`, tidied by `plan.prepare`)
    on the connected Ray cluster (see `connect`), longest first.

    Each result lands in ROOT/<experiment>/runs/<run_id>.parquet of every experiment that
    contains the run, the moment it finishes; failures in .../failures/. `max_retries`: Ray's
    retries of a run whose worker or node died (an exception raised by training is not
    retried: the same config and seed would raise it again). Ctrl-C, SIGTERM and SIGHUP cancel
    what is pending and keep every finished run; so does a destination that keeps failing.
    """
    todo = plan.todo
    outcome = GridOutcome(total=len(plan.runs), skipped=len(plan.runs) - len(todo))
    if not todo:
        return outcome
    resolved = {res: resolve_resources(res) for res in {run.resources for run in todo}}
    for exp in plan.experiments:
        requested = plan.resources[exp.name]
        write_manifest(exp, plan.folder(exp.name), plan, resolved.get(requested, requested))
    runs = {run.run_id: (label(plan, run), run.config.epochs, run.seconds) for run in todo}
    progress = GridProgress(runs, stream)
    grid = _Grid(plan, outcome, git_commit(), max_retries, progress)
    board = ProgressBoard.options(name=f"fmnist-ray-progress-{uuid.uuid4().hex[:8]}").remote()
    try:
        with interruptible():
            grid.submit(todo, resolved, data, board, train_fn)
            grid.wait_all(board)
    except KeyboardInterrupt as interrupt:
        outcome.signal = signal_of(interrupt)
        grid.wind_down(stream, "interrupted")
    except DestinationError as error:
        outcome.lost.append(error)
        grid.wind_down(stream, "the results destination is failing")
    finally:
        grid.progress.close()
        ray.kill(board)
    return outcome


@dataclass
class _Grid:
    """The driver's side of a grid in flight: pending task refs, and saving what lands."""

    plan: Plan
    outcome: GridOutcome
    commit: str | None
    max_retries: int
    progress: GridProgress
    pending: dict[Any, PlannedRun] = field(default_factory=dict)

    def submit(self, todo, resolved, data, board, train_fn) -> None:
        """One task per run, in the order given (longest first)."""
        data_ref = ray.put(data)  # once; every task reads the same object, no dataset files
        # One remote function per resource shape: Ray queues each shape's tasks first in, first
        # out, so submission order is start order (a function per run would race for leases).
        train_task = ray.remote(_train_task)
        tasks = {
            res: train_task.options(
                num_cpus=res.cpus, num_gpus=res.gpus, max_retries=self.max_retries
            )
            for res in set(resolved.values())
        }
        for run in todo:
            res = resolved[run.resources]
            config = run.config.model_dump_json()
            ref = tasks[res].remote(config, data_ref, res.cpus, board, train_fn, self.commit)
            self.pending[ref] = run

    def wait_all(self, board) -> None:
        while self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            for ref in ready:
                self.collect(ref)
            board = self.update_progress(board)

    def update_progress(self, board):
        """Poll the progress actor; if it died, go on without live epochs (never stop)."""
        if board is None:
            return None
        try:
            self.progress.update(*ray.get(board.snapshot.remote(), timeout=10))
            return board
        except ray.exceptions.RayError:
            print("warning: progress actor lost; runs go on, epochs are no longer shown",
                  file=self.progress.stream)  # fmt: skip
            return None

    def wind_down(self, stream: TextIO, why: str) -> None:
        """Save every run that has finished (collected or not), cancel the rest. Further
        signals meanwhile only say that saving is under way."""

        def say() -> None:
            print(f"{why}: saving finished runs first, then stopping", file=stream, flush=True)

        with patient(say):
            refs = list(self.pending)
            ready = ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []
            for ref in ready:
                try:
                    self.collect(ref)
                except DestinationError as error:
                    self.outcome.lost.append(error)
            self.outcome.cancelled = len(self.pending)
            for ref in self.pending:
                ray.cancel(ref, force=True)

    def collect(self, ref) -> None:
        """Save one finished run (or record its failure) the moment it lands. A signal while
        it is saved leaves it pending, so the wind-down saves it (a write is whole or absent)."""
        run = self.pending.pop(ref)
        try:
            self._collect(ref, run)
        except KeyboardInterrupt:
            self.pending[ref] = run
            raise

    def _collect(self, ref, run: PlannedRun) -> None:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None)
            message = f"{type(cause or error).__name__}: {cause or error}".strip()
            # RayTaskError's text is the remote traceback, coloured for terminals: keep it plain.
            remote = isinstance(error, ray.exceptions.RayTaskError)
            attempts = 1 if remote else self.max_retries + 1  # Ray retries only lost workers
            self.failed(run, message.splitlines()[0], ANSI.sub("", str(error)) if remote
                        else message, attempts)  # fmt: skip
            return
        except Exception:  # a result we cannot even read is one run's problem, not the grid's
            detail = traceback.format_exc()
            self.failed(run, detail.splitlines()[-1], detail, 1)
            return
        path = save_result(run, self.plan, result)
        final = result.history[-1]
        seconds = sum(row[SECONDS.name] for row in result.history)
        meta = result.metadata
        where = f"node {meta['host']}" + (
            f" gpu {','.join(meta['gpu_ids'])}" if meta["gpu_ids"] else ""
        )
        status = "" if result.status == "ok" else f"  {result.status.upper()}"
        shown = HEADLINE.show(final[HEADLINE.name])
        self.progress.finished(run.run_id, f"{shown}  {seconds:.0f}s  {where}{status}")
        self.outcome.finished.append(FinishedRun(run, result.status, final, seconds, path, meta))

    def failed(self, run: PlannedRun, headline: str, detail: str, attempts: int) -> None:
        path = save_failure(run, self.plan, detail, self.commit, attempts)
        self.outcome.failed.append(FailedRun(run, headline, path, attempts))
        self.progress.failed(run.run_id, f"{headline[:120]}  -> {path}")


def shutdown(started_here: bool) -> None:
    if started_here and ray.is_initialized():
        ray.shutdown()
