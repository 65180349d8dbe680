#!/usr/bin/env bash
# H200: the host model of transformers' eager generate and hf-eager configuration queries on the SAME machine (an
# eager stack's time is its host CPU's, and lent machines' CPUs differ). From the repository root (~4.5 min):
#   bash benchmarks/gpu_h200_hf_eager.sh
# Writes $OUT/host_h200.json (merge: python3 -m calibration.host_bench --out FILE --merge calibration/tables/h200.json)
# and $OUT/h200_t1_hf.jsonl (the hf-eager rows; they replace the shipped hf-eager rows of calibration/measurements/).
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-290}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/hf_eager.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
step host_bench
timeout 100 python3 -m calibration.host_bench --families llama,opt --out "$OUT/host_h200.json" 2>&1 | tee -a "$LOG"
for arch in llama-3.1-8b opt-6.7b qwen2.5-7b llama-3.2-1b phi-3-mini; do
  lim=$(( $(left) - 15 )); [ "$lim" -gt 35 ] && lim=35
  if [ "$lim" -lt 15 ]; then step "skipped $arch: no time left"; continue; fi
  step "measure $arch hf-eager (max $lim s)"
  timeout $(( lim + 25 )) python3 -m idealrt measure --arch "$arch" --engine hf-eager --grid hf --gpu h200 \
    --out "$OUT/h200_t1_hf.jsonl" --max-seconds "$lim" 2>&1 | tail -3 | tee -a "$LOG"
done
step done
