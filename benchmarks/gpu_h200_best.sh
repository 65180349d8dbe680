#!/usr/bin/env bash
# H200, t = 1: the engine variant `best` (calibration/engine_variants/best.py) checked, then measured on the same
# configuration queries as the triton rows of calibration/measurements/h200_t1.jsonl, on ONE H200, in under 6 min.
#   bash benchmarks/gpu_h200_best.sh          # from the repository root; everything lands in $OUT
# Writes $OUT/profile_{best,torch}_h200.json (benchmarks/profile_engine.py: the engines' kernels, for `idealrt explain`),
# $OUT/check_best_h200.json (logits of the best engine against the triton engine and float32, and its
# per-shape kernel choices against the simulator's), $OUT/h200_t1_best.jsonl (rows, backend best),
# $OUT/summary_h200_t1_best.md and $OUT/gpu_h200_best.log.
# - Each architecture runs in its own process with --max-seconds from what is left of the budget (at most CAP_S),
#   so the script ends in time; one cut short or skipped is said so in the log. A failing step does not stop the
#   later ones. Rows already in calibration/measurements/h200_t1.jsonl are not measured again; afterwards append
#   the new rows of $OUT/h200_t1_best.jsonl there.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-340}  # wall seconds for everything (the 360 s cap less a margin)
CAP_S=${CAP_S:-45}         # at most this long for one architecture's queries
CHECK_S=${CHECK_S:-60}     # at most this long for the check
PROFILE_S=${PROFILE_S:-80} # at most this long for each stack's profile
PROFILE_ARCHS=${PROFILE_ARCHS:-phi-3-mini,qwen2.5-1.5b,falcon-7b,llama-3.1-8b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/gpu_h200_best.log"
ROWS="$OUT/h200_t1_best.jsonl"
CONFIGS=calibration/measurements/configs

step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# one architecture in its own process; $1: cap, $2: catalog name or config.json
measure_one() {
  local cap=$1 arch=$2
  local lim; lim=$(( $(left) - 15 ))  # ~15 s to start python, torch and the model
  [ "$lim" -gt "$cap" ] && lim=$cap
  if [ "$lim" -lt 15 ]; then step "skipped $arch: no time left"; return 0; fi
  local which=(--arch "$arch")
  [[ "$arch" == *.json ]] && which=(--config "$arch")
  step "measure ${which[*]} --backend best (max ${lim} s)"
  python3 -m idealrt measure "${which[@]}" --grid t1 --backend best --gpu h200 --out "$ROWS" \
    --max-seconds "$lim" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && step "FAILED (exit $rc): $arch; going on with the others"
  return 0
}

ARCHS=(                                   # head dim, query heads / KV heads; * also has torch rows
  llama-3.1-8b                            # 128, GQA 4 *
  phi-3-mini                              # 96, MHA *
  qwen2.5-7b                              # 128, GQA 7 *
  llama-3.2-1b                            # 64, GQA 4
  falcon-7b                               # 64, MQA (71 / 1)
  qwen2.5-1.5b                            # 128, GQA 6
  llama-3.2-3b                            # 128, GQA 3
  "$CONFIGS/qwen2.5-3b/config.json"       # 128, GQA 8
  gemma-2-9b                              # 256, GQA 2
)

# rows already shipped of the best variant are not measured again (measure resumes from them)
[ ! -f "$ROWS" ] && grep -h '"engine_variant": "best"' calibration/measurements/h200_t1.jsonl > "$ROWS" 2>/dev/null

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$LOG"
step "profile: the best and torch engines kernel by kernel (where the table's vendor times and the engine's differ)"
for be in best torch; do
  timeout "$PROFILE_S" python3 -m benchmarks.profile_engine --backend "$be" --arch "$PROFILE_ARCHS" \
    --out "$OUT/profile_${be}_h200.json" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -ne 0 ] && step "PROFILE $be FAILED or timed out (see above); going on"
done
step "check: best engine against the triton engine and float32; its choices against the simulator's"
timeout "$CHECK_S" python3 -m benchmarks.check_best --out "$OUT/check_best_h200.json" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -ne 0 ] && step "CHECK FAILED or timed out (see above); measuring anyway"
for arch in "${ARCHS[@]}"; do measure_one "$CAP_S" "$arch"; done
python3 -m idealrt measure --summary "$ROWS" > "$OUT/summary_h200_t1_best.md" 2>>"$LOG"
step "done: $(grep -c . "$ROWS" 2>/dev/null || echo 0) rows in $ROWS"
