#!/usr/bin/env bash
# H200: the torch stack's strided element-wise class (simulator.opclasses `strided`) into a copy of the H200 table
# ($OUT/h200.json; about a minute). From the repository root:  bash benchmarks/gpu_h200_strided.sh
# Afterwards copy $OUT/h200.json over calibration/tables/h200.json.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
cp calibration/tables/h200.json "$OUT/h200.json"
timeout 150 python3 -m idealrt calibrate --out "$OUT/h200.json" --ops strided --stack torch --max-seconds 120 \
  > "$OUT/calibrate_strided.log" 2>&1
echo "calibrate exit $?"; tail -8 "$OUT/calibrate_strided.log"
