"""Fractional GPU packing on a real GPU: the same grid (base lenet5, seeds 0..N-1) trained by
`fmnist-ray run` with each GPU share (1 = one run per GPU at a time, 0.25 = four at once).
Prints, per share, end-to-end wall time, aggregate training images/s, the most runs seen
training at once (from each run's started/ended stamps), the device each run reports, and the
largest test-accuracy difference of a seed against the share-1 run.

    python benchmarks/bench_gpu_packing.py --data-dir DIR [--runs 8] [--epochs 2] [--smoke]

`--smoke`: 2 fc runs of 1 epoch at share 0.5, on 1 logical GPU when there is no CUDA
(the runs then train on the CPU): it checks the code, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmnist_ray.planning.cost import most_at_once
from fmnist_ray.store.results import find_run_files, read_metadata, run_span
from fmnist_ray.store.tree import read_results


def run_share(share: float, args, work: Path) -> dict:
    exp = work / f"share_{share:g}.toml"
    exp.write_text(f'description = "gpu packing {share:g}"\nseeds = {list(range(args.runs))}\n'
                   f'[base]\nmodel = "{args.model}"\nepochs = {args.epochs}\n')  # fmt: skip
    results = work / f"results_{share:g}"
    command = [sys.executable, "-m", "fmnist_ray", "run", str(exp), "--data-dir", args.data_dir,
               "--results", str(results), "--gpus-per-run", f"{share:g}",
               "--cpus-per-run", str(args.cpus_per_run)]  # fmt: skip
    if args.num_gpus is not None:
        command += ["--num-gpus", str(args.num_gpus)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    spans, devices = [], set()
    for path in find_run_files([results]):
        meta = read_metadata(path)
        spans.append(tuple(t.timestamp() for t in run_span(meta)))
        devices.add(f"{meta['device']} {meta['device_name']}")
    table = read_results([results]).to_pylist()
    final = {r["seed"]: r["test_acc"] for r in table if r["epoch"] == args.epochs}
    images = args.runs * args.epochs * 60_000
    training = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"share": share, "wall": wall, "training": training, "img_s": images / training,
            "peak": most_at_once(spans), "devices": devices, "final": final}  # fmt: skip


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpus-per-run", type=int, default=1)
    parser.add_argument("--shares", default="1,0.5,0.25,0.125")
    parser.add_argument("--num-gpus", type=int, help="logical GPUs (a dry run without one)")
    parser.add_argument("--model", default="lenet5", choices=["lenet5", "fc"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.epochs, args.shares, args.model = 2, 1, "0.5", "fc"
        if args.num_gpus is None and not cuda_available():
            args.num_gpus = 1
        print(f"smoke mode: {args.runs} fc runs, 1 epoch, shares {args.shares}, "
              f"{args.num_gpus or 'detected'} GPUs; the numbers mean nothing")  # fmt: skip
    args.data_dir = str(Path(args.data_dir).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for share in (float(s) for s in args.shares.split(",")):
            rows.append(run_share(share, args, Path(tmp)))
            print(f"share {share:g} done in {rows[-1]['wall']:.1f} s", flush=True)
    first = rows[0]
    print(f"\ngrid: base {args.model}, {args.epochs} epochs, {args.runs} seeds, "
          f"{args.cpus_per_run} CPU per run\n")  # fmt: skip
    print("| GPU share | runs at once (seen) | wall s (end to end) | training span s "
          "| images/s | vs share " + f"{first['share']:g} | max |Δ test acc| vs share {first['share']:g} |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        delta = max(abs(r["final"][s] - first["final"][s]) for s in first["final"])
        print(f"| {r['share']:g} | {r['peak']} | {r['wall']:.1f} | {r['training']:.1f} "
              f"| {r['img_s']:,.0f} | {r['img_s'] / first['img_s']:.2f}x | {delta:.4f} |")  # fmt: skip
    print("\ndevices reported by the runs:", sorted(set().union(*(r["devices"] for r in rows))))


if __name__ == "__main__":
    main()
