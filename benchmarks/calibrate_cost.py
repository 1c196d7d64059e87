"""Fit the constants of fmnist_ray/planning/cost.py: time one training epoch and one test pass of several
configs on one CPU thread, then non-negative least-squares the per-MAC, per-image and per-step costs.

    python benchmarks/calibrate_cost.py --data-dir ../shared/data [--train 12000] [--smoke]
"""

import argparse
import time

import numpy as np
import torch
from scipy.optimize import nnls

from fmnist_ray.planning.cost import estimate_seconds, work_per_image
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import DeviceData, load_fashion_mnist
from fmnist_ray.training.models import build_model
from fmnist_ray.training.steps import make_step
from fmnist_ray.training.train import _train_epoch, evaluate, make_loss, make_optimizer

CONFIGS = [
    RunConfig(batch_size=10),
    RunConfig(),
    RunConfig(batch_size=1280),
    RunConfig(channels=(32, 64, 256), pooling="max", batchnorm=True, activation="relu"),
    RunConfig(batchnorm=True),
    RunConfig(model="fc"),
]


def time_config(cfg: RunConfig, data: DeviceData) -> tuple[float, float]:
    """Seconds of one training epoch and of one test pass, the way `train_run` does them."""
    torch.manual_seed(0)
    model = build_model(cfg)
    step = make_step(cfg, model, make_loss(cfg), make_optimizer, data.device, cuda_graphs=False)
    start = time.perf_counter()
    _train_epoch(step, None, data, cfg, torch.Generator().manual_seed(0))
    train = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(model, step.loss_fn, data)
    return train, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train", type=int, default=12_000, help="training images per epoch")
    parser.add_argument("--test", type=int, default=2_000, help="test images per pass")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    args = parser.parse_args()
    if args.smoke:
        args.train, args.test = 1_000, 500
        print("smoke mode: 1,000 training and 500 test images; the numbers mean nothing\n")
    torch.set_num_threads(1)
    full = load_fashion_mnist(args.data_dir, download=False)
    data = DeviceData(full.subset(args.train, args.test), torch.device("cpu"))
    rows, train_times, test_rows, test_times = [], [], [], []
    for cfg in CONFIGS:
        train, test = time_config(cfg, data)
        (conv, linear, values), steps = work_per_image(cfg), -(-args.train // cfg.batch_size)
        rows.append([args.train * conv, args.train * linear, args.train * values, steps])
        train_times.append(train)
        test_rows.append([args.test * (conv + linear)])
        test_times.append(test)
        print(
            f"{cfg.describe():60s} train {train:6.2f}s  test {test:5.2f}s  MACs {conv + linear:,}"
        )
    # Non-negative: every term is a cost, and a negative one would only fit the noise.
    fit, _ = nnls(np.array(rows, float), np.array(train_times))
    test_fit, _ = nnls(np.array(test_rows, float), np.array(test_times))
    names = ["CONV_MAC", "LINEAR_MAC", "HIDDEN_VALUE", "STEP"]
    for name, value in zip(names, fit):
        print(f"SECONDS_PER_{name} = {value:.3g}")
    print(f"SECONDS_PER_TEST_MAC = {test_fit[0]:.3g}")
    print("\nwith the constants now in cost.py, whole 20-epoch runs:")
    for cfg in CONFIGS:
        print(
            f"{cfg.describe():60s} {estimate_seconds(cfg.model_copy(update={'epochs': 20})):7.0f}s"
        )


if __name__ == "__main__":
    main()
