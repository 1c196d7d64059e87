"""The same 4-run grid (base lenet5, 2 epochs, seeds 0-3) trained three ways on this machine:
(a) `fmnist-ray run` (a trainer per CPU), (b) the study's own loop, one run after another in
one process with torch's default threads, (c) Ray Tune (`tune.Tuner`, 1 CPU per trial) running
this project's training function. Prints aggregate training images/s, the ratios, and the
runner's overhead: per run in all, and apart as the one-time start and the cost per run.

    python benchmarks/bench_grid.py --data-dir ../shared/data [--smoke] [--baseline CHECKOUT]

`--baseline CHECKOUT`: (a) again with that checkout's fmnist_ray, e.g. a clone at an older
commit, so before and after share one run of (b) and (c).

`--smoke`: fc, 1 epoch, seed 0, each way as above (checks the code; the numbers mean
nothing); (c) is skipped, with a line saying so, when Ray Tune is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import torch

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import find_run_files, read_metadata, read_run, run_span
from fmnist_ray.store.tree import read_results

sys.path.insert(0, str(Path(__file__).parent))
from study_loop import study_train  # noqa: E402

SEEDS = (0, 1, 2, 3)
EPOCHS = 2
MODEL = "lenet5"


def smoke_sizes() -> None:
    """Shrink the grid for a smoke run: fc, 1 epoch, 1 seed."""
    global SEEDS, EPOCHS, MODEL
    SEEDS, EPOCHS, MODEL = (0,), 1, "fc"


def images() -> int:
    return len(SEEDS) * EPOCHS * 60_000


def experiment() -> str:
    return f"""description = "benchmark: base {MODEL}, {EPOCHS} epochs, seeds {SEEDS}"
