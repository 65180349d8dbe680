#!/usr/bin/env bash
# One lent H200, under 9 minutes: low-precision GEMMs, op power, per-shape GEMM choice against cuBLAS.
#   bash benchmarks/gpu_h200_kernels.sh     # from the repository root; everything lands in $OUT
# Writes $OUT/lowp_h200.json (FP8 and int4 GEMMs checked, then timed against torch._scaled_mm and bf16),
# $OUT/op_power_h200.json (board power per op class; merge with `python -m calibration.op_power --merge`),
# $OUT/gemm_choice_h200.json (tuned on one draw of shapes, checked against cuBLAS on another) and a log each.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > "$OUT/nvidia_smi.csv"
timeout 190 python3 -m calibration.lowp_bench --out "$OUT/lowp_h200.json" --max-seconds 150 > "$OUT/lowp_h200.log" 2>&1
echo "lowp exit $?"; tail -25 "$OUT/lowp_h200.log"
timeout 170 python3 -m calibration.op_power --table calibration/tables/h200.json --out "$OUT/op_power_h200.json" \
  > "$OUT/op_power_h200.log" 2>&1
echo "op_power exit $?"; tail -8 "$OUT/op_power_h200.log"
timeout 200 python3 -m calibration.gemm_choice --out "$OUT/gemm_choice_h200.json" --tune 48 --check 200 \
  --max-seconds 175 > "$OUT/gemm_choice_h200.log" 2>&1
echo "gemm_choice exit $?"; tail -6 "$OUT/gemm_choice_h200.log"
