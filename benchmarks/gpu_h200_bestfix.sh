#!/usr/bin/env bash
# H200: GEMMs at the catalog's layer shapes (calibration/gemm_layers.py) and the best engine kernel by kernel, for
# the best stack's accuracy (issue 18). One H200, under 240 s. From the repository root:
#   OUT=$OUT bash benchmarks/gpu_h200_bestfix.sh
# Writes $OUT/gemm_layers_h200.json (cuBLAS and our GEMM at each t = 1 layer (n, k), m = 1 and 8, right after our
# add_norm as in a layer; then alone at m = 1..64, t = 1 shapes first, until LAYERS_S), $OUT/profile_best_h200.json
# (benchmarks/profile_engine.py --backend best) and $OUT/gpu_h200_bestfix.log.
# Afterwards: python -m calibration.gemm_layers --merge $OUT/gemm_layers_h200.json --table calibration/tables/h200.json
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
LAYERS_S=${LAYERS_S:-115}   # measuring seconds for the layer points (the guard stops cleanly; the file stays valid)
PROFILE_S=${PROFILE_S:-75}  # at most this long for the best engine's profile
PROFILE_ARCHS=${PROFILE_ARCHS:-phi-3-mini,falcon-7b,llama-3.1-8b,qwen2.5-7b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/gpu_h200_bestfix.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,power.draw --format=csv 2>&1 | tee -a "$LOG"
step "layer GEMMs: after add_norm (m = 1, 8), then alone (m = 1..64), torch then triton (max ${LAYERS_S} s)"
timeout $(( LAYERS_S + 25 )) python3 -m calibration.gemm_layers --out "$OUT/gemm_layers_h200.json" --after \
  --stacks torch,triton --max-seconds "$LAYERS_S" 2>&1 | tail -n 40 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -ne 0 ] && step "LAYER GEMMS FAILED or timed out (the file keeps what was measured)"
step "profile: the best engine kernel by kernel ($PROFILE_ARCHS, max ${PROFILE_S} s)"
timeout "$PROFILE_S" python3 -m benchmarks.profile_engine --backend best --arch "$PROFILE_ARCHS" \
  --out "$OUT/profile_best_h200.json" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -ne 0 ] && step "PROFILE FAILED or timed out (the file keeps the architectures done)"
step "done"
