"""A grid of base LeNet-5 runs through `fmnist-ray run` (long-lived trainers, fractional GPUs)
against one graphed run alone in this process: aggregate training images/s end to end and while
training, with where each run ran (GPU share, runs on its GPU at once, trainer). Issue 22's goal:
the 24-run grid at >= 5x one run alone. Prints a summary line; writes the numbers as JSON.

    python benchmarks/gpu_grid.py --data-dir DIR --work DIR [--runs 24] [--epochs 2]
        [--gpus-per-run 0.125] [--out FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import find_run_files, read_metadata
from fmnist_ray.training.data import load_fashion_mnist
from fmnist_ray.training.train import train_run


def alone(data_dir: str | None, epochs: int, subset: tuple[int, int] | None) -> float:
    """Training images/s of one base LeNet-5 run's last epoch, alone on this process's device."""
    data = load_fashion_mnist(data_dir, download=False)
    data = data.subset(*subset) if subset else data
    outcome = train_run(RunConfig(epochs=epochs), data)
    return outcome.history[-1]["images_per_s"]


def grid(args, folder: Path) -> float:
    """Run the grid with the CLI; its wall time in seconds."""
    seeds = ", ".join(map(str, range(args.runs)))
    experiment = folder / "grid.toml"
    experiment.write_text(f'seeds = [{seeds}]\n[base]\nmodel = "lenet5"\nepochs = {args.epochs}\n')
    command = [sys.executable, "-m", "fmnist_ray", "run", str(experiment),
               "--results", str(folder / "results"), "--gpus-per-run", str(args.gpus_per_run)]  # fmt: skip
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def training_span(metas: list[dict]) -> float:
    """Seconds from the first run's start to the last run's end (trainers started, data in)."""
    times = [datetime.fromisoformat(m[key]) for m in metas for key in ("started_at", "ended_at")]
    return (max(times) - min(times)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--work", help="an empty folder for the grid's results (required)")
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--gpus-per-run", type=float, default=0.125)
    parser.add_argument("--out", default=None, help="write the numbers here as JSON")
    parser.add_argument("--smoke", action="store_true", help="2 runs of 1 epoch, on the CPU")
    args = parser.parse_args()
    subset = None
    if args.smoke:
        args.runs, args.epochs, args.gpus_per_run, subset = 2, 1, 0.0, (2_000, 500)
    one = alone(args.data_dir, args.epochs, subset)
    if args.smoke:  # the grid itself on the full data would take minutes on a CPU
        args.runs = 0
        print(f"SUMMARY grid (smoke): one run alone {one:,.0f} images/s; grid skipped")
        return
    if not args.work:
        parser.error("--work is required")
    folder = Path(args.work)
    folder.mkdir(parents=True, exist_ok=True)
    wall = grid(args, folder)
    metas = [read_metadata(p) for p in find_run_files([folder / "results" / "grid"])]
    images = len(metas) * args.epochs * 60_000
    span = training_span(metas)
    numbers = dict(
        runs=len(metas), wall_s=wall, training_span_s=span, alone_images_per_s=one,
        end_to_end_images_per_s=images / wall, training_images_per_s=images / span,
        trainers=len({m["trainer_pid"] for m in metas}),
        steps=dict(Counter(m["training_step"] for m in metas)),
        gpu_share=dict(Counter(str(m.get("gpu_share")) for m in metas)),
        runs_on_gpu=dict(Counter(str(m.get("runs_on_gpu")) for m in metas)),
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    )  # fmt: skip
    print(json.dumps(numbers, indent=1))
    print(
        f"SUMMARY grid: {len(metas)} runs x {args.epochs} epochs at {args.gpus_per_run:g} GPU "
        f"each: {numbers['end_to_end_images_per_s']:,.0f} images/s end to end ({wall:.1f} s), "
        f"{numbers['training_images_per_s']:,.0f} while training ({span:.1f} s) = "
        f"{numbers['training_images_per_s'] / one:.2f}x one run alone ({one:,.0f}; goal >= 5x); "
        f"{numbers['trainers']} trainers, runs on a GPU at once {numbers['runs_on_gpu']}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
