#!/usr/bin/env bash
# H200, t = 1: what the FP8 stack's time model needs (issue 20's fidelity, issue 17's bars), under 240 s.
#   OUT=$OUT bash benchmarks/gpu_h200_fp8fix.sh      # from the repository root
# 1. $OUT/h200_gemm_fp8.json: gemm_fp8 (ours) at the grid nodes the shipped table lacks (calibration/grids.py
#    _FP8_OURS: the kernel's launch steps in m, the bf16 grid's N and K; _FP8_OURS_CUT_K: K cut inside a K block),
#    seeded with the shipped points so only the new nodes are measured. Merge: idealrt calibrate --merge
#    $OUT/h200_gemm_fp8.json --ops gemm_fp8 --out calibration/tables/h200.json
# 2. $OUT/fp8_shapes_h200.json: gemm_fp8 and quant_fp8 timed at the dense catalog's t = 1 layer shapes beside
#    the shipped table's times (calibration/fp8_shapes.py), a check set no node is chosen from.
# 3. PROFILE=1 only: $OUT/profile_engine_h200_fp8.json and _fp8_kv.json, the FP8 engines' kernels per op class
#    (benchmarks/profile_engine.py; compare with `idealrt explain`). Run 1 (commit b435fe6) measured them.
# Each step runs in its own process with its own time limit; the script ends within BUDGET_S.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-232}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/h200_fp8fix.log"
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
# run_capped SECONDS CMD...: CMD with at most SECONDS (and never past the budget)
run_capped() {
  local cap=$1; shift
  local lim; lim=$(left)
  [ "$lim" -gt "$cap" ] && lim=$cap
  if [ "$lim" -lt 10 ]; then step "skipped (no time left): $*"; return 0; fi
  timeout "$lim" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && step "FAILED or stopped (exit $rc): $*"
  return 0
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$LOG"
step "gemm_fp8 (ours): the new grid nodes"
CMD="idealrt calibrate --ops gemm_fp8 --stack triton --out $OUT/h200_gemm_fp8.json"
python3 -c "from calibration.provenance import provenance; from calibration.table_io import seed_table; \
print(seed_table('calibration/tables/h200.json', '$OUT/h200_gemm_fp8.json', ('gemm_fp8',), 'triton', \
dict(provenance('$CMD'), gpu='h200', grid='full', stacks=['triton'])), 'shipped gemm_fp8 points kept')" 2>&1 | tee -a "$LOG"
run_capped 90 python3 -m $CMD --max-seconds 65

step "gemm_fp8 and quant_fp8 at the dense catalog's layer shapes"
run_capped 65 python3 -m calibration.fp8_shapes --table calibration/tables/h200.json \
  --out "$OUT/fp8_shapes_h200.json" --max-seconds 45

if [ "${PROFILE:-0}" = 1 ]; then
  step "engine profiles: fp8 (llama-3.2-1b, falcon-7b, llama-3.1-8b), fp8_kv (llama-3.2-1b)"
  run_capped 55 python3 -m benchmarks.profile_engine --backend fp8 --arch llama-3.2-1b,falcon-7b,llama-3.1-8b \
    --out "$OUT/profile_engine_h200_fp8.json"
  run_capped 20 python3 -m benchmarks.profile_engine --backend fp8_kv --arch llama-3.2-1b \
    --out "$OUT/profile_engine_h200_fp8_kv.json"
fi
step "done"
