"""Accuracy check: `fc` and base `lenet5`, 20 epochs, defaults, seed 0; final test accuracy.

python benchmarks/bench_accuracy.py --data-dir ../shared/data [--device cuda] [--smoke]
"""

from __future__ import annotations

import argparse
import time

import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import load_fashion_mnist
from fmnist_ray.training.train import pick_device, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    args = parser.parse_args()
    data = load_fashion_mnist(args.data_dir, download=True)
    if args.smoke:
        data, args.epochs = data.subset(1_000, 500), 1
        print("smoke mode: 1,000 training and 500 test images, 1 epoch; the numbers mean nothing")
    device = pick_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(
        "| model | epochs | seed | final test_acc | best epoch test_acc | final train_loss | wall s |"
    )
    print("|---|---|---|---|---|---|---|")
    for model in ("fc", "lenet5"):
        cfg = RunConfig(model=model, epochs=args.epochs, seed=0)
        start = time.perf_counter()
        outcome = train_run(cfg, data, device)
        wall = time.perf_counter() - start
        final = outcome.final
        best = max(row["test_acc"] for row in outcome.history)
        print(
            f"| {model} | {args.epochs} | 0 | {final['test_acc']:.4f} | {best:.4f} | "
            f"{final['train_loss']:.4f} | {wall:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
