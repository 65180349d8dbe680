#!/usr/bin/env bash
# One lent H200: the continuous-batching engine variant checked, then served request streams measured; ends within
# 480 s of wall time.
#   bash benchmarks/gpu_h200_serving.sh        # from the repository root
# Writes into $OUT: serving_check_h200.json (per-slot rotary + KV write against its reference; a slot's logits against
# the static engine and a float32 forward), serving_<arch>.json (3 architectures x 2 length distributions x rates
# light, near, over: fractions of the simulator's predicted capacity), serving.log, nvidia_smi.csv.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
CAP=480
LOG="$OUT/serving.log"
LENGTHS=(--lengths "lognormal:p=512,o=128,sigma=0.6" --lengths "uniform:p=32-256,o=32-256")
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > "$OUT/nvidia_smi.csv"

timeout 100 python3 -m calibration.serving_check --out "$OUT/serving_check_h200.json" >> "$LOG" 2>&1
echo "serving_check exit $?"; tail -7 "$LOG"

# arch and its share of what is left (the last one takes the rest); each call stops starting runs at its budget
for step in "llama-3.2-1b 30" "llama-3.1-8b 50" "qwen2.5-7b 100"; do
  set -- $step
  left=$((CAP - SECONDS - 15))
  budget=$((left * $2 / 100))
  [ "$budget" -gt 40 ] || { echo "no time left for $1"; continue; }
  timeout $((budget + 20)) python3 -m calibration.serve_run --arch "$1" "${LENGTHS[@]}" --rate light,near,over \
    --requests 250 --span-s 12 --seed 0 --max-batch 32 --out "$OUT/serving_$1.json" --max-seconds "$budget" >> "$LOG" 2>&1
  echo "serve_run $1 (budget $budget s) exit $?"; grep "^$1 " "$LOG" | tail -6
done
echo "total ${SECONDS} s"
