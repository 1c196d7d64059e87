"""On a real GPU (skipped without one): the memory probe measures a real trainer, and a run that
really runs out of GPU memory beside another is retried alone on the whole GPU."""

import functools
import io
import sys
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
    assert memory.total > memory.free > 0 and memory.held >= data_bytes
    assert memory.peak > memory.held and memory.context > 0
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
    assert outcome.exit_code == 0 and len(outcome.finished) == 2, stream.getvalue()
    shares = sorted(p.read_text().split() for p in log.iterdir())
    assert shares == [["0.5"], ["0.5", "1.0"]]
    assert {item.metadata["device"] for item in outcome.finished} == {"cuda"}
