#!/usr/bin/env bash
# H200, diagnostic (~3 min): where transformers' eager generate (engine hf-eager) spends a phase, to check the eager
# host/GPU queue (simulator/overlap.py) and HF's kernel list (simulator/hf_ops.py). Nothing here feeds a table or a fit.
#   OUT=$OUT bash benchmarks/gpu_h200_hfeager.sh
# Writes $OUT/hf_profile_h200.json (calibration/hf_profile.py: host seconds a layer at real and tiny widths on this
# machine; torch.profiler kernels, GPU busy time and wall time of generates of llama-3.1-8b and opt-6.7b).
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
echo "== [0 s] hf_profile" | tee "$OUT/hfeager.log"
timeout 225 python3 -m calibration.hf_profile --out "$OUT/hf_profile_h200.json" --max-seconds 170 2>&1 \
  | grep -v "USDT:" | tee -a "$OUT/hfeager.log"
echo "== [$(( $(date +%s) - START )) s] done (rc ${PIPESTATUS[0]})" | tee -a "$OUT/hfeager.log"
