"""GPU check: the FP8 classes' table times at the shapes the catalog's dense architectures give them.

Every dense catalog architecture at FP8 w8a8, t = 1: the (n, k) of each decoder-layer GEMM (`gemm_fp8`, ours) and
the in-features of its input quantization (`quant_fp8`), at m (rows) = 1, 8, 32 (decode batches) and 1024, 4096
(prefill tokens). Each shape is timed with the sweep's builders and timer and predicted by the table
(calibration.table_accuracy.measure_row); `python -m benchmarks.bench_table_accuracy --repredict FILE` re-predicts
the rows with a later table or time model on the CPU. Run from the repository root:
    python3 -m calibration.fp8_shapes --table calibration/tables/h200.json --out $OUT/fp8_shapes_h200.json
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

ROWS = (1, 8, 32, 1024, 4096)  # m: decode batches, prefill tokens
FP8_CLASSES = ("gemm_fp8", "quant_fp8")


def catalog_shapes(rows: tuple[int, ...] = ROWS) -> list[tuple[str, dict]]:
    """(op class, shape) of the FP8 classes over the dense catalog architectures' layers at t = 1, each once."""
    from simulator.catalog import ARCHS
    from simulator.ops import decode_ops
    from simulator.precision import Precision

    w8a8 = Precision(weights="fp8", activations="fp8", kv="bf16", scale="channel")
    out: list[tuple[str, dict]] = []
    for arch in ARCHS.values():
        if arch.is_moe:
            continue
        for op in decode_ops(replace(arch, precision=w8a8), 1, 128, 1, fused=True):
            if op.op_class not in FP8_CLASSES:
                continue
            for m in rows:
                shape = ({"m": m, "n": int(op.shape["n"]), "k": int(op.shape["k"])} if op.op_class == "gemm_fp8"
                         else {"rows": m, "k": int(op.shape["k"])})
                if (op.op_class, shape) not in out:
                    out.append((op.op_class, shape))
    return sorted(out, key=lambda s: s[1].get("m", s[1].get("rows")))  # decode rows first


def main() -> int:
    from calibration.provenance import provenance
    from calibration.table_accuracy import measure_row, summarize
    from calibration.table_io import write_json_atomic
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel, load_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="table file measured on this GPU")
    ap.add_argument("--out", required=True, help="JSON file for the results")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args()
    table = load_table(args.table)
    model = TableModel(table, get_gpu(table["provenance"]["gpu"]), "triton")
    shapes, rows, t0 = catalog_shapes(), [], time.perf_counter()
    print(f"{len(shapes)} shapes", flush=True)

    def write() -> dict:  # after every 50 shapes too: a run stopped by a time limit keeps what it measured
        summary = summarize(rows)
        write_json_atomic(args.out, {"provenance": provenance(), "table": {"file": args.table,
                          "provenance": table["provenance"]}, "what": "FP8 classes at the dense catalog's t = 1 "
                          "shapes", "rows_m": list(ROWS), "summary": summary, "rows": rows,
                          "wall_seconds": round(time.perf_counter() - t0, 1)})
        return summary

    for i, (op, shape) in enumerate(shapes):
        if time.perf_counter() - t0 > args.max_seconds:
            print(f"stopped at --max-seconds {args.max_seconds:g} after {i} shapes", flush=True)
            break
        rows.append(measure_row(model, op, "triton", shape))
        if i % 50 == 49:
            write()
            print(f"{i + 1}/{len(shapes)} {time.perf_counter() - t0:.0f} s", flush=True)
    for key, s in write().items():
        print(f"{key}: n={s['n']} median APE {100 * s['median_ape']:.1f}% P95 {100 * s['p95_ape']:.1f}%", flush=True)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
