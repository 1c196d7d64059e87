"""Runs per GPU from measured memory (the numbers given, no GPU needed), the probe's wiring on a
real Ray with logical GPUs, and a run out of GPU memory beside others retried alone on a whole
GPU. The out-of-memory error is a real torch.cuda.OutOfMemoryError raised by an injected train
function inside a real trainer: a CPU cannot run out of GPU memory for real."""

import functools
import io
import sys
from pathlib import Path

import pytest
import ray
import torch

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.planning.sizing import (
    GIB,
    MOST_RUNS_PER_GPU,
    PROBE_EPOCHS,
    GpuMemory,
    gpu_share,
    probe_configs,
    runs_per_gpu,
)
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.results import read_failures, read_metadata
from fmnist_ray.training.steps import WARMUP_STEPS
from fmnist_ray.training.train import train_run

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trainers call this file's code


def test_a_gpu_with_room_for_many_gets_the_default_packing_at_most():
    # An H200-like GPU: 140 GiB, a trainer of about 1 GiB.
    memory = GpuMemory(total=140 * GIB, free=139 * GIB, held=GIB // 4, peak=GIB // 2)
    assert runs_per_gpu(memory) == MOST_RUNS_PER_GPU == 4
    assert gpu_share(runs_per_gpu(memory)) == 0.25


def test_a_small_gpu_gets_as_many_as_fit_with_the_margin():
    # 8 GiB: context 0.5, data 0.25, a wide run peaking at 2 GiB (data included).
    memory = GpuMemory(total=8 * GIB, free=int(7.25 * GIB), held=GIB // 4, peak=2 * GIB)
    assert memory.context == GIB // 2 and memory.per_trainer == int(2.5 * GIB)
    # 7.5 GiB available / (2.5 GiB * 1.25) = 2.4: two fit, a third would not.
    assert runs_per_gpu(memory) == 2
    assert 3 * memory.per_trainer > memory.available - memory.per_trainer  # tight: why not 3
    assert runs_per_gpu(memory, margin=0.0) == 3


def test_memory_other_processes_hold_lowers_the_count():
    idle = GpuMemory(total=16 * GIB, free=15 * GIB, held=GIB // 2, peak=2 * GIB)
    busy = GpuMemory(total=16 * GIB, free=7 * GIB, held=GIB // 2, peak=2 * GIB)
    assert runs_per_gpu(idle) == 4 and runs_per_gpu(busy) == 1


def test_a_run_too_large_to_share_runs_alone():
    memory = GpuMemory(total=8 * GIB, free=7 * GIB, held=GIB // 4, peak=6 * GIB)
    assert runs_per_gpu(memory) == 1 and gpu_share(1) == 1.0


def test_shares_never_overbook_a_gpu():
    for runs in range(1, 17):
        assert gpu_share(runs) * runs <= 1.0 and gpu_share(runs) > 1 / (runs + 1)
    assert gpu_share(3) == 0.3333


def test_the_probe_trains_the_largest_batch_and_the_widest_model_until_every_graph_is_captured():
    configs = [
        RunConfig(batch_size=1280),
        RunConfig(batch_size=10),
        RunConfig(channels=(32, 64, 256), batchnorm=True, pooling="max", activation="relu"),
        RunConfig(model="fc"),
    ]
    chosen = probe_configs(configs)
    assert [(cfg.batch_size, cfg.channels) for cfg in chosen] == [
        (1280, (6, 16, 120)),
        (100, (32, 64, 256)),
    ]
    assert {cfg.epochs for cfg in chosen} == {PROBE_EPOCHS}
    assert probe_configs([]) == []
    # The short last batch comes once an epoch and is captured after WARMUP_STEPS warm-ups.
    assert PROBE_EPOCHS == WARMUP_STEPS + 1


def log_share(log: Path, cfg) -> float:
    """The GPU share this attempt at `cfg` got, appended to the run's line in `log`."""
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
    with (log / cfg.run_id).open("a") as attempts:
        attempts.write(f"{share}\n")
    return share


def oom_when_shared(log: Path, cfg, data, device, on_epoch=None):
    """Train, unless seed 1 has a GPU share below 1: then out of GPU memory, as torch says it."""
    if log_share(log, cfg) < 1 and cfg.seed == 1:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return train_run(cfg, data, device, on_epoch=on_epoch)


@pytest.fixture
def logical_gpu(local_ray):
    """1 CPU (one trainer at a time) and one logical GPU (no CUDA), one Ray for the module."""
    local_ray(num_cpus=1, num_gpus=1)


def grid(tmp_path: Path, data, gpus: float | None, train_fn=None, name="exp"):
    text = 'seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ncpus = 1\n'
    text += f"gpus = {gpus}\n" if gpus is not None else ""
    (tmp_path / f"{name}.toml").write_text(text)
    plan = make_plan([load_experiment(tmp_path / f"{name}.toml")], tmp_path / "r")
    stream = io.StringIO()
    outcome = run_grid(plan, data, train_fn=train_fn, stream=stream)
    return outcome, stream.getvalue(), tmp_path / "r" / name


def attempts(log: Path) -> dict[int, list[float]]:
    """seed -> the GPU share of each attempt, from the per-attempt log."""
    seeds = {RunConfig(model="fc", epochs=1, seed=s).run_id: s for s in (0, 1)}
    return {seeds[p.name]: [float(x) for x in p.read_text().split()] for p in log.iterdir()}


def test_a_run_out_of_gpu_memory_beside_another_is_retried_alone(tmp_path, logical_gpu, small):
    log = tmp_path / "log"
    log.mkdir()
    train_fn = functools.partial(oom_when_shared, log)
    outcome, printed, folder = grid(tmp_path, small.subset(1000, 200), 0.5, train_fn)
    assert outcome.exit_code == 0 and len(outcome.trained) == 2, printed
    assert attempts(log) == {0: [0.5], 1: [0.5, 1.0]}
    assert "out of GPU memory with 0.5 GPU; retried alone on a whole GPU" in printed
    metas = {m["config"]["seed"]: m for m in map(read_metadata, (folder / "runs").glob("*"))}
    assert (metas[0]["retried_alone"], metas[0]["gpu_share"]) == (False, 0.5)
    assert (metas[1]["retried_alone"], metas[1]["gpu_share"]) == (True, 1.0)
    assert read_failures(folder) == [] and len(list((folder / "runs").glob("*"))) == 2


def always_out_of_memory(cfg, data, device, on_epoch=None):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")


def test_a_run_out_of_memory_on_a_whole_gpu_fails_once(tmp_path, logical_gpu, small):
    outcome, _, folder = grid(tmp_path, small.subset(1000, 200), 1.0, always_out_of_memory)
    assert outcome.exit_code == 1 and len(outcome.failed) == 2
    records = read_failures(folder)
    assert len(records) == 2
    assert {record["attempts"] for record in records} == {1}
    assert all("OutOfDeviceMemory: CUDA out of memory" in r["error"] for r in records)


def test_without_a_share_the_probe_sizes_it_and_logical_gpus_keep_the_default(
    tmp_path, logical_gpu, small
):
    outcome, printed, folder = grid(tmp_path, small.subset(1000, 200), None)
    assert outcome.exit_code == 0, printed
    assert "GPU memory: no CUDA device behind Ray's GPUs; 0.25 GPU per run" in printed
    metas = [read_metadata(path) for path in (folder / "runs").glob("*.parquet")]
    assert len(metas) == 2 and all(len(meta["gpu_ids"]) == 1 for meta in metas)
