"""On a real GPU (skipped without one): the memory probe measures a real trainer, and a run that
really runs out of GPU memory beside another (mid-run, or while its step is captured) is retried
alone on the whole GPU, its trainer training on."""

import functools
import io
import os
import sys
import time
from pathlib import Path

import pytest
import ray
import torch
from test_sizing import log_share

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.planning.sizing import GIB, runs_per_gpu
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.runner.trainer import measure_gpu
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.training.train import train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trainers call this file's code


@pytest.fixture
def one_gpu(local_ray):
    local_ray(num_cpus=2, num_gpus=1)


def test_the_probe_measures_a_real_trainer(one_gpu, fmnist):
    wide = RunConfig(channels=(32, 64, 256), batchnorm=True, pooling="max", activation="relu")
    memory = measure_gpu([RunConfig(batch_size=1280), wide], ray.put(fmnist), 1, timeout=300)
    data_bytes = (60_000 + 10_000) * (28 * 28 * 4 + 8)  # float32 images, int64 labels
    assert memory.total > memory.free > 0
    assert memory.held >= data_bytes  # read after training: the data and the allocator's cache
    assert memory.peak >= memory.held
    assert memory.context > 0  # CUDA context, cuBLAS/cuDNN handles and kernels
    runs = runs_per_gpu(memory)
    assert runs * memory.per_trainer <= memory.available
    print(f"{memory}: {runs} per GPU, a trainer {memory.per_trainer / GIB:.2f} GiB")


def too_large_when_shared(log: Path, cfg, data, device, on_epoch=None):
    """Seed 1 with a GPU share below 1 asks for more than the whole GPU: a real CUDA OOM."""
    if log_share(log, cfg) < 1 and cfg.seed == 1:
        torch.empty(torch.cuda.mem_get_info()[1] * 2, dtype=torch.uint8, device=device)
    return train_run(cfg, data, device, on_epoch=on_epoch)


def test_a_real_out_of_memory_is_retried_alone(tmp_path, one_gpu, small):
    (tmp_path / "exp.toml").write_text(
        'seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ngpus = 0.5\n'
    )
    log = tmp_path / "log"
    log.mkdir()
    plan = make_plan([load_experiment(tmp_path / "exp.toml")], tmp_path / "r")
    stream = io.StringIO()
    outcome = run_grid(plan, small, functools.partial(too_large_when_shared, log), stream)
    assert outcome.exit_code == 0 and len(outcome.trained) == 2, stream.getvalue()
    shares = sorted(p.read_text().split() for p in log.iterdir())
    assert shares == [["0.5"], ["0.5", "1.0"]]
    assert {item.metadata["device"] for item in outcome.trained} == {"cuda:0"}


class TightGraph(torch.cuda.graph):
    """A capture with no room: the process may use only what it holds already, plus 1 MiB."""

    def __enter__(self):
        torch.cuda.synchronize()
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 2**20) / total)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)


def capture_runs_out_when_shared(log: Path, cfg, data, device, on_epoch=None):
    """Seed 1 with a GPU share below 1 runs out of memory for real while its step is captured;
    the other shared runs wait for that (a minute at most), so runs are left for its trainer."""
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
    with (log / cfg.run_id).open("a") as attempts:
        attempts.write(f"{share} {os.getpid()}\n")
    ran_out = log.parent / "ran_out"
    real = torch.cuda.graph
    if share < 1 and cfg.seed == 1:
        torch.cuda.graph = TightGraph
    elif share < 1:
        deadline = time.monotonic() + 60
        while not ran_out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    try:
        return train_run(cfg, data, device, on_epoch=on_epoch)
    except Exception:
        ran_out.touch()
        raise
    finally:
        torch.cuda.graph = real


def test_out_of_memory_in_capture_is_retried_alone_and_its_trainer_trains_on(
    tmp_path, local_ray, small
):
    local_ray(num_cpus=2, num_gpus=1)  # two trainers of half a GPU
    (tmp_path / "exp.toml").write_text(
        "seeds = [0, 1, 2, 3]\n[base]\nepochs = 4\n[resources]\ngpus = 0.5\ncpus = 1\n"
    )
    log = tmp_path / "log"
    log.mkdir()
    plan = make_plan([load_experiment(tmp_path / "exp.toml")], tmp_path / "r")
    stream = io.StringIO()
    train_fn = functools.partial(capture_runs_out_when_shared, log)
    outcome = run_grid(plan, small.subset(6_000, 1_000), train_fn, stream)
    assert outcome.exit_code == 0, stream.getvalue()
    assert len(outcome.trained) == 4, stream.getvalue()
    metas = {item.config.seed: item.metadata for item in outcome.trained}
    run_ids = {item.config.seed: item.run_id for item in outcome.trained}
    attempts = (log / run_ids[1]).read_text().split("\n")[:-1]
    seen = {
        seed: (m["trainer_pid"], m["gpu_share"], m["training_step"]) for seed, m in metas.items()
    }
    print(f"seed 1's attempts (share pid): {attempts}; runs (pid, share, step): {seen}")
    print(stream.getvalue())
    assert [line.split()[0] for line in attempts] == ["0.5", "1.0"]
    assert metas[1]["retried_alone"] is True
    assert metas[1]["training_step"] == "cuda_graph"  # alone, the capture fits
    first_pid = int(attempts[0].split()[1])
    after = [m for m in metas.values() if m["trainer_pid"] == first_pid]
    assert after, "the trainer that ran out of memory trained nothing afterwards"
    assert {m["training_step"] for m in after} == {"cuda_graph"}
    print(f"capture OOM retried alone; its trainer trained {len(after)} more run(s), graphed")
