"""GPU benchmark: op time along one shape axis, measured densely, beside the table's interpolation.

Where a table misses (benchmarks/bench_table_accuracy.py), a dense line scan shows why: steps at kernel
tiles, waves or configuration switches, alignment slow paths, or a curve the interpolation does not follow.
Each scan holds every other dimension fixed and walks one axis in small geometric steps, with the powers
of two and odd values next to them; every point is timed with the sweep's own builders and timer
(calibration.opbench, calibration.timing) and predicted by simulator.tables from --table.
Run from the repo root on the GPU:
    python3 -m benchmarks.scan_table_axis --table calibration/tables/h100-sxm.json --out $OUT/scan_h100.json
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def axis_values(lo: int, hi: int, ratio: float = 1.08) -> list[int]:
    """Geometric steps from lo to hi, plus every power of two in range and the value just above it."""
    vals = {int(round(v)) for v in np.geomspace(lo, hi, int(np.log(hi / lo) / np.log(ratio)) + 1)}
    pow2 = [2**i for i in range(int(np.log2(hi)) + 1) if lo <= 2**i <= hi]
    return sorted(vals | set(pow2) | {p + 1 for p in pow2 if p + 1 <= hi})


# (op, fixed dims, scanned axis, lo, hi): shapes the catalog models ask for
SCANS = [("prefill_attn", dict(b=b, h=h, kv_h=kv, d=d, causal=1), "s", 64, 8192)
         for b, h, kv, d in [(1, 8, 8, 128), (1, 32, 8, 128), (4, 32, 8, 128), (2, 16, 16, 64), (1, 32, 32, 256)]]
SCANS += [("gemm", dict(n=n, k=k), "m", 1, 16384) for n, k in [(4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)]]
SCANS += [("gemm", dict(m=m, k=4096), "n", 256, 65536) for m in (1, 64, 1024, 4096)]
SCANS += [("decode_attn", dict(b=b, h=h, kv_h=kv, d=d), "c", 128, 65536)
          for b, h, kv, d in [(1, 32, 8, 128), (8, 32, 8, 128), (32, 32, 8, 128), (4, 32, 32, 80)]]


def main() -> int:
    from bench_table_accuracy import measure_row
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel, load_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="table file measured on this GPU")
    ap.add_argument("--out", required=True, help="JSON file for the scans")
    ap.add_argument("--stack", default="triton,torch")
    ap.add_argument("--ratio", type=float, default=1.08, help="step of the geometric axis values")
    ap.add_argument("--max-seconds", type=float, default=200.0)
    args = ap.parse_args()
    table = load_table(args.table)
    gpu = get_gpu(table["provenance"]["gpu"])
    rows, t0 = [], time.perf_counter()
    for stack in args.stack.split(","):
        model = TableModel(table, gpu, stack)
        for scan, (op, fixed, axis, lo, hi) in enumerate(SCANS):
            for v in axis_values(lo, hi, args.ratio):
                if time.perf_counter() - t0 > args.max_seconds:
                    break
                rows.append(dict(measure_row(model, op, stack, dict(fixed, **{axis: v})), scan=scan, axis=axis))
        print(f"{stack}: {sum(r['stack'] == stack for r in rows)} points, {time.perf_counter() - t0:.0f} s")
    write_json_atomic(args.out, {"provenance": provenance(), "table": {"file": args.table,
                      "provenance": table["provenance"]}, "rows": rows,
                      "wall_seconds": round(time.perf_counter() - t0, 1)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
