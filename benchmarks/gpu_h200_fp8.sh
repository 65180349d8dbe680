#!/usr/bin/env bash
# H200, t = 1: the FP8 engine variants (`fp8`: FP8 e4m3 weights and per-token FP8 activations, bf16 KV cache;
# `fp8_kv`: the same with an FP8 KV cache): checks, the per-token quantization kernel's table class, then
# configuration queries of several architectures.
#   bash benchmarks/gpu_h200_fp8.sh          # from the repository root; everything lands in $OUT (7 min cap)
# Writes $OUT/fp8_check.json (kernels against torch references, FP8 engine logits against the bf16 engine's),
# $OUT/h200_quant_fp8.json (the quant_fp8 class: kernels.quant_fp8 over tokens x in-features),
# $OUT/h200_fp8_classes.json (gemm_fp8 ours and decode_attn_fp8), $OUT/h200_t1_fp8.jsonl
# (rows of `idealrt measure --backend fp8|fp8_kv`, grid t1), $OUT/h200_fp8.log and $OUT/summary_h200_fp8.md.
# - Each step and each architecture runs in its own process with its own time limit: a failing one loses only its
#   own results, and the script ends within BUDGET_S.
# Afterwards: merge the tables' points into calibration/tables/h200.json (`idealrt calibrate --merge FILE --ops
# CLASSES --out calibration/tables/h200.json`), copy h200_t1_fp8.jsonl to
# calibration/measurements/, then `idealrt fit --stack fp8` and `idealrt validate --stack fp8` (and fp8_kv).
set -uo pipefail
OUT=${OUT:-/tmp/idealrt-out}
BUDGET_S=${BUDGET_S:-400}  # wall seconds for everything (7 min less a margin)
CAP_S=${CAP_S:-55}         # at most this long for one architecture's queries
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
LOG="$OUT/h200_fp8.log"
ROWS="$OUT/h200_t1_fp8.jsonl"
[ ! -f "$ROWS" ] && [ -f calibration/measurements/h200_t1_fp8.jsonl ] && cp calibration/measurements/h200_t1_fp8.jsonl "$ROWS"

step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# one architecture in its own process, at most CAP_S seconds; $1: engine variant (fp8, fp8_kv), $2: catalog name
measure_one() {
  local backend=$1 arch=$2
  local lim; lim=$(( $(left) - 20 ))  # ~20 s to start python, torch, build the model and compile
  [ "$lim" -gt "$CAP_S" ] && lim=$CAP_S
  if [ "$lim" -lt 15 ]; then step "skipped $backend $arch: no time left"; return 0; fi
  step "measure --backend $backend --arch $arch (max ${lim} s)"
  timeout $(( lim + 30 )) python3 -m idealrt measure --arch "$arch" --grid t1 --backend "$backend" --gpu h200 \
    --out "$ROWS" --max-seconds "$lim" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && step "FAILED (exit $rc): $backend $arch; going on with the others"
  return 0
}

# has the shipped table points of op class $1 (stack triton)?
in_table() { grep -q "\"op\": \"$1\", \"stack\": \"triton\"" calibration/tables/h200.json; }
# rows of ($1 backend, $2 arch) already in $ROWS
rows_of() { grep "\"arch\": \"$2\"" "$ROWS" 2>/dev/null | grep -c "\"backend\": \"$1\""; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$LOG"
# Steps whose results are shipped already (benchmarks/results/fp8_check_h200.json, the table's classes, an
# architecture's rows) are skipped; FORCE=1 runs them all again.
if [ "${FORCE:-0}" = 1 ] || [ ! -f benchmarks/results/fp8_check_h200.json ]; then
  step "checks: quantization kernel, FP8 linear, FP8-KV kernels, FP8 engines' logits against bf16 (llama-3.2-1b)"
  timeout 120 python3 -m calibration.fp8_check --out "$OUT/fp8_check.json" --arch llama-3.2-1b 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -ne 0 ] && step "CHECKS FAILED or timed out (see fp8_check.json); measuring anyway"
fi
if [ "${FORCE:-0}" = 1 ] || ! in_table quant_fp8; then
  step "table class quant_fp8 (kernels.quant_fp8.quantize_rows)"
  timeout 75 python3 -m idealrt calibrate --ops quant_fp8 --stack triton --out "$OUT/h200_quant_fp8.json" \
    --max-seconds 30 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -ne 0 ] && step "FAILED: calibrate --ops quant_fp8"
fi
if [ "${FORCE:-0}" = 1 ] || ! in_table decode_attn_fp8; then
  step "table classes gemm_fp8 (ours: the nodes the shipped table lacks) and decode_attn_fp8"
  CMD="idealrt calibrate --ops gemm_fp8,decode_attn_fp8 --stack triton --out $OUT/h200_fp8_classes.json"
  python3 -c "from calibration.provenance import provenance; from calibration.table_io import seed_table; \
print(seed_table('calibration/tables/h200.json', '$OUT/h200_fp8_classes.json', ('gemm_fp8',), 'triton', \
dict(provenance('$CMD'), gpu='h200', grid='full', stacks=['triton'])), 'shipped gemm_fp8 points kept')" 2>&1 | tee -a "$LOG"
  timeout 150 python3 -m $CMD --max-seconds 110 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -ne 0 ] && step "FAILED: calibrate --ops gemm_fp8,decode_attn_fp8"
fi
# FP8 weights on four architectures first (head dims 64, 128, 96; GQA 4 and 7, MHA), then the FP8 KV cache, then
# more architectures (MQA with a parallel block, head dim 256); an architecture measured already is skipped
for run in fp8:llama-3.2-1b fp8:qwen2.5-7b fp8:llama-3.1-8b fp8:phi-3-mini fp8_kv:llama-3.1-8b fp8_kv:qwen2.5-7b \
           fp8:mistral-7b fp8_kv:llama-3.2-1b fp8:falcon-7b fp8:gemma-2-9b fp8_kv:mistral-7b fp8_kv:phi-3-mini \
           fp8:llama-3.2-3b; do
  if [ "$(rows_of "${run%%:*}" "${run#*:}")" -ge 33 ]; then continue; fi
  measure_one "${run%%:*}" "${run#*:}"
done
python3 -m idealrt measure --summary "$ROWS" > "$OUT/summary_h200_fp8.md" 2>>"$LOG"
step "done: $(grep -c . "$ROWS" 2>/dev/null || echo 0) rows in $ROWS"
