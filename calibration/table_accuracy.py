"""GPU benchmark: how well a throughput table predicts op times it did not measure.

Draws 200 random op shapes per stack of the kinds the simulator asks for (simulator.ops on the catalog
models), times each on this GPU with the sweep's own builders and timer (calibration.opbench,
calibration.timing), predicts it with simulator.tables, and prints, per stack and op class, the median and
95th-percentile absolute percentage error. Targets: median <= 5%, P95 <= 15% for GEMM and attention.
Distribution (numpy seed --seed): a catalog model (uniform) and a tensor-parallel degree t (uniform over its
valid t); then GEMM (40%): one of that model's GEMM (n, k) at t, with m = b*p of a prefill (b log-uniform
1..16, p log-uniform 64..8192) or b of a decode step (log-uniform 1..256), half each; prefill attention
(30%): the model's heads and head dim at t, b log-uniform 1..16, s log-uniform 128..8192, causal; decode
attention (30%): b log-uniform 1..128, context c log-uniform 128..65536. Shapes outside the full grid's
range or work caps (extrapolation, not interpolation) are redrawn; so are GEMMs exactly on grid nodes.
`--loo` instead checks the table against itself, on the CPU: every interior node value of each axis is
dropped in turn and its points predicted from the rest (a gap twice the grid's: errors are upper bounds).
`--repredict FILE...` re-predicts the GPU-measured points of committed result files (pooled) with the current
simulator.tables (their `measured_us` kept, no GPU) and prints the new summary (with --out, writes it, its
sources and rows): a check of interpolation changes on measured points, and a pooled figure over several
checks' shapes, not a new measurement. `--grid-cost` estimates the GPU seconds of the full grid
(calibration.grids.estimate_s with each point's time predicted by the table). All three run on the CPU.
Run from the repository root:
    python3 -m benchmarks.bench_table_accuracy --loo --table calibration/tables/h100-sxm.json
    python3 -m benchmarks.bench_table_accuracy --repredict benchmarks/results/table_accuracy_h100*.json \
        --table calibration/tables/h100-sxm.json [--out benchmarks/results/pooled_accuracy_h100.json]
    python3 -m benchmarks.bench_table_accuracy --grid-cost --table calibration/tables/h100-sxm.json
    python3 -m benchmarks.bench_table_accuracy --seed 1 --table $OUT/h100-sxm.json --out $OUT/table_accuracy_h100.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from calibration.grids import FULL, specs, work

TARGET = {"median": 0.05, "p95": 0.15}
SHARE = {"gemm": 0.4, "prefill_attn": 0.3, "decode_attn": 0.3}


def _logu(rng, lo: float, hi: float) -> int:
    return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw(rng, op: str) -> dict:
    """One shape of `op` as the simulator's op list builds it for a random catalog model, t and b, p, c."""
    from simulator.catalog import ARCHS
    from simulator.memory import valid_tps
    from simulator.ops import prefill_ops

    arch = ARCHS[sorted(ARCHS)[rng.integers(len(ARCHS))]]
    tps = valid_tps(arch)
    t = int(tps[rng.integers(len(tps))])
    hq, hkv, d = arch.n_heads // t, arch.n_kv_heads // t, arch.head_dim
    if op == "gemm":
        widths = sorted({(round(float(o.shape["n"])), round(float(o.shape["k"]))) for o in prefill_ops(arch, 1, 1, t)
                         if o.op_class == "gemm"})
        n, k = widths[rng.integers(len(widths))]
        m = _logu(rng, 1, 16) * _logu(rng, 64, 8192) if rng.random() < 0.5 else _logu(rng, 1, 256)
        return {"m": m, "n": n, "k": k}
    if op == "prefill_attn":
        return {"b": _logu(rng, 1, 16), "h": hq, "kv_h": hkv, "s": _logu(rng, 128, 8192), "d": d, "causal": 1}
    return {"b": _logu(rng, 1, 128), "h": hq, "kv_h": hkv, "c": _logu(rng, 128, 65536), "d": d}


