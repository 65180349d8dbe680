#!/usr/bin/env bash
# H200: the torch stack's unfused element-wise functions as table points, and a held-out check of them (~4 min).
#   OUT=$OUT bash benchmarks/gpu_h200_torch.sh          # from the repository root; everything lands in $OUT
# 1. $OUT/torch_op_kernels_h200.json: the kernels each new microbenchmark launches (benchmarks/torch_op_kernels.py),
#    to set beside the engine profile's kernel names.
# 2. $OUT/h200_torch_ops.json, $OUT/h200_torch_prefill.json: fresh tables of the torch stack's classes `strided`
#    (one grid per function, `fn`), `norm`, `elementwise` and `transpose` (inputs in HBM, and read again and again:
#    `l2` "hot"),
#    and of `prefill_attn` (SDPA over K/V of the KV heads, enable_gqa, as the engine calls it), measured by
#    `idealrt calibrate` (merge each, when complete: idealrt calibrate --merge FILE --ops CLASSES [--replace]
#    --out calibration/tables/h200.json).
# 3. $OUT/h200_t1_torch.jsonl: torch-stack configuration queries (grid t1) of architectures without torch rows
#    (LayerNorm, GELU, MQA, parallel blocks), measured after the model change: a check no choice was tuned on.
# 4. $OUT/profile_engine_h200_torch_more.json: the engine profile of those architectures (calibration/explain.py).
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-228}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/torch.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

step "kernels of the new microbenchmarks"
timeout 40 python3 -m benchmarks.torch_op_kernels --out "$OUT/torch_op_kernels_h200.json" 2>&1 | tail -30 | tee -a "$LOG"

step "calibrate strided,norm,elementwise,transpose (torch)"
timeout 80 python3 -m idealrt calibrate --fresh --out "$OUT/h200_torch_ops.json" \
  --ops strided,norm,elementwise,transpose --stack torch --max-seconds 60 2>&1 | tail -8 | tee -a "$LOG"
step "calibrate prefill_attn (torch)"
timeout 100 python3 -m idealrt calibrate --fresh --out "$OUT/h200_torch_prefill.json" --ops prefill_attn \
  --stack torch --max-seconds 80 2>&1 | tail -8 | tee -a "$LOG"

measure() {  # $1: catalog name, $2: cap on its seconds, $3: seconds to keep for what follows
  local lim; lim=$(( $(left) - $3 - 25 )); [ "$lim" -gt "$2" ] && lim=$2
  if [ "$lim" -lt 15 ]; then step "skipped measure $1: no time left"; return 0; fi
  step "measure $1 torch (max $lim s)"
  timeout $(( lim + 25 )) python3 -m idealrt measure --arch "$1" --backend torch --grid t1 --gpu h200 \
    --out "$OUT/h200_t1_torch.jsonl" --max-seconds "$lim" 2>&1 | tail -3 | tee -a "$LOG"
}

measure opt-6.7b 45 60
lim=$(( $(left) - 20 )); [ "$lim" -gt 50 ] && lim=50
if [ "$lim" -ge 20 ]; then
  step "profile opt-6.7b,falcon-7b torch (max $lim s)"
  timeout "$lim" python3 -m benchmarks.profile_engine --backend torch --arch opt-6.7b,falcon-7b \
    --out "$OUT/profile_engine_h200_torch_more.json" 2>&1 | tail -16 | tee -a "$LOG"
else
  step "skipped the profile: no time left"
fi
measure falcon-7b 45 0
step done
