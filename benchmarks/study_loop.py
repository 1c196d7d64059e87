"""The study's own training loop, as the reference we compare against: torchvision's
FashionMNIST with `ToTensor`, a shuffling `DataLoader` (batch 100), and a plain PyTorch loop."""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.models import build_model
from fmnist_ray.training.train import make_loss, make_optimizer


def study_datasets(data_dir: str):
    to_tensor = transforms.ToTensor()
    train = datasets.FashionMNIST(data_dir, train=True, download=False, transform=to_tensor)
    test = datasets.FashionMNIST(data_dir, train=False, download=False, transform=to_tensor)
    return train, test


def study_train(
    cfg: RunConfig, data_dir: str, device: str = "cpu", subset: tuple[int, int] | None = None
) -> dict:
    """Train like the study does; returns training images/s and the final test accuracy.
    `subset`: the first (train, test) images only (smoke runs)."""
    torch.manual_seed(cfg.seed)
    train, test = study_datasets(data_dir)
    if subset:
        train, test = Subset(train, range(subset[0])), Subset(test, range(subset[1]))
    train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=cfg.batch_size, shuffle=False)
    model = build_model(cfg).to(device)
    criterion = make_loss(cfg)
    optimizer = make_optimizer(cfg, model.parameters())
    train_seconds = 0.0
    for _ in range(cfg.epochs):
        model.train()
        start = time.perf_counter()
        running_loss = 0.0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in test_loader:
            correct += (model(images.to(device)).argmax(1).cpu() == labels).sum().item()
    return {
        "images_per_s": len(train) * cfg.epochs / train_seconds,
        "train_seconds": train_seconds,
        "test_acc": correct / len(test),
    }
