#!/usr/bin/env bash
# H200: the torch stack's element-wise functions and its SDPA prefill as table points, measured as the engine runs
# them (~1.5 min). From the repository root:  OUT=$OUT bash benchmarks/gpu_h200_torch.sh
# 1. $OUT/torch_op_kernels_h200.json: the kernels each microbenchmark launches (benchmarks/torch_op_kernels.py), to
#    set beside the engine profile's kernel names.
# 2. $OUT/h200_torch_ops.json: a fresh table of the torch stack's classes `strided` (one grid per function, `fn`),
#    `norm`, `elementwise` and `transpose`, each with its inputs in HBM (`l2` "cold") and read again and again
#    ("hot"). Merge: idealrt calibrate --merge FILE --ops strided,norm,elementwise,transpose --replace
#    --out calibration/tables/h200.json
# 3. $OUT/h200_torch_prefill.json: a fresh table of the torch stack's `prefill_attn`, SDPA flash on the engine's
#    operands (q a view of the projection, K/V cache windows, enable_gqa; MHA nodes at one token). Merge as above
#    with --ops prefill_attn.
# (The first run of this script, results in /work/gpu_out/torch/1, also measured t1 rows and profiles of opt-6.7b
# and falcon-7b on the torch stack; they are committed and not measured again.)
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/torch.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

step "kernels of the microbenchmarks"
timeout 40 python3 -m benchmarks.torch_op_kernels --out "$OUT/torch_op_kernels_h200.json" 2>&1 | tail -30 | tee -a "$LOG"
step "calibrate strided,norm,elementwise,transpose (torch)"
timeout 80 python3 -m idealrt calibrate --fresh --out "$OUT/h200_torch_ops.json" \
  --ops strided,norm,elementwise,transpose --stack torch --max-seconds 60 2>&1 | tail -8 | tee -a "$LOG"
step "calibrate prefill_attn (torch)"
timeout 100 python3 -m idealrt calibrate --fresh --out "$OUT/h200_torch_prefill.json" --ops prefill_attn \
  --stack torch --max-seconds 80 2>&1 | tail -8 | tee -a "$LOG"
step done
