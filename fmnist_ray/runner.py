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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import ray

from .cluster import ClusterError, auth_problem, check_reachable, recorded_address
from .config import ConfigError, Resources, RunConfig
from .data import FashionMNIST
from .grid import Experiment
from .plan import Plan, PlannedRun, file_done_runs, label, make_plan
from .progress import GridProgress
from .results import (
    git_commit,
    history_table,
    library_versions,
    now_iso,
    write_failure,
    write_run,
)
from .storage import Location

DEFAULT_GPUS_PER_RUN = 0.25  # small models: four runs share one GPU unless told otherwise
PACKAGE_DIR = Path(__file__).resolve().parent  # shipped to cluster workers as py_modules
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
    cfg_json: str, data: FashionMNIST, cpus: float, board, train_fn: TrainFn | None
) -> dict[str, Any]:
    """Body of one Ray task: train on the GPU Ray assigned (if any), return history + metadata."""
    import torch  # here, not at the top: the driver and the progress actor never need torch

    if train_fn is None:
        from .train import train_run as train_fn

    cfg = RunConfig.model_validate_json(cfg_json)
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
    board.start.remote(cfg.run_id)
    started_at = now_iso()
    outcome = train_fn(
        cfg, data, device, on_epoch=lambda row: board.epoch.remote(cfg.run_id, row["epoch"])
    )
    metadata = {
        "started_at": started_at,
        "ended_at": now_iso(),
        "host": socket.gethostname(),
        "ray_node_id": ray.get_runtime_context().get_node_id(),
        "gpu_ids": gpu_ids,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device": outcome.device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "torch_threads": threads,
        "versions": library_versions() | {"torch": torch.__version__, "cuda": torch.version.cuda},
    }
    return {"history": outcome.history, "status": outcome.status, "metadata": metadata}


@dataclass
class GridOutcome:
    """What `run_grid` did; `exit_code` is non-zero when any run failed or it was interrupted."""

    total: int
    skipped: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    cancelled: int = 0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


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
    """Fill in the GPU share and check that one run fits on some node (else Ray waits forever)."""
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
    if problems:
        raise ConfigError(problems)
    return Resources(gpus=gpus, cpus=requested.cpus)


def write_manifest(experiment: Experiment, folder: Location, plan: Plan) -> None:
    """A copy of the experiment file and the environment this invocation ran in."""
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
        "resources_per_run": experiment.resources.model_dump(),
        "cluster_resources": ray.cluster_resources(),
        "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
    }
    (folder / "environment.json").write_text(json.dumps(manifest, indent=2, default=str))


def run_grid(
    plan: Plan | Experiment,
    data: FashionMNIST,
    results: str | Path | Location | None = None,
    train_fn: TrainFn | None = None,
    stream: TextIO = sys.stdout,
    max_retries: int = 1,
    resources: Resources | None = None,
    force: bool = False,
) -> GridOutcome:
    """Train every pending run of `plan` on the connected Ray cluster (see `connect`), longest
    first. An Experiment with `results` is planned here (`resources` overrides its file's).

    Each result lands in ROOT/<experiment>/runs/<run_id>.parquet of every experiment that
    contains the run, the moment it finishes; failures in .../failures/. Results that exist
    elsewhere under the root are filed, not retrained. Nothing touches Ray's object store
    when every run is already done.
    """
    if isinstance(plan, Experiment):
        overrides = resources.model_dump() if resources else None
        plan = make_plan([plan], results, force=force, resources=overrides)
    file_done_runs(plan)
    todo = plan.todo
    outcome = GridOutcome(total=len(plan.runs), skipped=len(plan.runs) - len(todo))
    if not todo:
        return outcome
    resolved = {res: resolve_resources(res) for res in {run.resources for run in todo}}
    for exp in plan.experiments:
        write_manifest(exp, plan.folder(exp.name), plan)
    commit = git_commit()
    data_ref = ray.put(data)  # once; every task reads the same object, no dataset files needed
    board = ProgressBoard.remote()
    pending = {}
    for run in todo:  # submission order is the order Ray starts them in: longest first
        res = resolved[run.resources]
        task = ray.remote(_train_task).options(
            num_cpus=res.cpus, num_gpus=res.gpus, max_retries=max_retries
        )
        ref = task.remote(run.config.model_dump_json(), data_ref, res.cpus, board, train_fn)
        pending[ref] = run
    runs = {run.run_id: (label(plan, run), run.config.epochs, run.seconds) for run in todo}
    progress = GridProgress(runs, stream)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                _collect(ref, pending.pop(ref), plan, commit, outcome, progress)
            progress.update(*ray.get(board.snapshot.remote()))
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.cancelled = len(pending)
        for ref in pending:
            ray.cancel(ref, force=True)
    finally:
        progress.close()
        ray.kill(board)
    return outcome


def _collect(ref, run: PlannedRun, plan: Plan, commit, outcome, progress) -> None:
    """Write one finished run into each of its experiments (or record its failure there)."""
    cfg = run.config

    def failed(headline: str, detail: str) -> None:
        for name in run.experiments:
            path = write_failure(plan.folder(name), cfg, detail, failed_at=now_iso(),
                                 git_commit=commit)  # fmt: skip
        outcome.failed.append({"config": cfg, "error": headline, "path": path, "run": run})
        progress.failed(run.run_id, f"{headline[:120]}  -> {path}")

    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None)
        message = f"{type(cause or error).__name__}: {cause or error}".strip()
        # RayTaskError's text is the remote traceback, coloured for terminals: keep it plain.
        remote = isinstance(error, ray.exceptions.RayTaskError)
        failed(message.splitlines()[0], ANSI.sub("", str(error)) if remote else message)
        return
    except Exception:  # a result we cannot even read is still one run's problem, not the grid's
        detail = traceback.format_exc()
        failed(detail.splitlines()[-1], detail)
        return
    metadata = result["metadata"] | {"git_commit": commit}
    for name in run.experiments:
        table = history_table(cfg, result["history"], result["status"], name, metadata)
        path = write_run(plan.folder(name), table)
    final = result["history"][-1]
    seconds = sum(row["seconds"] for row in result["history"])
    where = f"node {metadata['host']}" + (
        f" gpu {','.join(metadata['gpu_ids'])}" if metadata["gpu_ids"] else ""
    )
    status = "" if result["status"] == "ok" else f"  {result['status'].upper()}"
    progress.finished(
        run.run_id, f"test_acc {final['test_acc']:.4f}  {seconds:.0f}s  {where}{status}"
    )
    outcome.finished.append(
        {"config": cfg, "status": result["status"], "final": final, "seconds": seconds,
         "path": path, "metadata": metadata, "run": run}
    )  # fmt: skip


def shutdown(started_here: bool) -> None:
    if started_here and ray.is_initialized():
        ray.shutdown()
