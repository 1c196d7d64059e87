"""`train_run(cfg, data, device)`: one run of the study, epoch by epoch, returning its history.
Pure: no files, no Ray, no printing; progress goes to an optional callback."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..spec.config import RunConfig
from ..spec.result import RunResult
from .data import DeviceData, FashionMNIST, canonical
from .models import build_model
from .steps import EagerStep, make_step

EVAL_BATCH = 1000
# How often (in batches) the running loss is checked for NaN/inf: one host sync per this many.
DIVERGENCE_CHECK_STEPS = 10


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` if given, else CUDA when available, else the CPU; with its index."""
    if requested:
        return canonical(requested)
    return canonical("cuda" if torch.cuda.is_available() else "cpu")


def make_loss(cfg: RunConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Batch-mean loss of the model's output against integer labels."""
    if cfg.loss == "cross_entropy":
        return nn.CrossEntropyLoss()
    if cfg.loss == "multi_margin":
        return nn.MultiMarginLoss()
    # MSE: the model already ends in a softmax; targets are one-hot.
    return lambda probs, y: F.mse_loss(probs, F.one_hot(y, num_classes=10).to(probs.dtype))


def make_optimizer(cfg: RunConfig, params, **options) -> torch.optim.Optimizer:
    """Adam, plain SGD (no momentum unless set) or RMSprop; other arguments at PyTorch defaults.
    `options` (a CUDA graph's `capturable`, a tensor `lr`) override."""
    extra = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.momentum is not None:
        extra["momentum"] = cfg.momentum
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
    return optimizers[cfg.optimizer](params, **(extra | options))


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
    """StepLR stepped after every batch (as in the study), or None."""
    if cfg.scheduler == "steplr":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


def where_it_runs(device: torch.device) -> RunResult:
    """An empty result whose metadata records the device, its name, the threads and torch's
    versions (plain strings: torch's TorchVersion would make a Ray driver import torch)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    versions = {"torch": str(torch.__version__), "cuda": torch.version.cuda}
    facts = {"device": str(device), "device_name": name, "torch_threads": torch.get_num_threads(),
             "versions": versions}  # fmt: skip
    return RunResult(metadata=facts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn, data: DeviceData) -> tuple[float, float]:
    """Mean per-example loss and accuracy on the (unshuffled) test set."""
    model.eval()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    for x, y in data.test_batches(EVAL_BATCH):
        out = model(x)
        loss_sum += loss_fn(out, y) * len(y)
        correct += (out.argmax(dim=1) == y).sum()
    n = len(data.test_y)
    return loss_sum.item() / n, correct.item() / n


def _train_epoch(step: EagerStep, scheduler, data, cfg, shuffle) -> tuple[float, float]:
    """One epoch; returns (mean batch loss, accuracy). Stops early, returning a non-finite loss,
    within DIVERGENCE_CHECK_STEPS batches of the first non-finite one."""
    step.model.train()
    step.reset()
    batches = seen = 0
    for x, y in data.train_batches(cfg.batch_size, shuffle):
        step(x, y)
        if scheduler is not None:
            scheduler.step()
        batches += 1
        seen += len(y)
        if batches % DIVERGENCE_CHECK_STEPS == 0 and not torch.isfinite(step.loss_sum).item():
            break
    return step.loss_sum.item() / batches, step.correct.item() / seen


def train_run(
    cfg: RunConfig,
    data: FashionMNIST | DeviceData,
    device: torch.device | str | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    cuda_graphs: bool = True,
) -> RunResult:
    """Train one config; a NaN/inf loss stops the run with status `diverged`, history kept.
    On CUDA the step is a CUDA graph unless `cuda_graphs` is False (fmnist_ray.steps)."""
    device = pick_device(str(device) if device is not None else None)
    data = data.to(device) if isinstance(data, DeviceData) else DeviceData(data, device)
    torch.manual_seed(cfg.seed)  # weights and dropout
    shuffle = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    step = make_step(cfg, model, make_loss(cfg), make_optimizer, device, cuda_graphs)
    scheduler = make_scheduler(cfg, step.optimizer)
    result = where_it_runs(device)

    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = _train_epoch(step, scheduler, data, cfg, shuffle)
        _sync(device)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, step.loss_fn, data)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "last_lr": float(step.optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - start,
            "images_per_s": data.train_size / train_seconds,
        }
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            result.status = "diverged"
            break
    result.metadata["training_step"] = step.mode
    return result
