"""How many runs share one GPU, from measured memory: a probe trains the plan's largest runs alone
on a whole GPU and reports the GPU's free memory and its own footprint; `runs_per_gpu` turns that
into a count with a safety margin, never more than fit. Plain numbers: no torch, no Ray."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..spec.config import DEFAULT_GPUS_PER_RUN, RunConfig
from .cost import work_per_image

# The probe trains this many epochs: steps.WARMUP_STEPS + 1, so that the short last batch (seen
# once an epoch) is captured too, and its graph's memory measured.
PROBE_EPOCHS = 4
# Of each trainer's measured footprint, kept free: allocator fragmentation, and runs a little
# larger than the probed ones.
MARGIN = 0.25
# Never more trainers per GPU than today's default packing: processes time-slice a GPU, and with
# graphed steps 2, 4 and 8 of them gave 1.03x, 0.94x, 0.85x of one (benchmarks/RESULTS.md).
MOST_RUNS_PER_GPU = round(1 / DEFAULT_GPUS_PER_RUN)
GIB = 2**30


class OutOfDeviceMemory(RuntimeError):
    """A run ran out of GPU memory (any of device_errors.OUT_OF_MEMORY's forms, re-raised by the
    trainer as this torch-free type so the driver can read it): retried alone on a whole GPU."""


class TrainerCannotStart(OutOfDeviceMemory):
    """The trainer itself ran out of GPU memory while starting (its CUDA context or the dataset
    on a crowded GPU): it can train nothing, so its run goes to a whole GPU and it is stopped."""


@dataclass(frozen=True)
class GpuMemory:
    """One probe's measurements on a whole GPU, in bytes, read after it trained: by then its
    CUDA context, cuBLAS and cuDNN (handles, kernels) and every captured graph hold their memory."""

    total: int  # the GPU's memory (torch.cuda.mem_get_info()[1])
    free: int  # free after training (mem_get_info()[0])
    held: int  # what the probe's allocator held then: data and cache (torch.cuda.memory_reserved())
    peak: int  # the most its allocator held while training (torch.cuda.max_memory_reserved())
    name: str = ""  # the GPU's model

    @property
    def context(self) -> int:
        """Used, but not by the probe's allocator: its CUDA context, and whatever other processes
        hold (counted as the context of every trainer: an overestimate, never an under-)."""
        return self.total - self.free - self.held

    @property
    def per_trainer(self) -> int:
        """One trainer's footprint: a context, the data, and the largest run's peak."""
        return self.context + self.peak

    @property
    def available(self) -> int:
        """Memory for trainers: all but what the context and other processes use."""
        return self.free + self.held


def runs_per_gpu(memory: GpuMemory, margin: float = MARGIN, most: int = MOST_RUNS_PER_GPU) -> int:
    """Trainers (one run each) that fit on the GPU with `margin` of each footprint to spare, at
    most `most`; 1 (the run alone) when not even one fits with the margin."""
    fits = math.floor(memory.available / (memory.per_trainer * (1 + margin)))
    return max(1, min(fits, most))


def gpu_share(runs: int) -> float:
    """The GPU share per run for `runs` per GPU, rounded down to Ray's 4 decimals (1/3: 0.3333)."""
    return math.floor(10_000 / runs) / 10_000


def describe(memory: GpuMemory, runs: int) -> str:
    """One line: what was measured and the runs per GPU it gives."""
    return (
        f"GPU memory ({memory.name or 'GPU'}): a trainer needs {memory.per_trainer / GIB:.2f} GiB "
        f"(context {memory.context / GIB:.2f}, data and largest run {memory.peak / GIB:.2f}) of "
        f"{memory.available / GIB:.1f} GiB available, with {MARGIN:.0%} to spare: {runs} per GPU "
        f"(at most {MOST_RUNS_PER_GPU}), {gpu_share(runs):g} GPU per run"
    )


def probe_configs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """The runs to measure, PROBE_EPOCHS each: the one with the most hidden values per training
    batch (what the backward pass keeps), and the one with the most per image (the widest model,
    whose evaluation batches are largest)."""
    configs = list(configs)
    if not configs:
        return []
    values = {cfg.run_id: work_per_image(cfg)[2] for cfg in configs}
    per_batch = max(configs, key=lambda cfg: (cfg.batch_size * values[cfg.run_id], cfg.run_id))
    per_image = max(configs, key=lambda cfg: (values[cfg.run_id], cfg.batch_size, cfg.run_id))
    chosen = {cfg.run_id: cfg for cfg in (per_batch, per_image)}
    return [cfg.model_copy(update={"epochs": PROBE_EPOCHS}) for cfg in chosen.values()]
