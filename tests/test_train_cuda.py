"""The CUDA-graph step against the eager step, on a real GPU (skipped without one): every option
that changes the step is captured, the short last batch gets its own graph, a schedule reaches
the captured optimizer, and the history matches eager training of the same config and seed."""

import pytest
import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import DeviceData
from fmnist_ray.training.steps import WARMUP_STEPS
from fmnist_ray.training.train import train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# 6,000 images in batches of 320: 18 full batches and one of 240 per epoch. The short batch is
# seen once an epoch, so it is captured in epoch WARMUP_STEPS + 1.
EPOCHS = WARMUP_STEPS + 2


@pytest.fixture(scope="module")
def gpu_data(fmnist):
    return DeviceData(fmnist.subset(6_000, 2_000), torch.device("cuda"))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"model": "fc"},
        {"loss": "mse"},
        {"loss": "multi_margin"},
        {"optimizer": "sgd", "lr": 0.05},
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        {"optimizer": "rmsprop"},
        {"scheduler": "steplr", "step_size": 10, "gamma": 0.8},
        {"optimizer": "rmsprop", "scheduler": "steplr", "step_size": 10, "gamma": 0.8},
        {"activation": "relu", "pooling": "max", "batchnorm": True, "dropout": True},
        {"channels": [32, 64, 256], "activation": "leaky_relu", "batchnorm": True},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "base",
)
def test_graphed_training_matches_eager(gpu_data, options):
    cfg = RunConfig(epochs=EPOCHS, batch_size=320, **options)
    graphed = train_run(cfg, gpu_data, "cuda")
    eager = train_run(cfg, gpu_data, "cuda", cuda_graphs=False)
    steps = (graphed.metadata["training_step"], eager.metadata["training_step"])
    assert steps == ("cuda_graph", "eager")
    assert graphed.status == eager.status == "ok"
    first_g, first_e = graphed.history[0], eager.history[0]
    assert first_g["train_loss"] == pytest.approx(first_e["train_loss"], rel=1e-3)
    for g, e in zip(graphed.history, eager.history, strict=True):
        assert g["last_lr"] == pytest.approx(e["last_lr"], rel=1e-6)
    assert graphed.final["test_acc"] == pytest.approx(eager.final["test_acc"], abs=0.03)
    assert graphed.final["train_loss"] == pytest.approx(eager.final["train_loss"], rel=0.1)


def test_sgd_with_a_schedule_stays_eager(gpu_data):
    cfg = RunConfig(epochs=1, optimizer="sgd", lr=0.05, scheduler="steplr", step_size=5, gamma=0.5)
    result = train_run(cfg, gpu_data, "cuda")
    assert result.metadata["training_step"] == "eager"
    assert result.status == "ok"


def test_divergence_is_caught_in_a_graph(gpu_data):
    cfg = RunConfig(model="fc", optimizer="sgd", lr=1e12, epochs=3, batch_size=100)
    result = train_run(cfg, gpu_data, "cuda")
    assert result.metadata["training_step"] == "cuda_graph"
    assert result.status == "diverged"


def test_cuda_spelled_either_way_is_one_device_and_the_data_is_not_copied(gpu_data):
    assert gpu_data.device == torch.device("cuda", torch.cuda.current_device())
    assert gpu_data.to("cuda") is gpu_data
    assert gpu_data.to(torch.device("cuda:0")) is gpu_data
