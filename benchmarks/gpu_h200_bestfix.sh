#!/usr/bin/env bash
# H200: GEMMs at the catalog's t = 1 layer shapes (calibration/gemm_layers.py) for the best stack's accuracy
# (issue 18). One H200, under 240 s. From the repository root:
#   OUT=$OUT bash benchmarks/gpu_h200_bestfix.sh
# Writes $OUT/gemm_layers_h200.json: cuBLAS and our GEMM at each t = 1 layer (n, k), alone (back to back, as the
# sweep grid) at m = 1 and 8, then right after our add_norm as in a layer at m = 2, 4, 16, 32, 64 (the first run
# of this script measured m = 1 and 8 so), until LAYERS_S; and $OUT/gpu_h200_bestfix.log.
# Afterwards: python -m calibration.gemm_layers --merge $OUT/gemm_layers_h200.json --table calibration/tables/h200.json
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
LAYERS_S=${LAYERS_S:-190}   # measuring seconds (the guard stops cleanly between points; the file stays valid)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/gpu_h200_bestfix.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,power.draw --format=csv 2>&1 | tee -a "$LOG"
step "layer GEMMs (t = 1): alone at m = 1, 8, then after add_norm at m = 2..64, torch and triton (max ${LAYERS_S} s)"
timeout $(( LAYERS_S + 25 )) python3 -m calibration.gemm_layers --out "$OUT/gemm_layers_h200.json" --stacks torch,triton \
  --max-t 1 --alone-m 1,8 --after --after-m 2,4,16,32,64 --max-seconds "$LAYERS_S" 2>&1 | tail -n 30 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -ne 0 ] && step "LAYER GEMMS FAILED or timed out (the file keeps what was measured)"
step "done"
