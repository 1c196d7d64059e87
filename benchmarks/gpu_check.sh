#!/usr/bin/env bash
# The GPU checks, as one script for a machine with CUDA (the project's own box has none):
#   0. the CUDA-only tests (the CUDA-graph step against the eager one; the memory probe, and a
#      real CUDA out-of-memory retried alone);
#   1. the step's images/s eager and as a CUDA graph, and the training loop against the
#      study's DataLoader loop;
#   2. two study experiments run with `fmnist-ray run` and its defaults (GPU share sized from
#      measured memory: the run prints the probe's numbers), compared run by run with the
#      committed CPU results;
#   3. fractional packing: the same grid at 1, 0.5, 0.25 and 0.125 GPU per run;
#   4. issue 14: a 24-run base LeNet-5 grid (seeds 0-23, 2 epochs) through long-lived trainers,
#      8 per GPU: aggregate training images/s end to end (against one run alone: section 1);
#   5. issue 14, only with STUDY=1 (minutes): the whole study into an empty root, timed, and
#      compared seed by seed with the committed CPU study.
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
FMNIST_DATA_DIR="$data" python3 -m pytest -q -s -p no:cacheprovider tests/test_train_cuda.py \
    tests/test_sizing_cuda.py

echo; echo "## 1. training throughput on cuda"
python3 benchmarks/bench_gpu_step.py --data-dir "$data"
python3 benchmarks/bench_throughput.py --data-dir "$data" --device cuda --epochs 2 --repeats 2

echo; echo "## 2. lenet_baseline + combined on the GPU, packing from measured memory, vs committed CPU results"
start=$(date +%s)
python3 -m fmnist_ray run experiments/study/lenet_baseline.toml experiments/study/combined.toml \
    --results "$work/gpu" --data-dir "$data"
echo "wall: $(( $(date +%s) - start )) s"
for exp in lenet_baseline combined; do
    python3 benchmarks/compare_devices.py "results/$exp" "$work/gpu/$exp"
done

echo; echo "## 3. fractional packing"
python3 benchmarks/bench_gpu_packing.py --data-dir "$data" --runs 8 --epochs 2

echo; echo "## 4. 24 base LeNet-5 runs (2 epochs) through trainers, 0.125 GPU each"
printf 'seeds = [%s]\n[base]\nmodel = "lenet5"\nepochs = 2\n' "$(seq -s ', ' 0 23)" \
    > "$work/grid24.toml"
start=$(date +%s.%N)
python3 -m fmnist_ray run "$work/grid24.toml" --results "$work/grid24" --data-dir "$data" \
    --gpus-per-run 0.125
end=$(date +%s.%N)
python3 -c "
import sys
from collections import Counter
from fmnist_ray.store.devices import describe_devices, device_label, sharing
from fmnist_ray.store.results import find_run_files, read_metadata
wall = float(sys.argv[2]) - float(sys.argv[1])
metas = [read_metadata(p) for p in find_run_files([sys.argv[3]])]
print(f'{len(metas)} runs in {wall:.1f} s end to end: {len(metas) * 2 * 60000 / wall:,.0f} '
      f'training images/s; {len({m[\"trainer_pid\"] for m in metas})} trainers, '
      f'steps {sorted({m[\"training_step\"] for m in metas})}; devices '
      f'{describe_devices(device_label(m) for m in metas)}; (runs at once, fused) '
      f'{dict(Counter(sharing(m) for m in metas))}')
" "$start" "$end" "$work/grid24"

if [ "${STUDY:-0}" = 1 ]; then
    echo; echo "## 5. the whole study into an empty root on one GPU"
    start=$(date +%s)
    python3 -m fmnist_ray run experiments/study --results "$work/study" --data-dir "$data"
    echo "study wall: $(( $(date +%s) - start )) s"
    for exp in experiments/study/*.toml; do
        python3 benchmarks/compare_devices.py "results/$(basename "$exp" .toml)" \
            "$work/study/$(basename "$exp" .toml)"
    done
fi
exit "$failed"
