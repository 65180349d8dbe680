#!/usr/bin/env bash
# H200, t = 1: configuration queries with their energy metered over windows of >= 1 s of runs back to back, edge to
# edge of the energy counter (`idealrt measure --energy-window`), for the queries drawn by benchmarks/energy_sample.py
# (calibration/measurements/energy_windows/queries/). From the repository root, ~8 minutes:
#   bash benchmarks/gpu_h200_energy.sh
# Writes $OUT/h200_t1_<stack>.jsonl (rows, appended as measured) and $OUT/energy.log; copy the rows to
# calibration/measurements/energy_windows/ and run `python -m benchmarks.validate_energy`.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-540}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/energy.log"
DIR=calibration/measurements/energy_windows/queries
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
# stack, share of what is left of the budget (percent)
for spec in triton:62 best:60 torch:100; do
  stack=${spec%%:*}; share=${spec##*:}
  lim=$(( (BUDGET_S - ($(date +%s) - START)) * share / 100 - 10 ))
  if [ "$lim" -lt 20 ]; then step "skipped $stack: no time left"; continue; fi
  step "measure $stack (max $lim s)"
  timeout $(( lim + 40 )) python3 -m idealrt measure --queries-from "$DIR/h200_t1_${stack}.jsonl" \
    --backend "$stack" --gpu h200 --energy-window 1.0 --out "$OUT/h200_t1_${stack}.jsonl" --max-seconds "$lim" \
    2>&1 | grep -v '^\s*\[' | tee -a "$LOG"
done
step done
