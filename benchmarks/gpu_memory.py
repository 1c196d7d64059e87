"""GPU memory of one trainer's process over many runs (issue 22's goal: flat within 5% from run 5
to the last), trained as a long-lived trainer trains them (trainer.Bench, one DeviceData, run
after run), with configs whose short last batch gets its own graph. Prints a line per run and a
summary line; writes the numbers as JSON.

    python benchmarks/gpu_memory.py [--runs 24] [--epochs 4] [--out FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fmnist_ray.runner.trainer import Bench
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import load_fashion_mnist

MIB = 2**20
# Batch sizes that leave a short last batch on 3,000 images (64: 46 + 56; 96: 31 + 24; 1280: 2 + 440).
CONFIGS = [
    dict(batch_size=64),
    dict(model="fc", batch_size=96),
    dict(batch_size=64, dropout=True, activation="relu"),
    dict(batch_size=96, channels=[32, 64, 256], pooling="max", batchnorm=True, activation="relu"),
    dict(batch_size=1280),
    dict(batch_size=64, optimizer="rmsprop", scheduler="steplr", step_size=10, gamma=0.8),
    dict(batch_size=96, optimizer="sgd", lr=0.05, momentum=0.9),
    dict(batch_size=64, loss="mse"),
]


def used(device: str) -> int:
    """The GPU's memory in use (what the other trainers on it see), after the queued work."""
    if not device.startswith("cuda"):
        return 0
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return total - free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4, help="4: the short batch is captured")
    parser.add_argument("--out", default=None, help="write the numbers here as JSON")
    parser.add_argument("--smoke", action="store_true", help="3 runs of 1 epoch (CPU if no GPU)")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.epochs = 3, 1
    cuda = torch.cuda.is_available()
    data = load_fashion_mnist(args.data_dir, download=False).subset(3_000, 1_000)
    bench = Bench(data, 1, ["0"] if cuda else [], None)
    print(
        f"device {bench.device}: {torch.cuda.get_device_name() if cuda else 'cpu'}, "
        f"torch {torch.__version__}; {args.runs} runs of {args.epochs} epochs in one process"
    )
    rows = []
    for i in range(args.runs):
        cfg = RunConfig(epochs=args.epochs, seed=i, **CONFIGS[i % len(CONFIGS)])
        start = time.perf_counter()
        step = bench.train(cfg).metadata["training_step"]
        gpu_used = used(bench.device)
        reserved = torch.cuda.memory_reserved() if cuda else 0
        rows.append(dict(run=i, step=step, seconds=time.perf_counter() - start,
                         used_mib=gpu_used / MIB, reserved_mib=reserved / MIB))  # fmt: skip
        print(
            f"run {i:2d} {cfg.describe():60.60s} {step:12.12s} "
            f"{rows[-1]['seconds']:5.2f} s  GPU used {gpu_used / MIB:8.1f} MiB  "
            f"reserved {reserved / MIB:8.1f} MiB",
            flush=True,
        )
    used_mib = [row["used_mib"] for row in rows]
    # Runs cycle through len(CONFIGS) configs of different sizes: memory is compared between runs of
    # the same config a cycle or more apart (growth), and as the process's running peak.
    start = min(4, len(rows) - 1)
    pairs = [(used_mib[i], used_mib[j]) for i in range(start, len(rows))
             for j in range(i + len(CONFIGS), len(rows), len(CONFIGS))]  # fmt: skip
    growth = max(((b - a) / a for a, b in pairs if a), default=0.0)
    peak_growth = (max(used_mib) - max(used_mib[: start + 1])) / max(max(used_mib[: start + 1]), 1)
    steps = sorted({row["step"] for row in rows})
    print(
        f"SUMMARY memory: {len(rows)} runs in one process, GPU used {min(used_mib):.0f}-"
        f"{max(used_mib):.0f} MiB by config; the same config a cycle later from run {start + 1} on: "
        f"{growth:+.1%} at most; running peak from run {start + 1} to {len(rows)}: "
        f"{peak_growth:+.1%} (goal: within 5%); steps {steps}"
    )
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"rows": rows, "growth_same_config": growth, "peak_growth": peak_growth,
                       "steps": steps}, out, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
