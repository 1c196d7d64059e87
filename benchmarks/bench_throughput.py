"""Training throughput of base `lenet5`: this project's on-device loop vs the study's own loop
(torchvision DataLoader + ToTensor, batch 100, same model, loss and optimizer), same process,
same device, same threads. Prints images/s of each and the ratio.

    python benchmarks/bench_throughput.py --data-dir ../shared/data [--device cuda] [--epochs 2]
        [--repeats 2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from study_loop import study_train

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import DeviceData, load_fashion_mnist
from fmnist_ray.training.train import pick_device, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    args = parser.parse_args()
    device = pick_device(args.device)
    subset = None
    if args.smoke:
        subset, args.epochs, args.repeats = (1_000, 500), 1, 1
        print("smoke mode: 1,000 training and 500 test images, 1 epoch, 1 repeat; "
              "the numbers mean nothing")  # fmt: skip
    cfg = RunConfig(epochs=args.epochs, seed=0)
    data = load_fashion_mnist(args.data_dir, download=False)
    data = DeviceData(data.subset(*subset) if subset else data, device)
    ours, theirs = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
        history = train_run(cfg, data, device).history
        ours.append(statistics.mean(row["images_per_s"] for row in history))
        theirs.append(study_train(cfg, args.data_dir, str(device), subset)["images_per_s"])
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(
        f"device: {device} ({name}); torch {torch.__version__}; lenet5 base, batch 100, "
        f"{args.epochs} epochs x {args.repeats} repeats\n"
    )
    print("| loop | training images/s (median) | all measurements |")
    print("|---|---|---|")
    print(
        f"| fmnist-ray (on-device batches) | {statistics.median(ours):,.0f} | "
        f"{', '.join(f'{v:,.0f}' for v in ours)} |"
    )
    print(
        f"| study (DataLoader + ToTensor) | {statistics.median(theirs):,.0f} | "
        f"{', '.join(f'{v:,.0f}' for v in theirs)} |"
    )
    print(f"\nratio fmnist-ray / study: {ratio:.2f}x")


if __name__ == "__main__":
    main()
