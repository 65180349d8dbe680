"""Where predictions shrink with more work, per stack: every catalog model on the GPUs with measured tables, at
every valid t, along p (b = 1, o = 64), b (p = 128, o = 64) and o (p = 128, b = 1); and the measured engine rows
against the `best` stack's (per op the faster kernel) and its padded envelope `ideal`'s table-only predictions.

    python -m benchmarks.monotone_scan [--out benchmarks/results/monotone_scan.json]

Computed on the CPU from the shipped tables and measurement rows (no GPU); prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import warnings
from datetime import datetime, timezone

import numpy as np

from calibration.measurements_io import arch_of, of_current_engine, read_measurements
from simulator.atomic import write_atomic
from simulator.catalog import ARCHS
from simulator.errors import UserError
from simulator.fits import load_fit
from simulator.gpus import get_gpu
from simulator.memory import valid_tps
from simulator.paths import REPO
from simulator.predict import predict
from simulator.tables import STACKS, default_model

GPUS = ("h100-sxm", "h200")  # the GPUs with measured tables
SERIES = {"p": (np.arange(1, 4097, 7), 64, 1), "b": (128, 64, np.arange(1, 65)), "o": (128, np.arange(1, 300), 1)}
ROWS = "calibration/measurements/h200_t1.jsonl"


def drops(stack: str) -> dict:
    """Per axis: series (model, GPU, t) whose total time falls somewhere, the worst fall, and per-token time rising
    with b."""
    out = {axis: {"series": 0, "falling": 0, "worst_pct": 0.0} for axis in SERIES}
    out["per_token_in_b"] = {"series": 0, "rising": 0, "worst_pct": 0.0}
    for gpu_name in GPUS:
        gpu = get_gpu(gpu_name)
        model, fit = default_model(gpu, stack), load_fit(gpu.name, stack)
        for arch in ARCHS.values():
            for t in valid_tps(arch):
                for axis, (p, o, b) in SERIES.items():
                    if np.max(p) + np.max(o) - 1 > arch.max_positions:
                        continue
                    try:
                        total = predict(arch, gpu, p, o, b, t, model=model, coefficients=fit).total_s
                    except UserError:
                        continue
                    fall = np.diff(total) / total[:-1]
                    rec = out[axis]
                    rec["series"] += 1
                    rec["falling"] += int((fall < -1e-9).any())
                    rec["worst_pct"] = min(rec["worst_pct"], 100 * float(fall.min()))
                    if axis == "b":
                        per_token = total / b
                        rise = np.diff(per_token) / per_token[:-1]
                        rec = out["per_token_in_b"]
                        rec["series"] += 1
                        rec["rising"] += int((rise > 1e-9).any())
                        rec["worst_pct"] = max(rec["worst_pct"], 100 * float(rise.max()))
    return out


def best_against_rows() -> dict:
    """The measured H200 rows of the current engine against the best and ideal stacks' and each row's own stack's
    table-only predictions: median and range of predicted / measured − 1 (%)."""
    rows, _ = of_current_engine(read_measurements([REPO / ROWS]))
    rows = [r for r in rows if r["backend"] in ("triton", "torch") and r["engine"] == "idealrt"]
    gpu = get_gpu("h200")
    models = {s: default_model(gpu, s) for s in ("triton", "torch", "best", "ideal")}
    ratio = {"best": [], "ideal": [], "own": []}
    for r in rows:
        arch = arch_of(r)
        for key, stack in (("best", "best"), ("ideal", "ideal"), ("own", r["backend"])):
            pred = predict(arch, gpu, r["p"], r["o"], r["b"], r["t"], model=models[stack])
            ratio[key].append(float(pred.total_s) / r["total_s"] - 1)
    return {key: {"rows": len(v), "median_pct": 100 * float(np.median(v)), "p5_pct": 100 * float(np.percentile(v, 5)),
                  "p95_pct": 100 * float(np.percentile(v, 95))} for key, v in ratio.items()}


def main(argv: list[str] | None = None) -> int:
    """Scan every stack, compare the best stack with the engine rows, print and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/monotone_scan.json")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    scan = {stack: drops(stack) for stack in STACKS}
    rows = best_against_rows()
    print(f"{'stack':8} {'axis':16} {'series':>7} {'not monotone':>13} {'worst %':>8}")
    for stack, rec in scan.items():
        for axis, r in rec.items():
            bad = r.get("falling", r.get("rising"))
            print(f"{stack:8} {axis:16} {r['series']:7d} {bad:13d} {r['worst_pct']:8.2f}")
    for key, r in rows.items():
        print(f"H200 rows, {key} stack table-only: predicted/measured - 1 median {r['median_pct']:+.1f}%, "
              f"P5 {r['p5_pct']:+.1f}%, P95 {r['p95_pct']:+.1f}% ({r['rows']} rows)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                            check=False).stdout.strip()
    result = {"provenance": {"computed": "on the CPU from the shipped tables and rows (no GPU)", "commit": commit,
                             "python": platform.python_version(), "date": datetime.now(timezone.utc).isoformat(),
                             "command": "python -m benchmarks.monotone_scan"},
              "series": {"p": "1..4096 step 7, o 64, b 1", "b": "1..64, p 128, o 64", "o": "1..299, p 128, b 1"},
              "scan": scan, "h200_rows": rows}
    write_atomic(REPO / args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
