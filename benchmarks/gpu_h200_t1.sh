#!/usr/bin/env bash
# H200, t = 1: configuration queries for validation on many architectures, on ONE H200, in under 9 minutes.
#   bash benchmarks/gpu_h200_t1.sh          # from the repository root; everything lands in $OUT
# Writes $OUT/h200_t1.jsonl (rows), $OUT/h200_t1.log and $OUT/summary_h200_t1.md.
# - Reference engine (`idealrt`, triton backend), grid `t1` (calibration/queries.py, 33-36 queries each), first the
#   8 architectures that cover head dims 64, 80, 96, 128, 256, GQA ratios 1 to 8, MQA and MoE; then `hf-eager`
#   rows of 4 architectures (grid `hf`); then 4 more architectures with the time left.
# - Each architecture runs in its own process: one that crashes (CUDA error, out of memory) loses only its own
#   remaining queries; rows are appended atomically as they are measured. Each process gets --max-seconds from
#   what is left of the budget (and at most CAP_S), so the script ends in time; one that is cut short, or skipped,
#   is said so in the log, and a second run resumes ($OUT/h200_t1.jsonl, or the shipped file, is kept).
# Afterwards copy $OUT/h200_t1.jsonl to calibration/measurements/.
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-525}  # wall seconds for everything (9 min less a margin)
CAP_S=${CAP_S:-60}         # at most this long for one architecture's triton queries
HF_RESERVE_S=120           # kept for the hf-eager phase while the first 8 architectures run
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/h200_t1.log"
ROWS="$OUT/h200_t1.jsonl"
CONFIGS=calibration/measurements/configs
[ ! -f "$ROWS" ] && [ -f calibration/measurements/h200_t1.jsonl ] && cp calibration/measurements/h200_t1.jsonl "$ROWS"

step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - $1 - ($(date +%s) - START) )); }  # seconds left, keeping $1 in reserve

# one architecture in its own process; $1: reserve to keep, $2: cap, $3: catalog name or config.json, rest: options
measure_one() {
  local reserve=$1 cap=$2 arch=$3; shift 3
  local lim; lim=$(( $(left "$reserve") - 15 ))  # ~15 s to start python, torch and the model
  [ "$lim" -gt "$cap" ] && lim=$cap
  if [ "$lim" -lt 15 ]; then step "skipped $arch $*: no time left"; return 0; fi
  local which=(--arch "$arch")
  [[ "$arch" == *.json ]] && which=(--config "$arch")
  step "measure ${which[*]} $* (max ${lim} s)"
  python3 -m idealrt measure "${which[@]}" "$@" --gpu h200 --out "$ROWS" --max-seconds "$lim" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && step "FAILED (exit $rc): $arch $*; going on with the others"
  return 0
}

FIRST=(                                   # head dim, query heads / KV heads
  llama-3.1-8b                            # 128, GQA 4
  falcon-7b                               # 64, MQA (71 / 1)
  phi-3-mini                              # 96, MHA (1)
  gemma-2-9b                              # 256, GQA 2
  "$CONFIGS/hd80-llama-2.7b/config.json"  # 80, MHA (1): no catalog model at t = 1 has head dim 80
  "$CONFIGS/qwen2.5-3b/config.json"       # 128, GQA 8 (16 / 2)
  olmoe-1b-7b                             # 128, MoE 8 of 64
  llama-3.2-1b                            # 64, GQA 4
)
HF=(llama-3.1-8b llama-3.2-1b qwen2.5-7b opt-6.7b)
MORE=(
  qwen2.5-7b                              # 128, GQA 7
  gpt-j-6b                                # 256, MHA, parallel block
  llama-3.2-3b                            # 128, GQA 3
  qwen2.5-1.5b                            # 128, GQA 6
)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$LOG"
for arch in "${FIRST[@]}"; do measure_one "$HF_RESERVE_S" "$CAP_S" "$arch" --grid t1 --backend triton; done
for arch in "${HF[@]}"; do measure_one 0 40 "$arch" --engine hf-eager --grid hf; done
for arch in "${MORE[@]}"; do measure_one 0 "$CAP_S" "$arch" --grid t1 --backend triton; done
python3 -m idealrt measure --summary "$ROWS" > "$OUT/summary_h200_t1.md" 2>>"$LOG"
step "done: $(grep -c . "$ROWS" 2>/dev/null || echo 0) rows in $ROWS"
