"""Where a training step's time goes on a GPU: one epoch of base lenet5 and of the combined wide
model, with `train_run`'s eager step (as is, and with fused Adam) and with its CUDA-graph step
(the default on CUDA). Prints training images/s per variant and model.

    python benchmarks/bench_gpu_step.py --data-dir DIR [--smoke]
"""

from __future__ import annotations

import argparse

import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training import train
from fmnist_ray.training.data import DeviceData, load_fashion_mnist

CONFIGS = {
    "lenet5 base": RunConfig(epochs=2),
    "combined wide": RunConfig(
        epochs=2, channels=[32, 64, 256], pooling="max", batchnorm=True, activation="relu"
    ),
}


def as_train_run(cfg: RunConfig, data: DeviceData, cuda_graphs: bool, **adam) -> float:
    """images/s of `train_run`'s second epoch (the first warms up), optionally with Adam options."""
    make = train.make_optimizer
    if adam:
        train.make_optimizer = lambda c, p, **o: torch.optim.Adam(p, lr=c.lr, **(adam | o))
    try:
        outcome = train.train_run(cfg, data, data.device, cuda_graphs=cuda_graphs)
        return outcome.history[-1]["images_per_s"]
    finally:
        train.make_optimizer = make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, checks the code only; without CUDA the eager variants run on the CPU",
    )
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not (cuda or args.smoke):
        raise SystemExit("bench_gpu_step needs CUDA (--smoke runs its eager variants on the CPU)")
    data = load_fashion_mnist(args.data_dir, download=False)
    if args.smoke:
        data = data.subset(1_000, 500)
        print("smoke mode: 1,000 training and 500 test images; the numbers mean nothing")
    data = DeviceData(data, torch.device("cuda" if cuda else "cpu"))
    name = torch.cuda.get_device_name() if cuda else "CPU (no CUDA: the graph step is not run)"
    print(f"{name}, torch {torch.__version__}, batch 100, Adam\n")
    print("| model | eager step | eager, fused Adam | CUDA graph step | graph / eager |")
    print("|---|---|---|---|---|")
    for model, cfg in CONFIGS.items():
        eager = as_train_run(cfg, data, cuda_graphs=False)
        fused = as_train_run(cfg, data, cuda_graphs=False, fused=True)
        if cuda:
            graph = as_train_run(cfg, data, cuda_graphs=True)
            graphed = f"{graph:,.0f} | {graph / eager:.2f}x"
        else:
            graphed = "needs CUDA | -"
        print(f"| {model} | {eager:,.0f} | {fused:,.0f} | {graphed} |", flush=True)


if __name__ == "__main__":
    main()
