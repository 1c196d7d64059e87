"""The long-lived trainer: a Ray actor per slot (a run's CPUs and GPU share) that receives the
dataset once, keeps torch and the data on its device, and trains the runs the driver sends it
one after another; an exception fails that one run, never the trainer, except a broken CUDA
context, which ends the process so that its run is retried in a fresh one."""

from __future__ import annotations

import gc
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray

from ..planning.sizing import GpuMemory, OutOfDeviceMemory, TrainerCannotStart, probe_configs
from ..spec.config import Resources, RunConfig
from ..spec.metrics import EPOCH
from ..spec.result import RunResult
from ..store.results import now_iso, run_metadata
from ..training.data import FashionMNIST
from ..training.device_errors import headline, is_broken_context, is_out_of_memory

TrainFn = Callable[..., Any]  # train.train_run's signature; tests inject failing ones
# A trainer whose CUDA context broke exits with this code: Ray reports the actor dead and the
# driver retries its run in a fresh process (dispatch.Dispatch.retry).
BROKEN_CONTEXT_EXIT = 70


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Trainers report here when a run starts, after each epoch and when it ends; the driver
    polls it for what changed since its last poll (`changes`), so a poll's size follows the
    runs that moved, never the grid. A run that ends is pruned. It also counts the runs
    training on each GPU at once, the most each run saw."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}  # runs training now
        self.epochs: dict[str, int] = {}
        self.fresh_started: dict[str, float] = {}  # since the driver's last poll
        self.fresh_epochs: dict[str, int] = {}
        self.gpu_of: dict[str, str] = {}  # run id -> the GPU it trains on
        self.on_gpu: dict[str, set[str]] = {}  # GPU -> run ids training there now
        self.most: dict[str, int] = {}  # run id -> the most runs its GPU held while it trained

    def start(self, run_id: str, gpu: str | None = None) -> None:
        self.started[run_id] = self.fresh_started[run_id] = time.time()
        if gpu is not None:
            self.gpu_of[run_id] = gpu
            here = self.on_gpu.setdefault(gpu, set())
            here.add(run_id)
            for other in here:
                self.most[other] = max(self.most.get(other, 0), len(here))

    def epoch(self, run_id: str, epoch: int) -> None:
        self.epochs[run_id] = self.fresh_epochs[run_id] = epoch

    def end(self, run_id: str) -> int | None:
        """The run left its GPU (finished, failed, or its trainer died): how many runs, itself
        included, trained there at most at once; None for a run on the CPU."""
        for table in (self.started, self.epochs, self.fresh_started, self.fresh_epochs):
            table.pop(run_id, None)
        gpu = self.gpu_of.pop(run_id, None)
        if gpu is None:
            return None
        self.on_gpu[gpu].discard(run_id)
        return self.most.pop(run_id, None)

    def changes(self) -> tuple[dict[str, float], dict[str, int]]:
        """Runs started and epochs reached since the last call (one poller: the driver)."""
        started, epochs = self.fresh_started, self.fresh_epochs
        self.fresh_started, self.fresh_epochs = {}, {}
        return started, epochs

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        """The runs training now: when each started, and its last epoch."""
        return self.started, self.epochs


def cuda_index(gpu_ids: list[str], visible: str | None) -> int:
    """The CUDA index of the first GPU Ray assigned: its place in CUDA_VISIBLE_DEVICES when that
    is set (Ray sets it to the assigned GPUs by default), else the GPU's own id (Ray told not to
    set it: every GPU of the node is visible, and each trainer must pick its own)."""
    first = gpu_ids[0]
    if visible:
        listed = [item.strip() for item in visible.split(",")]
        return listed.index(first) if first in listed else 0
    return int(first) if first.isdigit() else 0


def exit_process(reason: str) -> None:
    """End this process now: its CUDA context refuses everything after a sticky error."""
    print(f"fmnist-ray trainer {os.getpid()}: CUDA context broken ({reason}); exiting so the "
          "run is retried in a fresh process", file=sys.stderr, flush=True)  # fmt: skip
    os._exit(BROKEN_CONTEXT_EXIT)


