"""The long-lived trainer: a Ray actor per slot (a run's CPUs and GPU share) that receives the
dataset once, keeps torch and the data on its device, and trains the runs the driver sends it
one after another; an exception fails that one run, never the trainer."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import ray

from ..planning.sizing import GpuMemory, OutOfDeviceMemory, probe_configs
from ..spec.config import Resources, RunConfig
from ..spec.metrics import EPOCH
from ..store.results import RunResult, now_iso, run_metadata
from ..training.data import FashionMNIST

TrainFn = Callable[..., Any]  # train.train_run's signature; tests inject failing ones


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Trainers report here when a run starts and after each epoch; the driver polls it."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.epochs: dict[str, int] = {}

    def start(self, run_id: str) -> None:
        self.started[run_id] = time.time()

    def epoch(self, run_id: str, epoch: int) -> None:
        self.epochs[run_id] = epoch

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        return self.started, self.epochs


@ray.remote(max_restarts=0)
class Trainer:
    """One slot's process: torch initialised and the dataset on its device once, then
    `train(config)` per run. `commit` is the driver's (a worker's copy of the code has no git
    checkout)."""

    def __init__(
        self, data: FashionMNIST, cpus: float, board, train_fn: TrainFn | None, commit: str | None
    ):
        import torch  # here, not at the top: the driver and the progress actor never need torch

        from ..training.data import DeviceData

        if train_fn is None:
            from ..training.train import train_run as train_fn
        torch.set_num_threads(max(1, int(cpus)))
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.device = "cuda" if self.gpu_ids and torch.cuda.is_available() else "cpu"
        self.data = DeviceData(data, torch.device(self.device))  # once, for every run
        self.board, self.train_fn, self.commit = board, train_fn, commit
        self.runs_before = 0  # runs this process started before the current one

    def train(self, cfg_json: str) -> RunResult:
        """Train one run here: its history, status and metadata (with where, and after how many
        other runs in this process, it trained)."""
        cfg = RunConfig.model_validate_json(cfg_json)
        runs_before, self.runs_before = self.runs_before, self.runs_before + 1
        self.board.start.remote(cfg.run_id)
        started_at = now_iso()
        outcome = self._train(cfg)
        placement = {
            "ray_node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": self.gpu_ids,
            "trainer_pid": os.getpid(),
            "trainer_runs_before": runs_before,
        }
        metadata = run_metadata(outcome, started_at, self.commit, placement)
        return RunResult(outcome.history, outcome.status, metadata)

    def _train(self, cfg: RunConfig):
        """train_fn on this trainer's data; out of GPU memory, the run's memory is released and
        OutOfDeviceMemory raised (the driver retries the run alone)."""
        import torch

        try:
            return self.train_fn(
                cfg, self.data, self.device,
                on_epoch=lambda row: self.board.epoch.remote(cfg.run_id, row[EPOCH]),
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError as error:
            if self.device == "cuda":
                torch.cuda.empty_cache()
            # `from None`: a torch exception in the chain would make the driver import torch.
            raise OutOfDeviceMemory(str(error).splitlines()[0]) from None

    def measure_memory(self, cfg_jsons: list[str]) -> dict[str, Any] | None:
        """Train each config here (one epoch each: `sizing.probe_configs`) and return what the
        GPU has and what this process took (sizing.GpuMemory's fields); None on the CPU."""
        import torch

        if self.device != "cuda":
            return None
        free, total = torch.cuda.mem_get_info()
        held = torch.cuda.memory_reserved()
        torch.cuda.reset_peak_memory_stats()
        for cfg_json in cfg_jsons:
            self.train_fn(RunConfig.model_validate_json(cfg_json), self.data, self.device)
        peak = torch.cuda.max_memory_reserved()
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
