#!/usr/bin/env bash
# The GPU runs of the reference engine, one entry point per lent machine; everything lands in $OUT
# (at most 8 files, flat). Run from the repository root:
#   bash benchmarks/gpu_measure.sh h100      # one H100: check, bench, 8 archs x ~65 queries, hf-eager  (<= 9 min)
#   bash benchmarks/gpu_measure.sh h200x4    # four H200: all-reduce t=2,4 into the H200 table, check at t=4,
#                                            # 3 archs at t=2 and t=4                                 (<= 9 min)
#   bash benchmarks/gpu_measure.sh smoke     # one GPU, ~3 min: all families checked, bench, a few queries
# Each measure phase gets --max-seconds from what is left of the budget, so the script ends in time.
# Measurement files already in calibration/measurements/ are copied to $OUT first, so a second run
# resumes where the first stopped. Afterwards copy $OUT/*.jsonl to calibration/measurements/ and
# $OUT/bench_engine_h100.json to benchmarks/results/.
set -uo pipefail
MODE=${1:?usage: gpu_measure.sh h100|h200x4|smoke}
OUT=${OUT:-/tmp/idealrt-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
START=$(date +%s)
LOG="$OUT/$MODE.log"
left() { echo $(( $1 - ($(date +%s) - START) )); }  # seconds left of a budget of $1
step() { echo "== [$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
measure() { python3 -m idealrt measure "$@" 2>&1 | tee -a "$LOG"; }

resume() { for f in "$@"; do [ -f "calibration/measurements/$f" ] && cp "calibration/measurements/$f" "$OUT/"; done; }

H100_ARCHS=llama-3.1-8b,olmoe-1b-7b,gpt-j-6b,falcon-7b,opt-6.7b,bloom-7b1,llama-3.2-1b,qwen2.5-7b
TP_ARCHS=llama-3.1-8b,opt-6.7b,llama-3.1-70b

case "$MODE" in
smoke)  # one GPU, ~3 min: every family checked, bench, MoE and MQA queries on both stacks, one hf-eager 8B query
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
  step check_engine
  python3 -m benchmarks.check_engine --out "$OUT/check_smoke.json" 2>&1 | tee -a "$LOG"
  step bench_engine
  python3 -m benchmarks.bench_engine --out "$OUT/bench_engine_smoke.json" 2>&1 | tee -a "$LOG"
  step measure
  measure --arch olmoe-1b-7b,falcon-7b,bloom-7b1 --grid smoke --out "$OUT/smoke_t1.jsonl"
  measure --arch olmoe-1b-7b --backend torch --grid smoke --out "$OUT/smoke_t1.jsonl"
  measure --arch llama-3.1-8b --engine hf-eager --queries "512,8,1" --out "$OUT/smoke_t1.jsonl"
  ;;
h100)  # budget 540 s: check ~40, bench ~15, measure (triton) until 420, hf-eager ~50, torch stack with the rest
  resume h100-sxm_t1.jsonl
  step check_engine t=1
  python3 -m benchmarks.check_engine --out "$OUT/check_engine_h100_t1.json" 2>&1 | tee -a "$LOG"
  step bench_engine
  python3 -m benchmarks.bench_engine --out "$OUT/bench_engine_h100.json" 2>&1 | tee -a "$LOG"
  step measure triton
  measure --arch "$H100_ARCHS" --grid h100 --gpu h100-sxm --out "$OUT/h100-sxm_t1.jsonl" --max-seconds "$(( $(left 420) - 15 ))"
  step measure hf-eager
  measure --arch llama-3.1-8b,opt-6.7b --engine hf-eager --grid hf --gpu h100-sxm --out "$OUT/h100-sxm_t1.jsonl" \
    --max-seconds "$(( $(left 480) - 15 ))"
  step measure torch stack
  measure --arch llama-3.1-8b,olmoe-1b-7b --backend torch --grid h100 --gpu h100-sxm --out "$OUT/h100-sxm_t1.jsonl" \
    --max-seconds "$(( $(left 530) - 15 ))"
  python3 -m idealrt measure --summary "$OUT/h100-sxm_t1.jsonl" > "$OUT/summary_h100.md"
  ;;
h200x4)  # budget 520 s: all-reduce t=2,4 ~60, engine check at the top t ~40, t=2 until 300, t=4 until 500
  NGPU=$(nvidia-smi -L | wc -l)
  TOP=$([ "$NGPU" -ge 4 ] && echo 4 || echo 2)
  TP2_GPUS=${TP2_GPUS:-0,1}  # the pair for t=2; another pair leaves GPU 0 free for a calibration meanwhile
  resume h200_t2.jsonl h200_t4.jsonl
  step "all-reduce t=2..$TOP into calibration/tables/h200.json"
  python3 -m idealrt calibrate --allreduce --tp "$(seq -s, 2 2 "$TOP")" --out calibration/tables/h200.json \
    --max-seconds 150 2>&1 | tee -a "$LOG"
  cp calibration/tables/h200.json "$OUT/"
  step "check_engine t=$TOP"
  torchrun --nproc-per-node "$TOP" -m benchmarks.check_engine --out "$OUT/check_engine_h200_t$TOP.json" 2>&1 | tee -a "$LOG"
  step measure t=2
  CUDA_VISIBLE_DEVICES=$TP2_GPUS torchrun --nproc-per-node 2 -m idealrt measure --t 2 --arch "$TP_ARCHS" --grid tp \
    --gpu h200 --out "$OUT/h200_t2.jsonl" --max-seconds "$(( $(left 300) - 20 ))" 2>&1 | tee -a "$LOG"
  if [ "$TOP" -ge 4 ]; then
    step measure t=4
    torchrun --nproc-per-node 4 -m idealrt measure --t 4 --arch "$TP_ARCHS" --grid tp \
      --gpu h200 --out "$OUT/h200_t4.jsonl" --max-seconds "$(( $(left 500) - 20 ))" 2>&1 | tee -a "$LOG"
  else
    step "only $NGPU GPUs: t=4 skipped"
  fi
  python3 -m idealrt measure --summary "$OUT"/h200_t*.jsonl > "$OUT/summary_h200.md"
  ;;
*) echo "gpu_measure.sh: unknown mode '$MODE'; use h100, h200x4 or smoke" >&2; exit 2 ;;
esac
step done