def release(device: str) -> None:
    """Give a failed run's GPU memory back to the other processes on the GPU. Called once its
    exception is gone: until then the traceback holds the run's model, optimizer and graphs."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


class Bench:
    """A trainer's work without Ray (the actor below wraps it; tests drive it in process): the
    data on this process's device once, then `train(cfg)` per run with its errors sorted."""

    exit = staticmethod(exit_process)

    def __init__(self, data: FashionMNIST, cpus: float, gpu_ids: list[str], train_fn):
        import torch  # here, not at the top: the driver and the progress actor never need torch

        from ..training.data import DeviceData

        if train_fn is None:
            from ..training.train import train_run as train_fn
        torch.set_num_threads(max(1, int(cpus)))
        self.train_fn, self.device, self.cannot_start = train_fn, "cpu", None
        if gpu_ids and torch.cuda.is_available():
            index = cuda_index(gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"))
            self.device = f"cuda:{index}"
        try:
            if self.device != "cpu":
                torch.cuda.set_device(self.device)
            self.data = DeviceData(data, torch.device(self.device))  # once, for every run
        except Exception as error:  # a crowded GPU: no room for the context or the data
            if not is_out_of_memory(error):
                raise
            self.cannot_start = headline(error)
        if self.cannot_start:
            release(self.device)

    def train(self, cfg: RunConfig, on_epoch: Callable[[dict], None] | None = None):
        """train_fn on this process's data. Out of GPU memory: the run's memory is released,
        then OutOfDeviceMemory raised (the driver retries the run alone). A broken CUDA context:
        the process exits. Anything else is the run's own failure, raised as it is."""
        if self.cannot_start:
            raise TrainerCannotStart(self.cannot_start)
        try:
            return self.train_fn(cfg, self.data, self.device, on_epoch=on_epoch)
        except OutOfDeviceMemory:
            raise  # already sorted (a train_fn of our own, or a wrapper of this one)
        except Exception as error:
            broken = is_broken_context(error) or not self._context_works()
            if not (broken or is_out_of_memory(error)):
                raise
            why = headline(error)
        # Outside the `except`: the exception, its traceback and the run's objects are unreferenced.
        if broken:
            self.exit(why)
        release(self.device)
        raise OutOfDeviceMemory(why)

    def _context_works(self) -> bool:
        """On a GPU, whether the CUDA context still runs work (a sticky error fails this too)."""
        if not self.device.startswith("cuda"):
            return True
        import torch

        try:
            torch.cuda.synchronize(self.device)
            return True
        except Exception:
            return False


@ray.remote(max_restarts=0)
class Trainer:
    """One slot's process: a Bench, and what Ray knows of where it is. `commit` is the driver's
    (a worker's copy of the code has no git checkout)."""

    def __init__(
        self, data: FashionMNIST, cpus: float, board, train_fn: TrainFn | None, commit: str | None
    ):
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.bench = Bench(data, cpus, gpu_ids, train_fn)
        self.board, self.commit = board, commit
        node = ray.get_runtime_context().get_node_id()
        share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
        self.gpu = f"{node}:{','.join(gpu_ids)}" if gpu_ids else None  # the board's key
        self.placement = dict(ray_node_id=node, gpu_ids=gpu_ids, gpu_share=share,
                              trainer_pid=os.getpid())  # fmt: skip
        self.runs_before = 0  # runs this process started before the current one
        self.bench.exit = self._exit

    def _exit(self, why: str) -> None:
        """Leave the GPU's count on the board, then end the process (a broken CUDA context)."""
        self._leave_gpu(self.current)
        exit_process(why)

    def train(self, cfg_json: str) -> RunResult:
        """Train one run here: its history, status and metadata (with where, after how many
        other runs in this process, and beside how many on its GPU, it trained)."""
        cfg = RunConfig.model_validate_json(cfg_json)
        self.current = cfg.run_id
        runs_before, self.runs_before = self.runs_before, self.runs_before + 1
        self.board.start.remote(cfg.run_id, self.gpu)
        started_at = now_iso()
        try:
            result = self.bench.train(
                cfg, on_epoch=lambda row: self.board.epoch.remote(cfg.run_id, row[EPOCH])
            )
        finally:
            most = self._leave_gpu(cfg.run_id)
        placement = self.placement | {"trainer_runs_before": runs_before, "runs_on_gpu": most}
        result.metadata = run_metadata(result.metadata, started_at, self.commit, placement)
        return result

    def _leave_gpu(self, run_id: str) -> int | None:
        """The most runs this run's GPU held at once while it trained (None on the CPU, or
        when the board cannot say: progress is never worth failing a run for)."""
        try:
            return ray.get(self.board.end.remote(run_id), timeout=30)
        except ray.exceptions.RayError:
            return None

    def measure_memory(self, cfg_jsons: list[str]) -> dict[str, Any] | None:
        """Train each config here (`sizing.probe_configs`: long enough to capture every graph)
        and return what the GPU has and what this process took (sizing.GpuMemory's fields),
        read after training, once cuBLAS, cuDNN and the graphs hold their memory; None on the
        CPU."""
        import torch

        bench = self.bench
        if not bench.device.startswith("cuda"):
            return None
        torch.cuda.reset_peak_memory_stats()
        for cfg_json in cfg_jsons:
            bench.train_fn(RunConfig.model_validate_json(cfg_json), bench.data, bench.device)
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        held, peak = torch.cuda.memory_reserved(), torch.cuda.max_memory_reserved()
        return dict(total=total, free=free, held=held, peak=peak, name=torch.cuda.get_device_name())


def measure_gpu(
    configs: list[RunConfig], data_ref, cpus: float, timeout: float
) -> GpuMemory | None:
    """Memory of the largest of `configs` trained alone on a whole GPU, by a probe trainer
    stopped afterwards; None when Ray's GPU has no CUDA device behind it (logical GPUs).
    Raises ray's errors (GetTimeoutError: no whole GPU came free in `timeout` seconds)."""
    probe = Trainer.options(num_cpus=cpus, num_gpus=1).remote(data_ref, cpus, None, None, None)
    try:
        jsons = [cfg.model_dump_json() for cfg in probe_configs(configs)]
        measured = ray.get(probe.measure_memory.remote(jsons), timeout=timeout)
    finally:
        ray.kill(probe)  # its process, CUDA context and memory go with it
    return GpuMemory(**measured) if measured is not None else None


def trainer_slots(shape: Resources) -> int:
    """How many trainers of `shape` the live cluster holds at once (each keeps its resources)."""
    total = 0
    for node in (n["Resources"] for n in ray.nodes() if n.get("Alive")):
        fits = [math.floor(node.get("CPU", 0.0) / shape.cpus + 1e-9)]
        if shape.gpus:
            fits.append(math.floor(node.get("GPU", 0.0) / shape.gpus + 1e-9))
        total += min(fits)
    return max(total, 1)
