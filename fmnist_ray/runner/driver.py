"""The grid runner: start or join a cluster, check what a run needs fits a node, and train a plan
through long-lived trainers (runner.trainer, fed by runner.dispatch), with live progress,
failures, resume and Ctrl-C."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import ray

from ..outcome import RunOutcome, outcome_of
from ..planning.plan import Plan, PlannedRun, label
from ..planning.sizing import describe, gpu_share, runs_per_gpu
from ..spec.config import DEFAULT_GPUS_PER_RUN, DEFAULT_RETRIES, ConfigError, Resources
from ..spec.grid import Experiment
from ..store.results import git_commit, library_versions, now_iso
from ..store.storage import Location
from ..training.data import FashionMNIST
from .cluster import PACKAGE_DIR, ClusterError, auth_problem, check_reachable, recorded_address
from .collect import DestinationError
from .dispatch import Dispatch
from .progress import GridProgress
from .signals import interruptible, signal_of
from .trainer import ProgressBoard, TrainFn, measure_gpu

PROBE_SECONDS = 600  # for the memory probe to get a whole GPU and train its runs one epoch each

__all__ = ["connect", "run_grid", "shutdown"]


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


def size_from_memory(
    resolved: dict[Resources, Resources], todo: list[PlannedRun], data_ref, stream
) -> dict[Resources, Resources]:
    """Where no GPU share was asked for and the cluster has GPUs, the share from measured memory
    (sizing.runs_per_gpu): a probe trains the shape's largest runs alone on a whole GPU. No CUDA
    behind Ray's GPUs: the default share. A probe that fails or finds no free GPU: a whole GPU
    per run, which cannot run out of memory by sharing."""
    unsized = [shape for shape, got in resolved.items() if shape.gpus is None and got.gpus]
    if not unsized:
        return resolved
    for shape in unsized:
        configs = [run.config for run in todo if run.resources == shape]
        try:
            memory = measure_gpu(configs, data_ref, shape.cpus, PROBE_SECONDS)
        except ray.exceptions.RayError as error:
            print(f"warning: GPU memory probe failed ({type(error).__name__}); one run per GPU",
                  file=stream)  # fmt: skip
            resolved[shape] = Resources(gpus=1.0, cpus=shape.cpus)
            continue
        if memory is None:
            print(f"GPU memory: no CUDA device behind Ray's GPUs; {DEFAULT_GPUS_PER_RUN:g} GPU "
                  "per run", file=stream)  # fmt: skip
            continue
        runs = runs_per_gpu(memory)
        print(describe(memory, runs), file=stream)
        resolved[shape] = Resources(gpus=gpu_share(runs), cpus=shape.cpus)
    return resolved


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
) -> RunOutcome:
    """Train every pending run of `plan` (made by `plan.make_plan`, tidied by `plan.prepare`)
    on the connected Ray cluster (see `connect`), longest first, by one trainer per slot.

    Each result lands in ROOT/<experiment>/runs/<run_id>.parquet of every experiment that
    contains the run, the moment it finishes; failures in .../failures/. `max_retries`: retries
    of a run whose trainer process or node died, in a fresh trainer (an exception raised by
    training is not retried: the same config and seed would raise it again). Ctrl-C, SIGTERM
    and SIGHUP cancel what is pending and keep every finished run; so does a destination that
    keeps failing. What it did: `RunOutcome` (the runs it trained, failed, could not save or
    cancelled, and those done before).
    """
    todo = plan.todo
    if not todo:
        return outcome_of(plan, [])
    resolved = {res: resolve_resources(res) for res in {run.resources for run in todo}}
    # Once: the memory probe and every trainer read this object; CPU trainers read its scaled
    # images in place (one copy per node), GPU ones copy the uint8 images to their device.
    on_cpu = any(not shape.gpus for shape in resolved.values())
    data_ref = ray.put(data.with_scaled() if on_cpu and data.scaled is None else data)
    resolved = size_from_memory(resolved, todo, data_ref, stream)
    for exp in plan.experiments:
        requested = plan.resources[exp.name]
        write_manifest(exp, plan.folder(exp.name), plan, resolved.get(requested, requested))
    runs = {run.run_id: (label(plan, run), run.config.epochs, run.seconds) for run in todo}
    progress = GridProgress(runs, stream)
    grid = Dispatch(plan, git_commit(), max_retries, progress)
    board = ProgressBoard.options(name=f"fmnist-ray-progress-{uuid.uuid4().hex[:8]}").remote()
    try:
        with interruptible():
            grid.start(todo, resolved, data_ref, board, train_fn)
            grid.wait_all(board)
    except KeyboardInterrupt as interrupt:
        grid.signal = signal_of(interrupt)
        grid.wind_down(stream, "interrupted")
    except DestinationError:  # its run is recorded as not saved (Dispatch.written)
        grid.wind_down(stream, "the results destination is failing")
    finally:
        grid.progress.close()
        grid.stop()
        ray.kill(board)
    return outcome_of(plan, grid.ended, grid.signal)


def shutdown(started_here: bool) -> None:
    if started_here and ray.is_initialized():
        ray.shutdown()