def _in_grid(op: str, shape: dict) -> bool:
    """Inside the full grid's range on every axis and under its work caps (so the table interpolates)."""
    cap = specs(FULL[op])[0]  # the first sub-grid: the one the simulator asks for (prefill: causal)
    flops, nbytes = work(op, shape)
    if flops > cap.get("max_flops", np.inf) or nbytes > cap.get("max_bytes", np.inf):
        return False
    if op == "gemm":
        axes = {"m": shape["m"], "n": shape["n"], "k": shape["k"]}
    elif op == "prefill_attn":
        axes = {"bh": shape["b"] * shape["h"], "s": shape["s"], "d": shape["d"]}
    else:
        axes = {"bkv": shape["b"] * shape["kv_h"], "g": shape["h"] / shape["kv_h"], "c": shape["c"], "d": shape["d"]}
    return all(min(cap[a]) <= v <= max(cap[a]) for a, v in axes.items())


def random_shapes(n: int, seed: int) -> list[tuple[str, dict]]:
    """n (op, shape) pairs drawn as the module docstring says, inside the full grid, no GEMM on a grid node."""
    rng, out = np.random.default_rng(seed), []
    for op, share in SHARE.items():
        cap = specs(FULL[op])[0]
        while sum(o == op for o, _ in out) < round(n * share):
            shape = _draw(rng, op)
            on_node = op == "gemm" and all(shape[a] in cap[a] for a in "mnk")
            if _in_grid(op, shape) and not on_node:
                out.append((op, shape))
    return out


def leave_one_out(table: dict, gpu, stack: str, op: str) -> np.ndarray:
    """Absolute percentage errors of `op`'s points on `stack`, each axis's interior node values dropped in turn
    and their points predicted by simulator.tables from the rest of the table."""
    from simulator.opclasses import coords
    from simulator.tables import TableModel

    pts = [p for p in table["points"] if p["op"] == op and p["stack"] == stack]
    others = [p for p in table["points"] if not (p["op"] == op and p["stack"] == stack)]
    coords = np.array([[float(v) for v in coords(op, p["shape"], stack)[1]] for p in pts])  # (points, axes)
    apes = []
    for ax in range(coords.shape[1] if pts else 0):
        for value in np.unique(coords[:, ax])[1:-1]:
            drop = coords[:, ax] == value
            model = TableModel(dict(table, points=others + [p for p, d in zip(pts, drop) if not d]), gpu, stack)
            test = [p for p, d in zip(pts, drop) if d]
            shape = {k: np.array([p["shape"][k] for p in test]) for k in test[0]["shape"]}
            measured_s = np.array([p["median_us"] for p in test]) * 1e-6
            apes.append(np.abs(model.op_time_s(op, shape) - measured_s) / measured_s)
    return np.concatenate(apes) if apes else np.zeros(0)


def repredict(rows: list[dict], table: dict, gpu) -> list[dict]:
    """The measured rows with `predicted_us` and `ape` recomputed by the current simulator.tables (no GPU)."""
    from simulator.tables import TableModel

    models, out = {}, []
    for r in rows:
        if "measured_us" not in r:
            out.append(r)
            continue
        model = models.setdefault(r["stack"], TableModel(table, gpu, r["stack"]))
        pred_us = float(model.op_time_s(r["op"], r["shape"])) * 1e6
        out.append(dict(r, predicted_us=pred_us, ape=abs(pred_us - r["measured_us"]) / r["measured_us"]))
    return out


def grid_cost_s(table: dict, gpu) -> dict[str, float]:
    """Estimated GPU seconds of the full grid per op class, each point's time predicted by the table."""
    from calibration.grids import estimate_s, grid_points
    from simulator.tables import TableModel

    models, cost = {}, {}
    for p in grid_points("full"):
        model = models.setdefault(p.stack, TableModel(table, gpu, p.stack))
        op_s = float(model.op_time_s(p.op, p.shape_dict))
        cost[p.op] = cost.get(p.op, 0.0) + estimate_s(p, op_s=op_s)
    return cost


def _print_summary(summary: dict) -> None:
    for key, s in summary.items():
        print(f"{key:<22} n={s['n']:>3}  median APE {100 * s['median_ape']:5.1f}%  P95 APE {100 * s['p95_ape']:5.1f}%"
              f"  {'ok' if s['meets_target'] else 'MISSES TARGET'}")


