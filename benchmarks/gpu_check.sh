#!/usr/bin/env bash
# The GPU check (issue 22): one call of at most 5 minutes on a machine with one CUDA GPU, sections
# in order of value, each bounded by its own time budget and ending in one SUMMARY line; each
# section's full output and numbers land in $OUT (default: a temporary folder).
#   1. Ray sees the GPU, and the CUDA tests pass (graph step vs eager, the memory probe on a real
#      trainer, a real out of memory retried alone, and the CPU's injected-fault tests)   [150 s]
#   2. memory of one trainer's process over 24 runs: flat within 5% from run 5 to 24     [45 s]
#   3. a real out of memory during graph capture: retried alone, its trainer trains on    [60 s]
#   4. the 24-run base LeNet-5 grid (2 epochs, 0.125 GPU each) through trainers, against one
#      graphed run alone                                                                   [90 s]
#   5. several runs in one process, each on its own CUDA stream (measured before it is built)
#                                                                                           [45 s]
#   STUDY=1 instead: the whole study into an empty root, its wall time, and test accuracy per run
#   against the committed CPU study (its own call; STUDY=EXP,EXP for some experiments only;
#   STUDY_BUDGET seconds, default 540).
# Usage: bash benchmarks/gpu_check.sh DATA_DIR [WORK_DIR]; exits 1 if any section failed.
# `python benchmarks/smoke.py gpu_check.sh` dry-runs it without a GPU (every python command
# parsed with its flags, nothing run).
set -uo pipefail  # no -e: one failed section must not hide the others
data=$(realpath "$1")
work=${2:-$(mktemp -d)}
out=${OUT:-$(mktemp -d)}
mkdir -p "$work" "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 FMNIST_DATA_DIR="$data"
failed=0
began=$(date +%s)

section() {  # section NAME BUDGET_S COMMAND...: run it under `timeout`, output to $out/NAME.log
    local name=$1 budget=$2 start rc
    shift 2
    start=$(date +%s)
    timeout -k 10 "$budget" "$@" > "$out/$name.log" 2>&1
    rc=$?
    grep -h '^SUMMARY' "$out/$name.log"
    if [ "$rc" != 0 ]; then
        failed=1
        echo "FAILED $name (rc $rc$([ "$rc" = 124 ] && echo ": over its ${budget} s")); last lines:"
        tail -n 25 "$out/$name.log" | sed 's/^/    /'
    fi
    echo "  [$name: $(( $(date +%s) - start )) s of ${budget} s, $(( $(date +%s) - began )) s in all]"
}

nvidia-smi -L | tee "$out/gpu.txt"
if [ "${STUDY:-0}" = 0 ]; then
    section 1-cuda-tests 150 bash -c '
        python3 -c "import ray, torch; ray.init(address=\"local\", include_dashboard=False, logging_level=\"ERROR\"); gpus = ray.cluster_resources().get(\"GPU\", 0); print(\"SUMMARY ray\", ray.__version__, \"torch\", torch.__version__, torch.cuda.get_device_name(), \"GPUs Ray sees:\", gpus); assert gpus >= 1" &&
        python3 -m pytest -q -p no:cacheprovider -n 3 tests/test_train_cuda.py \
            tests/test_sizing_cuda.py tests/test_device_faults.py \
            -k "not capture_is_retried_alone" 2>&1 | tee /dev/stderr | tail -n 1 | sed "s/^/SUMMARY tests: /"
        exit "${PIPESTATUS[0]}"'
    section 2-memory 45 python3 benchmarks/gpu_memory.py --runs 24 --out "$out/memory.json"
    section 3-capture-oom 60 bash -c '
        python3 -m pytest -q -s -p no:cacheprovider -n 0 tests/test_sizing_cuda.py \
            -k "capture_is_retried_alone" 2>&1 | tee /dev/stderr | tail -n 1 | sed "s/^/SUMMARY capture OOM: /"
        exit "${PIPESTATUS[0]}"'
    section 4-grid 90 python3 benchmarks/gpu_grid.py --data-dir "$data" --work "$work/grid" \
        --runs 24 --epochs 2 --gpus-per-run 0.125 --out "$out/grid.json"
    section 5-streams 45 python3 benchmarks/gpu_streams.py --data-dir "$data" \
        --members 1 2 4 8 16 --out "$out/streams.json"
else
    experiments=experiments/study
    if [ "$STUDY" != 1 ]; then
        experiments=$(printf 'experiments/study/%s.toml ' ${STUDY//,/ })
    fi
    start=$(date +%s)
    # shellcheck disable=SC2086
    section study "${STUDY_BUDGET:-540}" python3 -m fmnist_ray run $experiments --results "$work/study" \
        --data-dir "$data"
    echo "SUMMARY study wall: $(( $(date +%s) - start )) s for $(find "$work/study" -name '*.parquet' | wc -l) result files"
    for exp in "$work"/study/*/; do
        name=$(basename "$exp")
        [ -d "results/$name" ] && python3 benchmarks/compare_devices.py "results/$name" "$exp" \
            > "$out/compare-$name.log" 2>&1
        tail -n 1 "$out/compare-$name.log" | sed "s/^/SUMMARY $name: /"
    done
fi
echo "SUMMARY gpu_check: $(( $(date +%s) - began )) s, $([ "$failed" = 0 ] && echo "all sections passed" || echo "SOME SECTIONS FAILED")"
exit "$failed"
