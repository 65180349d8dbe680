#!/usr/bin/env bash
# One lent H200: the continuous-batching engine variant checked, then served request streams measured; ends within
# 480 s of wall time.
#   bash benchmarks/gpu_h200_serving.sh [base] [wide]     # from the repository root; default: base
# base: llama-3.2-1b, llama-3.1-8b, qwen2.5-7b at max batch 32, seed 0 (serving_<arch>.json; measured 2026-12-04);
# wide: phi-3-mini (MHA) at max batch 32, llama-3.1-8b at 64, qwen2.5-1.5b at 16, seed 1 (serving_<arch>_b<B>_s1.json;
# written, not measured yet).
# Each: 2 length distributions x rates light, near, over (fractions of the simulator's predicted capacity).
# Writes into $OUT: serving_check_h200.json (per-slot rotary + KV write against its reference; a slot's logits against
# the static engine and a float32 forward), the run files, serving.log, nvidia_smi.csv.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
CAP=480
LOG="$OUT/serving.log"
SETS=${*:-base}
LENGTHS=(--lengths "lognormal:p=512,o=128,sigma=0.6" --lengths "uniform:p=32-256,o=32-256")
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > "$OUT/nvidia_smi.csv"

timeout 100 python3 -m calibration.serving_check --out "$OUT/serving_check_h200.json" \
  --models llama-3.2-1b,llama-3.1-8b,qwen2.5-7b,phi-3-mini,qwen2.5-1.5b >> "$LOG" 2>&1
echo "serving_check exit $?"; tail -9 "$LOG"

# per step: arch, max batch, seed, file suffix, share (%) of the time left; each call stops starting runs at its budget
STEPS=()
for set in $SETS; do
  case $set in
    base) STEPS+=("llama-3.2-1b 32 0 - 30" "llama-3.1-8b 32 0 - 50" "qwen2.5-7b 32 0 - 100") ;;
    wide) STEPS+=("phi-3-mini 32 1 _b32_s1 35" "llama-3.1-8b 64 1 _b64_s1 55" "qwen2.5-1.5b 16 1 _b16_s1 100") ;;
    *) echo "unknown set $set (base, wide)"; exit 2 ;;
  esac
done
for step in "${STEPS[@]}"; do
  set -- $step
  suffix=$4; [ "$suffix" = "-" ] && suffix=""
  left=$((CAP - SECONDS - 15))
  budget=$((left * $5 / 100))
  [ "$budget" -gt 40 ] || { echo "no time left for $1"; continue; }
  timeout $((budget + 20)) python3 -m calibration.serve_run --arch "$1" "${LENGTHS[@]}" --rate light,near,over \
    --requests 250 --span-s 12 --seed "$3" --max-batch "$2" --out "$OUT/serving_$1$suffix.json" \
    --max-seconds "$budget" >> "$LOG" 2>&1
  echo "serve_run $1 max batch $2 (budget $budget s) exit $?"; grep "^$1 " "$LOG" | tail -6
done
echo "total ${SECONDS} s"
