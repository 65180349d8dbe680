"""GPU benchmark: how well a throughput table predicts op times it did not measure.

Draws random op shapes inside the measured grid but off its nodes (GEMM, prefill and decode attention, the
shapes models produce: N, K multiples of 128, GQA ratios 1-8), times each on this GPU with the sweep's own
builders and timer (calibration.opbench, calibration.timing), predicts it with simulator.tables, and prints,
per stack and op class, the median and 95th-percentile absolute percentage error. Targets: median <= 5%,
P95 <= 15% for GEMM and attention. Run from the repo root:
    python3 benchmarks/bench_table_accuracy.py --table $OUT/h100-sxm.json --out $OUT/table_accuracy_h100.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import numpy as np  # noqa: E402

from calibration.grids import FULL, work  # noqa: E402

TARGET = {"median": 0.05, "p95": 0.15}
SHARE = {"gemm": 0.4, "prefill_attn": 0.3, "decode_attn": 0.3}


def _logu(rng, lo: float, hi: float) -> int:
    return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw(rng, op: str) -> dict:
    if op == "gemm":
        return {"m": _logu(rng, 1, 16384), "n": 128 * _logu(rng, 2, 256), "k": 128 * _logu(rng, 2, 128)}
    if op == "prefill_attn":
        h = int(rng.choice([4, 8, 16, 32]))
        return {"b": _logu(rng, 1, 8), "h": h, "kv_h": max(1, h // int(rng.choice([1, 4, 8]))), "s": _logu(rng, 128, 16384),
                "d": int(rng.choice([64, 128])), "causal": int(rng.random() < 0.7)}
    kv_h = int(rng.choice([1, 2, 4, 8]))
    return {"b": _logu(rng, 1, 64), "h": kv_h * int(rng.choice([1, 2, 4, 8])), "kv_h": kv_h,
            "c": _logu(rng, 128, 65536), "d": int(rng.choice([64, 128]))}


def random_shapes(n: int, seed: int) -> list[tuple[str, dict]]:
    """n (op, shape) pairs within the full grid's work caps, none of them a grid node."""
    rng, out = np.random.default_rng(seed), []
    for op, share in SHARE.items():
        cap = FULL[op]
        while sum(o == op for o, _ in out) < round(n * share):
            shape = _draw(rng, op)
            flops, nbytes = work(op, shape)
            on_node = op == "gemm" and all(shape[a] in cap[a] for a in "mnk")
            if flops <= cap.get("max_flops", np.inf) and nbytes <= cap.get("max_bytes", np.inf) and not on_node:
                out.append((op, shape))
    return out


def main() -> int:
    from calibration.opbench import build
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from calibration.timing import measure
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel, load_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="table file measured on this GPU")
    ap.add_argument("--out", required=True, help="JSON file for the results")
    ap.add_argument("--n", type=int, default=200, help="random shapes per stack")
    ap.add_argument("--stack", default="triton,torch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=400.0)
    args = ap.parse_args()
    table = load_table(args.table)
    gpu = get_gpu(table["provenance"]["gpu"])
    shapes, rows, t0 = random_shapes(args.n, args.seed), [], time.perf_counter()
    for stack in args.stack.split(","):
        model = TableModel(table, gpu, stack)
        for op, shape in shapes:
            if time.perf_counter() - t0 > args.max_seconds:
                print(f"stopped at --max-seconds {args.max_seconds:g}", file=sys.stderr)
                break
            try:
                bench = build(op, stack, shape)
                timing = measure(bench.call, rotate=bench.rotate, use_graph=bench.graph)
            except Exception as e:  # noqa: BLE001 — fail-soft, reported
                rows.append({"op": op, "stack": stack, "shape": shape, "error": f"{type(e).__name__}: {e}"[:200]})
                continue
            pred_us = float(model.op_time_s(op, shape)) * 1e6
            rows.append({"op": op, "stack": stack, "shape": shape, "measured_us": timing.median_us,
                         "predicted_us": pred_us, "ape": abs(pred_us - timing.median_us) / timing.median_us,
                         "flagged": timing.flagged})
        print(f"{stack}: table warnings: {sorted(model.warnings) or 'none'}", file=sys.stderr)
    summary = summarize(rows)
    for key, s in summary.items():
        print(f"{key:<22} n={s['n']:>3}  median APE {100 * s['median_ape']:5.1f}%  P95 APE {100 * s['p95_ape']:5.1f}%"
              f"  {'ok' if s['meets_target'] else 'MISSES TARGET'}")
    write_json_atomic(args.out, {"provenance": provenance(), "table": {"file": args.table,
                      "provenance": table["provenance"]}, "target": TARGET, "summary": summary, "rows": rows,
                      "wall_seconds": round(time.perf_counter() - t0, 1)})
    print(f"wrote {args.out}")
    return 0


def summarize(rows: list[dict]) -> dict:
    """Median and P95 absolute percentage error per stack/op class (errors counted apart)."""
    out = {}
    for key in sorted({f"{r['stack']}/{r['op']}" for r in rows}):
        mine = [r for r in rows if f"{r['stack']}/{r['op']}" == key]
        ape = np.array([r["ape"] for r in mine if "ape" in r])
        if ape.size == 0:
            out[key] = {"n": 0, "errors": len(mine), "median_ape": float("nan"), "p95_ape": float("nan"),
                        "meets_target": False}
            continue
        med, p95 = float(np.median(ape)), float(np.percentile(ape, 95))
        out[key] = {"n": int(ape.size), "errors": len(mine) - int(ape.size), "median_ape": round(med, 4),
                    "p95_ape": round(p95, 4), "meets_target": med <= TARGET["median"] and p95 <= TARGET["p95"]}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
