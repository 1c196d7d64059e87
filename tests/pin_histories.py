"""Pinned short training histories: the configs, how each is trained, and the script that
writes tests/pinned_histories.json. Regenerate only together with a TRAINING_VERSION bump:
`PYTHONPATH=. python tests/pin_histories.py` (FMNIST_DATA_DIR or ../shared/data), then commit."""

import json
import os
import sys
from pathlib import Path

import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import load_fashion_mnist
from fmnist_ray.training.train import train_run

PINNED = Path(__file__).with_name("pinned_histories.json")
KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "last_lr")
TRAIN_IMAGES, TEST_IMAGES = 2000, 500  # the first ones of each set
OPTIONS = (
    {},
    {"model": "fc", "batch_size": 64},
    {"activation": "relu", "pooling": "max", "batchnorm": True, "dropout": True, "seed": 3},
    {"loss": "mse", "lr": 0.004, "channels": (8, 16, 32)},
    {"optimizer": "sgd", "lr": 0.05, "scheduler": "steplr", "step_size": 7, "gamma": 0.5},
    {"optimizer": "rmsprop", "loss": "multi_margin", "activation": "leaky_relu", "momentum": 0.5},
    {"weight_decay": 0.0001, "batch_size": 250, "activation": "relu"},
)
CONFIGS = [RunConfig(epochs=2, **options) for options in OPTIONS]


def history(cfg: RunConfig, data) -> list[dict]:
    """The metrics a pin holds, trained on the CPU with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = train_run(cfg, data.subset(TRAIN_IMAGES, TEST_IMAGES), "cpu").history
    finally:
        torch.set_num_threads(threads)
    return [{key: row[key] for key in KEYS} for row in rows]


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data = load_fashion_mnist(os.environ.get("FMNIST_DATA_DIR") or root.parent / "shared/data")
    pins = [{"config": cfg.model_dump(mode="json"), "run_id": cfg.run_id,
             "history": history(cfg, data)} for cfg in CONFIGS]  # fmt: skip
    PINNED.write_text(json.dumps({"torch": torch.__version__, "runs": pins}, indent=1) + "\n")
    print(f"wrote {len(pins)} pinned histories to {PINNED}", file=sys.stderr)


if __name__ == "__main__":
    main()
