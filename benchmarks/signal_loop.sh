#!/usr/bin/env bash
# The signal tests (Ctrl-C, SIGTERM, SIGHUP, a kernel interrupt, a settle interrupted) again and
# again, two at a time, sampling the 1-minute load average every 10 s: issue 25's check that no
# signal is lost under load. Run it beside a load of twice the cores (another suite, or burners)
# and read one line per iteration in LOG. A failing iteration keeps its pytest output.
#   bash benchmarks/signal_loop.sh N LOG_DIR      (from the repository root, .venv installed)
set -u
n="$1"; logs="$2"; mkdir -p "$logs"
K="ctrl_c or sigterm or signal_while or held_signal or interrupting_the_kernel or tiny_settle_interrupted"
for i in $(seq 1 "$n"); do
  samples="$logs/load_$i.txt"; : > "$samples"
  ( while true; do cut -d' ' -f1 /proc/loadavg >> "$samples"; sleep 10; done ) & sampler=$!
  start=$(date +%s)
  .venv/bin/python -m pytest -p no:cacheprovider -n 2 -q -k "$K" tests/test_api.py \
    tests/test_faults.py tests/test_notebook.py tests/test_settle.py > "$logs/signals_$i.out" 2>&1
  rc=$?
  kill "$sampler"
  stats=$(awk '{s+=$1; if(min==""||$1<min)min=$1} END {printf "mean %.2f min %.2f n %d", s/NR, min, NR}' "$samples")
  echo "iteration $i rc=$rc $(( $(date +%s) - start ))s load $stats $(tail -1 "$logs/signals_$i.out")" >> "$logs/loop.log"
done
echo finished >> "$logs/loop.log"
