"""The driver at scale: N runs of a fixed length (an injected training function that sleeps) on S
logical CPU slots, through `run_grid` and through Ray Tune on the same Ray, in one script. Prints
each one's overhead against the minimum (N x length / S), split into start-up (until the first
run starts), gaps (between the first start and the last end, beyond the minimum) and tail (after
the last run ends), and the driver's CPU per run.

    python benchmarks/bench_scale.py [--runs 2000] [--seconds 0.2] [--slots 16] [--no-tune]
        [--smoke]

No dataset is read: the trainers get a few blank images (they import torch all the same, as a
real grid's do). Ray Tune is in the `bench` extra; without it, its line says it was skipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.spec.result import RunResult
from fmnist_ray.store.results import read_metadata, run_span
from fmnist_ray.store.tree import read_tree
from fmnist_ray.training.data import FashionMNIST

SECONDS = 0.2  # each run's length (set by main)


def sleeper(cfg, data, device, on_epoch=None) -> RunResult:
    """A run of SECONDS: one epoch reported, as training would."""
    start = time.time()
    time.sleep(SECONDS)
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.5, "test_acc": 0.8,
           "last_lr": cfg.lr, "seconds": time.time() - start, "images_per_s": 1.0}  # fmt: skip
    if on_epoch is not None:
        on_epoch(row)
    return RunResult(history=[row])


def blank_data() -> FashionMNIST:
    images, labels = np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64)
    return FashionMNIST(images, labels, images, labels, "blank")


def split(wall_start: float, spans: list[tuple[float, float]], wall_end: float, minimum: float):
    first_start = min(start for start, _ in spans)
    last_end = max(end for _, end in spans)
    return {
        "wall": wall_end - wall_start,
        "start-up": first_start - wall_start,
        "gaps": (last_end - first_start) - minimum,
        "tail": wall_end - last_end,
    }


def fmnist_ray_way(runs: int, work: Path) -> dict:
    (work / "exp").mkdir()
    (work / "exp" / "scale.toml").write_text(
        f'seeds = {list(range(runs))}\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ncpus = 1\n'
    )
    plan = make_plan(load_experiments([work / "exp"]), work / "results")
    cpu, start = time.process_time(), time.time()
    outcome = run_grid(plan, blank_data(), train_fn=sleeper, stream=open("/dev/null", "w"))
    end, cpu = time.time(), time.process_time() - cpu
    assert outcome.exit_code == 0 and len(outcome.trained) == runs, outcome
    spans = []
    for path in read_tree([plan.root]).by_id().values():
        started, ended = run_span(read_metadata(path[0]))
        spans.append((started.timestamp(), ended.timestamp()))
    return {"spans": spans, "start": start, "end": end, "cpu": cpu}


def tune_trainable(config: dict) -> dict:
    start = time.time()
    time.sleep(config["seconds"])
    return {"started": start, "ended": time.time()}


def tune_way(runs: int, seconds: float, work: Path) -> dict:
    try:
        from ray import tune
    except ImportError as error:  # ray without the `tune` extra
        return {"skipped": str(error)}
    trainable = tune.with_resources(tune_trainable, {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"seed": tune.grid_search(list(range(runs))), "seconds": seconds},
        run_config=tune.RunConfig(storage_path=str(work / "tune"), verbose=0),
    )
    cpu, start = time.process_time(), time.time()
    results = tuner.fit()
    end, cpu = time.time(), time.process_time() - cpu
    assert not results.errors, results.errors
    frame = results.get_dataframe()
    spans = list(zip(frame["started"], frame["ended"], strict=True))
    return {"spans": spans, "start": start, "end": end, "cpu": cpu}


def show(name: str, got: dict, runs: int, minimum: float) -> None:
    if "skipped" in got:
        print(f"| {name} | skipped: {got['skipped']} | | | | | |")
        return
    parts = split(got["start"], got["spans"], got["end"], minimum)
    over = parts["wall"] - minimum
    print(f"| {name} | {parts['wall']:.1f} | {over / minimum:+.1%} | {parts['start-up']:.1f} | "
          f"{parts['gaps']:.1f} | {parts['tail']:.1f} | {got['cpu'] / runs * 1e3:.2f} |",
          flush=True)  # fmt: skip


def main() -> None:
    global SECONDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--data-dir", default=None, help="unused (no dataset is read)")
    parser.add_argument("--smoke", action="store_true", help="8 runs of 0.05 s on 2 slots")
    parser.add_argument("--no-tune", action="store_true", help="run_grid alone")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.slots = 8, 0.05, 2
    SECONDS = args.seconds
    minimum = args.runs * args.seconds / args.slots
    ray.init(num_cpus=args.slots, include_dashboard=False, logging_level="ERROR")
    head = f"{args.runs} runs of {args.seconds:g} s on {args.slots} slots: minimum {minimum:.1f} s"
    try:
        with tempfile.TemporaryDirectory() as work:
            ours = fmnist_ray_way(args.runs, Path(work))
            print(head + "\n" + TABLE_HEAD, flush=True)  # ours first: Tune can take long
            show("fmnist-ray run_grid", ours, args.runs, minimum)
            theirs = (
                {"skipped": "--no-tune"}
                if args.no_tune
                else tune_way(args.runs, args.seconds, Path(work))
            )
    finally:
        ray.shutdown()
    print(head + "\n" + TABLE_HEAD)
    show("fmnist-ray run_grid", ours, args.runs, minimum)
    show("Ray Tune", theirs, args.runs, minimum)
    sys.stdout.flush()


TABLE_HEAD = """| way | wall s | overhead | start-up s | gaps s | tail s | driver CPU ms/run |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |"""


if __name__ == "__main__":
    main()
