"""How far the derived low-precision GEMM times (simulator/tables.py, `OpClass.derived_from`) are from measured ones:
the low-precision benchmark's FP8 and int4 times (calibration/lowp_bench.py, a committed results file) against
  - "ratio": the same file's bf16 time of the shape x the roofline ratio (the derivation's assumption alone), and
  - "table": what `predict` uses, the shipped table's bf16 GEMM x the roofline ratio (with the table's lookup).
Per-row FP8 scales (what `idealrt calibrate` measures): ours (default config) against the Triton stack, and
torch._scaled_mm against the torch stack; int4 (group 128, default config) against the Triton stack. CPU only.

    python -m benchmarks.check_lowp_derived [--results benchmarks/results/lowp_h200.json] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from simulator.gpus import get_gpu
from simulator.opclasses import gpu_roofline_s
from simulator.tables import table_model_for

# (op class, stack, measured key of the results row, bf16 key of the same row)
CASES = (("gemm_fp8", "triton", "fp8_row_default", "bf16_ours"),
         ("gemm_fp8", "torch", "fp8_row_scaled_mm", "bf16_cublas"),
         ("gemm_int4", "triton", "int4_default", "bf16_ours"))


def _us(row: dict, key: str) -> float | None:
    v = row.get(key) or {}
    return v.get("us") if isinstance(v, dict) and not v.get("error") else None


def compare(results: dict, gpu_name: str = "h200") -> list[dict]:
    """One row per shape and case: measured, ratio-derived and table-derived microseconds and their % errors."""
    gpu = get_gpu(gpu_name)
    models = {stack: table_model_for(gpu, stack) for stack in ("triton", "torch")}
    out = []
    for row in results["rows"]:
        m, n, k = row["shape"]
        shape = {"m": m, "n": n, "k": k}
        for op, stack, key, bf16_key in CASES:
            measured, bf16 = _us(row, key), _us(row, bf16_key)
            if measured is None or bf16 is None:
                continue
            ratio = float(gpu_roofline_s(op, shape, gpu) / gpu_roofline_s("gemm", shape, gpu))
            table_us = float(models[stack].op_time_s(op, shape)) * 1e6
            out.append({"op": op, "stack": stack, "m": m, "n": n, "k": k, "measured_us": measured,
                        "bf16_measured_us": bf16, "measured_vs_bf16": measured / bf16, "roofline_ratio": ratio,
                        "ratio_us": bf16 * ratio, "ratio_err_pct": 100 * (bf16 * ratio / measured - 1),
                        "table_us": table_us, "table_err_pct": 100 * (table_us / measured - 1)})
    return out


def summary(rows: list[dict]) -> list[dict]:
    """Median and P95 absolute % error per op class and stack, for both derivations."""
    out = []
    for op, stack, _, _ in CASES:
        sel = [r for r in rows if r["op"] == op and r["stack"] == stack]
        if not sel:
            continue
        entry = {"op": op, "stack": stack, "n": len(sel)}
        for how in ("ratio", "table"):
            err = np.abs([r[f"{how}_err_pct"] for r in sel])
            entry[f"{how}_median_abs_pct"] = float(np.median(err))
            entry[f"{how}_p95_abs_pct"] = float(np.percentile(err, 95))
            entry[f"{how}_mean_signed_pct"] = float(np.mean([r[f"{how}_err_pct"] for r in sel]))
        out.append(entry)
    return out


def _print_table(title: str, headers: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, title=title)
    for r in rows:
        table.add_row(*map(str, r))
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison and its summary; write both to --out."""
    from simulator.atomic import write_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results/lowp_h200.json")
    parser.add_argument("--gpu", default="h200")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    rows = compare(results, args.gpu)
    _print_table("derived against measured (us)", ["op", "stack", "m", "n", "k", "measured", "x bf16", "ratio-derived",
                                                  "err %", "table-derived", "err %"],
                [[r["op"], r["stack"], r["m"], r["n"], r["k"], f"{r['measured_us']:.1f}",
                  f"{r['measured_vs_bf16']:.2f}", f"{r['ratio_us']:.1f}", f"{r['ratio_err_pct']:+.0f}",
                  f"{r['table_us']:.1f}", f"{r['table_err_pct']:+.0f}"] for r in rows])
    summ = summary(rows)
    _print_table("absolute % error", ["op", "stack", "n", "ratio median", "ratio P95", "ratio mean signed",
                                     "table median", "table P95", "table mean signed"],
                [[s["op"], s["stack"], s["n"]] + [f"{s[f'{h}_{q}']:.1f}" for h in ("ratio", "table")
                                                  for q in ("median_abs_pct", "p95_abs_pct", "mean_signed_pct")]
                 for s in summ])
    if args.out:
        import datetime
        import sys

        prov = {"command": " ".join(["python -m benchmarks.check_lowp_derived", *sys.argv[1:]]),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "computed_on": "CPU, from the committed results file and the shipped tables"}
        write_atomic(args.out, json.dumps({"provenance": prov, "source": args.results,
                                           "source_provenance": results.get("provenance"),
                                           "method": __doc__.split("\n\n")[0], "summary": summ, "rows": rows},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
