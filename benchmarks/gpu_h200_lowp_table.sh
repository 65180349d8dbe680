#!/usr/bin/env bash
# One lent H200: the low-precision GEMM classes (gemm_fp8: ours and torch._scaled_mm; gemm_int4: ours) measured into
# a copy of the H200 table; merge back here by copying $OUT/h200.json over calibration/tables/h200.json.
#   bash benchmarks/gpu_h200_lowp_table.sh      # from the repository root
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
cp calibration/tables/h200.json "$OUT/h200.json"
timeout 420 python3 -m idealrt calibrate --out "$OUT/h200.json" --ops gemm_fp8,gemm_int4 --max-seconds 380 \
  > "$OUT/calibrate_lowp.log" 2>&1
echo "calibrate exit $?"; tail -15 "$OUT/calibrate_lowp.log"
