"""Training: every loss, optimizer and the scheduler learn on a small real slice; the per-batch
StepLR rate, determinism, and the diverged path."""

import math

import pytest
import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.metrics import EPOCH, NAMES
from fmnist_ray.training.data import DeviceData
from fmnist_ray.training.models import build_model
from fmnist_ray.training.steps import EagerStep
from fmnist_ray.training.train import (
    DIVERGENCE_CHECK_STEPS,
    _train_epoch,
    evaluate,
    make_loss,
    make_optimizer,
    train_run,
)

CPU = torch.device("cpu")


def initial_test_loss(cfg, data):
    torch.manual_seed(cfg.seed)
    return evaluate(build_model(cfg), make_loss(cfg), DeviceData(data, CPU))[0]


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "cross_entropy"},
        {"loss": "mse"},
        {"loss": "multi_margin"},
        {"optimizer": "sgd", "lr": 0.05},
        {"optimizer": "rmsprop"},
        {"scheduler": "steplr", "step_size": 10, "gamma": 0.9},
        {"model": "fc"},
        {"activation": "relu", "pooling": "max", "batchnorm": True, "dropout": True},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_training_lowers_the_loss(small, options):
    cfg = RunConfig(epochs=2, batch_size=50, **options)
    result = train_run(cfg, small, CPU)
    assert result.status == "ok"
    assert len(result.history) == 2
    assert result.history[-1]["test_loss"] < 0.9 * initial_test_loss(cfg, small)
    assert result.history[-1]["test_acc"] > 0.4  # chance is 0.1
    assert set(result.history[0]) == {EPOCH, *NAMES}  # the vocabulary, nothing else


def test_steplr_is_stepped_every_batch(small):
    # 2,000 images / batch 100 = 20 steps per epoch; the rate halves every 7 steps.
    cfg = RunConfig(epochs=2, scheduler="steplr", step_size=7, gamma=0.5, lr=0.004)
    history = train_run(cfg, small, CPU).history
    assert history[0]["last_lr"] == pytest.approx(0.004 * 0.5 ** (20 // 7))
    assert history[1]["last_lr"] == pytest.approx(0.004 * 0.5 ** (40 // 7))


def test_same_config_same_history_on_cpu(small):
    cfg = RunConfig(epochs=2, dropout=True)
    keys = ["train_loss", "train_acc", "test_loss", "test_acc", "last_lr"]
    first, second = (train_run(cfg, small, CPU).history for _ in range(2))
    assert [[r[k] for k in keys] for r in first] == [[r[k] for k in keys] for r in second]
    other_seed = train_run(cfg.model_copy(update={"seed": 1}), small, CPU).history
    assert other_seed[0]["train_loss"] != first[0]["train_loss"]


def test_train_loss_is_the_mean_of_batch_losses(small):
    """Two epochs of 10 batches of 100 and a short one of 50, weights moving (lr 0.01): each
    epoch's train_loss is the plain mean of its 11 batch losses (not the per-image mean, not the
    last batch, not a running sum across epochs), train_acc the fraction of images right."""
    data = small.subset(1050, 100)
    cfg = RunConfig(model="fc", epochs=2, batch_size=100, lr=0.01)
    history = train_run(cfg, data, CPU).history
    torch.manual_seed(cfg.seed)  # the same start and batches, trained here by hand
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    device_data = DeviceData(data, CPU)
    for row in history:
        losses, sizes, correct = [], [], 0
        for x, y in device_data.train_batches(cfg.batch_size, shuffle):
            optimizer.zero_grad()
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            sizes.append(len(y))
            correct += (out.argmax(dim=1) == y).sum().item()
        assert sizes == [100] * 10 + [50]
        mean_of_batches = sum(losses) / len(losses)
        per_image = sum(loss * n for loss, n in zip(losses, sizes)) / sum(sizes)
        assert abs(mean_of_batches - per_image) > 1e-4  # the two definitions differ here
        assert row["train_loss"] == pytest.approx(mean_of_batches, rel=1e-6)
        assert row["train_acc"] == correct / 1050
    assert history[1]["train_loss"] < history[0]["train_loss"]  # it did learn


def test_non_finite_loss_ends_the_run_as_diverged(small):
    cfg = RunConfig(model="fc", optimizer="sgd", lr=1e12, epochs=5)
    result = train_run(cfg, small, CPU)
    assert result.status == "diverged"
    assert len(result.history) < 5
    assert not math.isfinite(result.history[-1]["train_loss"])


def test_progress_callback_sees_every_epoch(small):
    seen = []
    train_run(
        RunConfig(model="fc", epochs=3), small, CPU, on_epoch=lambda row: seen.append(row["epoch"])
    )
    assert seen == [1, 2, 3]


def test_divergence_stops_within_a_few_steps(small):
    """A NaN loss ends the epoch within DIVERGENCE_CHECK_STEPS batches, not at its end."""
    cfg = RunConfig(model="fc", optimizer="sgd", lr=1e12, epochs=1, batch_size=10)  # 200 steps
    data = DeviceData(small, CPU)
    served = []
    batches = data.train_batches

    def counting(batch_size, generator):
        for batch in batches(batch_size, generator):
            served.append(1)
            yield batch

    data.train_batches = counting
    torch.manual_seed(0)
    model = build_model(cfg)
    step = EagerStep(model, make_loss(cfg), make_optimizer(cfg, model.parameters()), CPU)
    loss, _ = _train_epoch(step, None, data, cfg, torch.Generator().manual_seed(0))
    assert not math.isfinite(loss)
    assert len(served) <= 2 * DIVERGENCE_CHECK_STEPS < 200


def test_data_already_on_the_device_is_used_as_is(small):
    data = DeviceData(small, CPU)
    assert data.to(CPU) is data
    result = train_run(RunConfig(model="fc", epochs=1), data, CPU)
    assert result.status == "ok"
    assert result.final["test_acc"] > 0.5
