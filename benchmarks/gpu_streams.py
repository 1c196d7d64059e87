"""Several runs in one process, each with its own captured step on its own CUDA stream, stepped
in turn (issue 22's next step, measured before it is built): aggregate training images/s of K
base LeNet-5 runs at once against one run alone. Separate processes time-slice a GPU (no MPS);
streams of one process can overlap their small kernels. Prints a line per K and a summary line;
writes the numbers as JSON.

    python benchmarks/gpu_streams.py [--members 1 2 4 8 16] [--out FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import time
from contextlib import nullcontext

import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.data import DeviceData, load_fashion_mnist
from fmnist_ray.training.models import build_model
from fmnist_ray.training.steps import make_step
from fmnist_ray.training.train import make_loss, make_optimizer


class Member:
    """One run: its model, captured step, data order and stream."""

    def __init__(self, cfg: RunConfig, data: DeviceData):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg).to(data.device)
        self.step = make_step(cfg, model, make_loss(cfg), make_optimizer, data.device)
        self.cfg, self.data = cfg, data
        self.order = torch.Generator().manual_seed(cfg.seed)
        self.stream = torch.cuda.Stream(data.device) if data.device.type == "cuda" else None

    def context(self):
        return torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()

    def batches(self):
        """The epoch's batches; each is cut on the member's stream (`epoch` steps it there)."""
        return self.data.train_batches(self.cfg.batch_size, self.order)


def epoch(members: list[Member]) -> float:
    """One epoch of every member, a step of each in turn; seconds until the GPU is done."""
    for member in members:
        member.step.model.train()
    start = time.perf_counter()
    iterators = [member.batches() for member in members]
    done = False
    while not done:
        for member, batches in zip(members, iterators, strict=True):
            with member.context():
                batch = next(batches, None)
                if batch is None:
                    done = True
                    continue
                member.step(*batch)
    if members[0].stream is not None:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--out", default=None, help="write the numbers here as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU if no GPU")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_fashion_mnist(args.data_dir, download=False)
    if args.smoke:
        data, args.members = data.subset(1_000, 100), [1, 2]
    data = DeviceData(data, device)
    rows = []
    faulthandler.dump_traceback_later(15, repeat=True, file=sys.stderr)  # where a slow K spends it
    for k in args.members:
        members = [Member(RunConfig(seed=seed), data) for seed in range(k)]
        warm = epoch(members)  # warm-up and capture
        print(f"{k:3d} runs: first epoch (warm-up, capture) {warm:.2f} s", flush=True)
        seconds = epoch(members)
        rows.append(dict(members=k, seconds=seconds, images_per_s=k * data.train_size / seconds,
                         steps=sorted({m.step.mode for m in members})))  # fmt: skip
        print(f"{k:3d} runs in one process: epoch {seconds:6.2f} s, "
              f"{rows[-1]['images_per_s']:12,.0f} training images/s, {rows[-1]['steps']}",
              flush=True)  # fmt: skip
        del members
    alone = rows[0]["images_per_s"]
    best = max(rows, key=lambda row: row["images_per_s"])
    print(
        f"SUMMARY streams: best {best['images_per_s'] / alone:.2f}x one run alone "
        f"({best['members']} runs on {best['members']} streams, {best['images_per_s']:,.0f} "
        f"vs {alone:,.0f} images/s; goal for the grid >= 5x)"
    )
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"rows": rows, "alone": alone}, out, indent=1)


if __name__ == "__main__":
    main()
