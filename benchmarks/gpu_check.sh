#!/usr/bin/env bash
# The GPU checks, as one script for a machine with CUDA (the project's own box has none):
#   0. the CUDA-only tests (the CUDA-graph step against the eager one);
#   1. the step's images/s eager and as a CUDA graph, and the training loop against the
#      study's DataLoader loop;
#   2. two study experiments run with `fmnist-ray run` and its defaults (0.25 GPU per run),
#      compared run by run with the committed CPU results;
#   3. fractional packing: the same grid at 1, 0.5, 0.25 and 0.125 GPU per run.
# Usage: bash benchmarks/gpu_check.sh DATA_DIR [WORK_DIR]
# Exits 1 if any check failed. `python benchmarks/smoke.py gpu_check.sh` dry-runs it without a GPU
# (every python command parsed with its flags, nothing run).
set -uo pipefail  # no -e: one failed check must not hide the others
failed=0
trap 'failed=1' ERR
data=$(realpath "$1")
work=${2:-$(mktemp -d)}
cd "$(dirname "$0")/.."

nvidia-smi -L
python3 -c 'import torch, ray, pyarrow; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "| ray", ray.__version__, "| pyarrow", pyarrow.__version__, "|", torch.cuda.get_device_name())'
echo "CPUs: $(nproc)"

echo; echo "## 0. CUDA tests"
FMNIST_DATA_DIR="$data" python3 -m pytest -q -p no:cacheprovider tests/test_train_cuda.py

echo; echo "## 1. training throughput on cuda"
python3 benchmarks/bench_gpu_step.py --data-dir "$data"
python3 benchmarks/bench_throughput.py --data-dir "$data" --device cuda --epochs 2 --repeats 2

echo; echo "## 2. lenet_baseline + combined on the GPU, default packing, vs committed CPU results"
start=$(date +%s)
python3 -m fmnist_ray run experiments/study/lenet_baseline.toml experiments/study/combined.toml \
    --results "$work/gpu" --data-dir "$data"
echo "wall: $(( $(date +%s) - start )) s"
for exp in lenet_baseline combined; do
    python3 benchmarks/compare_devices.py "results/$exp" "$work/gpu/$exp"
done

echo; echo "## 3. fractional packing"
python3 benchmarks/bench_gpu_packing.py --data-dir "$data" --runs 8 --epochs 2
exit "$failed"
