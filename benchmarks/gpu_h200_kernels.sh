#!/usr/bin/env bash
# One lent H200: low-precision GEMMs, op power, per-shape GEMM choice against cuBLAS; each step under 5 minutes.
#   bash benchmarks/gpu_h200_kernels.sh [power] [sustained] [lowp] [choice]    # from the repository root; default: all
# Writes into $OUT: op_power_h200.json (board power per op class; merge with `python -m calibration.op_power --merge`),
# sustained_h200.json (time per call of compute-bound ops run back to back for seconds), lowp_h200.json (FP8 and int4 GEMMs checked, then timed against torch._scaled_mm and bf16), gemm_choice_h200.json
# (tuned on one draw of shapes, checked against cuBLAS on another; resumed after a crashed shape), a log each.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
STEPS=${*:-power sustained lowp choice}
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > "$OUT/nvidia_smi.csv"
for step in $STEPS; do
  case $step in
    power)
      timeout 200 python3 -m calibration.op_power --table calibration/tables/h200.json --out "$OUT/op_power_h200.json" \
        > "$OUT/op_power_h200.log" 2>&1
      echo "op_power exit $?"; tail -8 "$OUT/op_power_h200.log" ;;
    sustained)
      timeout 120 python3 -m calibration.sustained --table calibration/tables/h200.json --out "$OUT/sustained_h200.json" \
        > "$OUT/sustained_h200.log" 2>&1
      echo "sustained exit $?"; tail -6 "$OUT/sustained_h200.log" ;;
    lowp)
      timeout 260 python3 -m calibration.lowp_bench --out "$OUT/lowp_h200.json" --max-seconds 220 > "$OUT/lowp_h200.log" 2>&1
      echo "lowp exit $?"; tail -25 "$OUT/lowp_h200.log" ;;
    choice)
      end=$((SECONDS + 280))
      for attempt in 1 2 3 4; do     # a CUDA fault ends the process; the next attempt skips the shape it was on
        left=$((end - SECONDS)); [ "$left" -gt 20 ] || break
        timeout "$left" python3 -m calibration.gemm_choice --out "$OUT/gemm_choice_h200.json" --tune 48 --check 200 \
          --max-seconds 260 >> "$OUT/gemm_choice_h200.log" 2>&1 && break
        echo "gemm_choice attempt $attempt exit $?"
      done
      tail -6 "$OUT/gemm_choice_h200.log" ;;
    *) echo "unknown step $step (power, sustained, lowp, choice)"; exit 2 ;;
  esac
done