def main() -> int:
    import json

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel, load_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="table file measured on this GPU")
    ap.add_argument("--out", help="JSON file for the results (required unless --loo, --repredict, --grid-cost; "
                    "optional with --repredict)")
    ap.add_argument("--loo", action="store_true", help="leave-one-out over the table's own grid (CPU, no GPU)")
    ap.add_argument("--repredict", metavar="FILE", nargs="+",
                    help="re-predict the measured rows of result files, pooled (CPU, no GPU)")
    ap.add_argument("--grid-cost", action="store_true", help="estimated GPU seconds of the full grid (CPU, no GPU)")
    ap.add_argument("--n", type=int, default=200, help="random shapes per stack")
    ap.add_argument("--stack", default="triton,torch")
    ap.add_argument("--seed", type=int, default=1, help="shapes seed (0 drew the first, committed run)")
    ap.add_argument("--max-seconds", type=float, default=400.0)
    args = ap.parse_args()
    table = load_table(args.table)
    gpu = get_gpu(table["provenance"]["gpu"])
    if args.loo:
        for stack in args.stack.split(","):
            for op in SHARE:
                ape = leave_one_out(table, gpu, stack, op)
                if ape.size:
                    print(f"{stack}/{op:<14} leave-one-out n={ape.size:>5}  median APE {100 * np.median(ape):5.1f}%"
                          f"  P95 APE {100 * np.percentile(ape, 95):5.1f}%")
        return 0
    if args.repredict:
        runs = [json.loads(Path(f).read_text()) for f in args.repredict]
        rows = repredict([r for run in runs for r in run["rows"]], table, gpu)
        print(f"re-prediction of the measured points of {', '.join(args.repredict)} (measured_us kept; no GPU run)")
        summary = summarize(rows)
        _print_summary(summary)
        if args.out:  # the pooled figure as a file: its sources' provenance, no measurement of its own
            sources = [{"file": f, "seed": run.get("seed"), "measured_on": run["provenance"].get("gpu_name"),
                        "date": run["provenance"].get("date"), "table": run["table"]["file"]}
                       for f, run in zip(args.repredict, runs)]
            write_json_atomic(args.out, {"kind": "re-prediction of measured points (CPU)", "command": " ".join(
                sys.argv), "table": {"file": args.table, "provenance": table["provenance"]}, "sources": sources,
                "target": TARGET, "summary": summary, "rows": rows})
            print(f"wrote {args.out}")
        return 0
    if args.grid_cost:
        cost = grid_cost_s(table, gpu)
        print("full grid, estimated GPU seconds: " + ", ".join(f"{op} {s:.1f}" for op, s in cost.items())
              + f"; total {sum(cost.values()):.1f} (table's own: {table['provenance'].get('gpu_seconds')})")
        return 0
    if not args.out:
        ap.error("--out is required (or give --loo, --repredict or --grid-cost)")
    shapes, rows, t0 = random_shapes(args.n, args.seed), [], time.perf_counter()
    for stack in args.stack.split(","):
        model = TableModel(table, gpu, stack)
        for op, shape in shapes:
            if time.perf_counter() - t0 > args.max_seconds:
                print(f"stopped at --max-seconds {args.max_seconds:g}", file=sys.stderr)
                break
            rows.append(measure_row(model, op, stack, shape))
        print(f"{stack}: table warnings: {sorted(model.warnings) or 'none'}", file=sys.stderr)
    summary = summarize(rows)
    _print_summary(summary)
    write_json_atomic(args.out, {"provenance": provenance(), "table": {"file": args.table,
                      "provenance": table["provenance"]}, "target": TARGET, "seed": args.seed, "summary": summary,
                      "rows": rows, "wall_seconds": round(time.perf_counter() - t0, 1)})
    print(f"wrote {args.out}")
    return 0


def measure_row(model, op: str, stack: str, shape: dict) -> dict:
    """One op timed on this GPU (the sweep's builders and timer) beside the table's time for it: a result row,
    or an `error` row when the op fails (fail-soft: the run goes on)."""
    from calibration.opbench import build
    from calibration.timing import measure

    try:
        bench = build(op, stack, shape)
        timing = measure(bench.call, rotate=bench.rotate, use_graph=bench.graph)
    except Exception as e:  # noqa: BLE001 — fail-soft, reported
        return {"op": op, "stack": stack, "shape": shape, "error": f"{type(e).__name__}: {e}"[:200]}
    pred_us = float(model.op_time_s(op, shape)) * 1e6
    return {"op": op, "stack": stack, "shape": shape, "measured_us": timing.median_us, "p10_us": timing.p10_us,
            "p90_us": timing.p90_us, "predicted_us": pred_us, "ape": abs(pred_us - timing.median_us) / timing.median_us,
            "flagged": timing.flagged}


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
