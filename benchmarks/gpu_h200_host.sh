#!/usr/bin/env bash
# H200: the host model of transformers' eager generate, the torch stack's engine profile, the energy counter's
# resolution. From the repository root; everything lands in $OUT (about 4 minutes):
#   bash benchmarks/gpu_h200_host.sh
# Afterwards: python3 -m calibration.host_bench --out <host_h200.json> --merge calibration/tables/h200.json, and
# copy profile_engine_h200_torch.json and energy_meter_h200.json to benchmarks/results/.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/host.log"
START=$(date +%s)
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
step host_bench
timeout 200 python3 -m calibration.host_bench --out "$OUT/host_h200.json" 2>&1 | tee -a "$LOG"
step energy_meter
timeout 30 python3 -m calibration.energy_meter --out "$OUT/energy_meter_h200.json" 2>&1 | tee -a "$LOG"
step profile_engine torch
timeout 150 python3 -m benchmarks.profile_engine --backend torch --arch llama-3.1-8b,qwen2.5-7b,phi-3-mini,llama-3.2-1b \
  --out "$OUT/profile_engine_h200_torch.json" 2>&1 | tee -a "$LOG"
step done