seeds = {list(SEEDS)}
[base]
model = "{MODEL}"
epochs = {EPOCHS}
[resources]
cpus = 1
"""


def way_a_fmnist_ray(data_dir: str, work: Path, cpus: int, code: str | None = None) -> dict:
    """`fmnist-ray run` of the grid; `code`: a checkout whose fmnist_ray runs instead (a
    baseline, e.g. a clone at an older commit)."""
    work = work / ("a0" if code else "a")
    work.mkdir()
    exp = work / "bench4.toml"
    exp.write_text(experiment())
    results = work / "results"
    command = [sys.executable, "-m", "fmnist_ray", "run", str(exp), "--data-dir", data_dir,
               "--results", str(results), "--num-cpus", str(cpus)]  # fmt: skip
    launched = datetime.now(UTC)
    start = time.perf_counter()
    env = os.environ | ({"PYTHONPATH": str(Path(code).resolve())} if code else {})
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    table = read_results([results])
    epoch_seconds = pc.sum(table.column("seconds")).as_py()
    runs = []
    for path in find_run_files([results]):
        epochs = pc.sum(read_run(path).column("seconds")).as_py()
        runs.append((*run_span(read_metadata(path)), epochs))
    slots = cpus  # 1 CPU per run
    inside = sum((end - begin).total_seconds() - epochs for begin, end, epochs in runs)
    return {
        "wall": wall,
        # Slot-seconds not spent in epochs (interpreter and Ray start, data hand-off, model
        # build, writing, the tail where a slot idles), shared out per run.
        "overhead_per_run": (wall * slots - epoch_seconds) / len(SEEDS),
        "in_task_overhead": inside / len(SEEDS),
    } | start_and_per_run(runs, launched, launched + timedelta(seconds=wall))


def start_and_per_run(runs: list[tuple], launched: datetime, exited: datetime) -> dict:
    """The runner's costs apart, from each run's (start, end, epoch seconds): the one-time start
    (launch to a slot's first run: interpreter, Ray, data, trainer), the cost per run (a run's
    time outside its epochs plus the gap before it on its slot), and the end (last run to exit).
    Slots are recovered from the spans (a run goes to the slot free earliest before its start),
    so the same measure reads runs from tasks and from trainers."""
    slot_ends: list[datetime] = []
    firsts, per_run = [], []
    for begin, end, epochs in sorted(runs):
        free = [i for i, last in enumerate(slot_ends) if last <= begin]
        inside = (end - begin).total_seconds() - epochs
        if free:
            i = min(free, key=lambda i: slot_ends[i])
            per_run.append(inside + (begin - slot_ends[i]).total_seconds())
            slot_ends[i] = end
        else:
            firsts.append((begin - launched).total_seconds())
            per_run.append(inside)
            slot_ends.append(end)
    return {
        "one_time_start": sum(firsts) / len(firsts),
        "cost_per_run": sum(per_run) / len(per_run),
        "end": (exited - max(slot_ends)).total_seconds(),
    }


def way_b_study_loop(data_dir: str) -> dict:
    for seed in SEEDS:
        study_train(RunConfig(model=MODEL, epochs=EPOCHS, seed=seed), data_dir)
    return {}


def tune_trainable(config: dict, data) -> None:
    from ray import tune

    from fmnist_ray.training.train import train_run

    torch.set_num_threads(1)
    cfg = RunConfig(model=config["model"], epochs=config["epochs"], seed=config["seed"])
    train_run(cfg, data, "cpu", on_epoch=lambda row: tune.report(dict(row)))


def way_c_ray_tune(data_dir: str, work: Path, cpus: int) -> dict:
    import ray

    try:
        from ray import tune
    except ImportError as error:  # ray without the `tune` extra (pandas, tensorboardX, ...)
        return {"skipped": str(error)}

    from fmnist_ray.training.data import load_fashion_mnist

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    try:
        data = load_fashion_mnist(data_dir, download=False)
        trainable = tune.with_resources(tune.with_parameters(tune_trainable, data=data), {"cpu": 1})
        tuner = tune.Tuner(
            trainable,
            param_space={"seed": tune.grid_search(list(SEEDS)), "model": MODEL, "epochs": EPOCHS},
            run_config=tune.RunConfig(storage_path=str(work / "tune"), verbose=0),
        )
        results = tuner.fit()
        assert not results.errors, results.errors
    finally:
        ray.shutdown()
    return {}


def in_fresh_process(way: str, data_dir: str, work: Path, smoke: bool) -> dict:
    """Time one way end to end in a new interpreter, as (a) is: imports and startup included."""
    command = [sys.executable, __file__, "--data-dir", data_dir, "--way", way, "--work", str(work)]
    command += ["--smoke"] if smoke else []
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"wall": wall}


def print_table(a: dict, b: dict, c: dict | None, a0: dict | None = None) -> None:
    rows = [("(a) fmnist-ray run", a), ("(b) study loop, sequential", b), ("(c) Ray Tune", c)]
    if a0 is not None:
        rows.insert(1, ("(a0) fmnist-ray run, baseline code", a0))
    print("| way | wall s (end to end) | aggregate training images/s | vs (b) |")
    print("|---|---|---|---|")
    for name, result in rows:
        if result is None:
            print(f"| {name} | skipped: Ray Tune is not installed | - | - |")
            continue
        rate = images() / result["wall"]
        print(
            f"| {name} | {result['wall']:.1f} | {rate:,.0f} | {b['wall'] / result['wall']:.2f}x |"
        )
    for name, runner in [("a", a)] + ([("a0", a0)] if a0 else []):
        versus_c = f"{c['wall'] / runner['wall']:.2f}x" if c else "- (skipped)"
        print(f"\n({name})/(b) = {b['wall'] / runner['wall']:.2f}x, ({name})/(c) = {versus_c}")
        print(
            f"runner overhead per run: {runner['overhead_per_run']:.1f}s of slot time outside "
            f"epochs (of which {runner['in_task_overhead']:.1f}s inside the run: model build, "
            "on tasks data too)"
        )
        print(
            f"apart: one-time start {runner['one_time_start']:.1f}s (launch to a slot's first "
            f"run: interpreter, Ray, data, trainer), cost per run {runner['cost_per_run']:.2f}s "
            f"(outside epochs, the gap before it included), end {runner['end']:.1f}s (last run "
            "to exit)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    parser.add_argument("--baseline", help="also run (a) with the fmnist_ray of this checkout "
                        "(e.g. a clone at an older commit): before and after in one run")  # fmt: skip
    parser.add_argument("--way", choices=["b", "c"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        smoke_sizes()
    data_dir = str(Path(args.data_dir).resolve())
    cpus = os.cpu_count() or 2
    if args.way:
        ways = {
            "b": lambda: way_b_study_loop(data_dir),
            "c": lambda: way_c_ray_tune(data_dir, args.work, cpus),
        }
        print(json.dumps(ways[args.way]()))
        return
    if args.smoke:
        print("smoke mode: fc, 1 epoch, 1 seed; the numbers mean nothing")
    print(f"{cpus} CPUs, torch {torch.__version__} with {torch.get_num_threads()} default threads; "
          f"grid: base {MODEL}, {EPOCHS} epochs, seeds {SEEDS} = {images():,} training images\n", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b = in_fresh_process("b", data_dir, work, args.smoke)
        print(f"(b) study loop done in {b['wall']:.1f}s", flush=True)
        a = way_a_fmnist_ray(data_dir, work, cpus)
        print(f"(a) fmnist-ray run done in {a['wall']:.1f}s", flush=True)
        a0 = way_a_fmnist_ray(data_dir, work, cpus, args.baseline) if args.baseline else None
        if a0:
            print(f"(a0) fmnist-ray run of {args.baseline} done in {a0['wall']:.1f}s", flush=True)
        c = in_fresh_process("c", data_dir, work, args.smoke)
        if "skipped" in c:
            print(f"(c) Ray Tune skipped (the `bench` extra installs it): {c['skipped']}\n")
            c = None
        else:
            print(f"(c) Ray Tune done in {c['wall']:.1f}s\n", flush=True)
    print_table(a, b, c, a0)


if __name__ == "__main__":
    main()
