"""The serving simulator against the engine's measured serving runs: each run's exact workload replayed through
the simulator with the engine's policy (prefill-one, its max batch, one H200), on the GPU's table alone and with
the shipped fit; predicted against measured TTFT P50/P95, TPOT P50/P95 and throughput, per run, and the median
absolute error over runs. Beside it, per run, the simulator's time of every iteration the engine ran (prefill of
one prompt; decode of n requests at their context sum) against its measured time, and the host's gap between
iterations, to show where an error comes from.

    python -m benchmarks.validate_serving [--runs F.json ...] [--out benchmarks/results/validate_serving_h200.json]
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from calibration.serving_runs import STACK, SUMMARY_KEYS, load_runs, replay, summary
from simulator.arch import ArchSpec
from simulator.catalog import get_arch
from simulator.defaults import model_and_fit
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.paths import REPO
from simulator.stepcost import StepCost
from simulator.workload import Workload

RUNS_DIR = REPO / "benchmarks" / "results" / "serving_h200"
OUT = REPO / "benchmarks" / "results" / "validate_serving_h200.json"
METHODS = {"table": False, "fitted": True}  # name -> fit applied
BAR_PCT = 10.0


def _arch(data: dict) -> ArchSpec:
    spec = data.get("arch_spec")
    return ArchSpec(**spec) if spec else get_arch(data["arch"])


def _pct(pred: float, meas: float) -> float:
    return 100.0 * (pred - meas) / meas if meas and math.isfinite(meas) and math.isfinite(pred) else math.nan


def iteration_errors(arch: ArchSpec, gpu, run: dict, fit: bool) -> dict:
    """Median % error of the simulator's iteration times against the measured ones, prefill and decode apart, and
    the median host gap between consecutive iterations (s)."""
    model, coefficients, _ = model_and_fit(gpu, STACK, not fit)
    step = StepCost(arch, gpu, 1, model, coefficients)
    it = run.get("iterations")
    if not it or not it["kind"]:
        return {}
    step.prepare(run["prompt_tokens"].astype(np.int64))
    kind, ctx = np.asarray(it["kind"]), np.asarray(it["context_sum"])
    start, end = np.asarray(it["start_s"], dtype=float), np.asarray(it["end_s"], dtype=float)
    pred = np.array([step.one(0, 0, [(0, int(k))]) if k > 0 else step.one(int(-k), int(c), [])
                     for k, c in zip(kind, ctx)])
    err = 100.0 * (pred / (end - start) - 1.0)
    out = {}
    for name, sel in (("prefill", kind > 0), ("decode", kind < 0)):
        out[f"{name}_iterations"] = int(sel.sum())
        out[f"{name}_median_pct"] = float(np.median(err[sel])) if sel.any() else math.nan
    out["host_gap_median_s"] = float(np.median(start[1:] - end[:-1])) if len(start) > 1 else math.nan
    return out


def validate_run(arch: ArchSpec, gpu, max_batch: int, run: dict) -> dict:
    """Measured and predicted summaries of one run, with the % error of each SUMMARY_KEYS per method."""
    w = Workload(run["arrival_s"], run["prompt_tokens"].astype(np.int64), run["output_tokens"].astype(np.int64),
                 run.get("workload", {}).get("source", "run file"))
    measured = summary(w.arrival_s, w.output, run["first_token_s"], run["finish_s"])
    row = {"lengths": run.get("lengths"), "rate_label": run.get("rate_label"), "rate_per_s": run.get("rate_per_s"),
           "requests": len(w), "measured": measured}
    for method, fit in METHODS.items():
        res = replay(arch, gpu, w, max_batch, fit=fit)
        pred = summary(w.arrival_s, w.output, w.arrival_s + res.ttft_s, w.arrival_s + res.e2e_s)
        row[method] = {"predicted": pred, "error_pct": {k: _pct(pred[k], measured[k]) for k in SUMMARY_KEYS},
                       "iterations": iteration_errors(arch, gpu, run, fit)}
    return row


def validate(paths: list[Path]) -> dict:
    """Every complete run of the files, and per method the median absolute % error over runs of each metric."""
    rows, files = [], []
    for path in paths:
        data, runs = load_runs(path)
        arch, gpu = _arch(data), get_gpu(data["gpu"])
        files.append({"file": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
                      "arch": data["arch"], "engine_version": data["engine_version"], "runs": len(runs)})
        rows += [{"arch": data["arch"], "gpu": gpu.name, "max_batch": int(data["max_batch"]), "file": path.name,
                  **validate_run(arch, gpu, int(data["max_batch"]), run)} for run in runs]
    if not rows:
        raise UserError("no complete serving runs in the files given; run benchmarks/gpu_h200_serving.sh first")
    overall = {}
    for method in METHODS:
        med = _medians(rows, method)
        by_file = {f["file"]: _medians([r for r in rows if f["file"].endswith(r["file"])], method) for f in files}
        overall[method] = {"median_abs_pct": med, "within_bar": {k: v <= BAR_PCT for k, v in med.items()},
                           "median_abs_pct_by_file": by_file}
    return {"runs": len(rows), "bar_pct": BAR_PCT, "overall": overall, "files": files, "rows": rows}


def _medians(rows: list[dict], method: str) -> dict:
    """Median absolute % error over rows of each SUMMARY_KEYS (NaN without rows)."""
    return {k: float(np.nanmedian([abs(r[method]["error_pct"][k]) for r in rows])) if rows else math.nan
            for k in SUMMARY_KEYS}


def print_table(result: dict) -> None:
    """Per run the measured value and the % error of each method; the medians last."""
    print(f"{'arch':14} {'lengths':34} {'rate':6} {'n':>4}  " + "  ".join(f"{k:>20}" for k in SUMMARY_KEYS))
    for r in result["rows"]:
        cells = "  ".join(f"{r['measured'][k]:9.4g} {r['table']['error_pct'][k]:+5.0f} {r['fitted']['error_pct'][k]:+5.0f}"
                          for k in SUMMARY_KEYS)
        print(f"{r['arch']:14} {r['lengths'] or '':34} {r['rate_label'] or '':6} {r['requests']:4d}  {cells}")
    print("iterations, simulator against measured (fitted): median % error of prefill and decode steps, host gap")
    for r in result["rows"]:
        it = r["fitted"]["iterations"]
        if it:
            print(f"{r['arch']:14} {r['lengths'] or '':34} {r['rate_label'] or '':6} prefill {it['prefill_median_pct']:+6.1f}"
                  f" ({it['prefill_iterations']}), decode {it['decode_median_pct']:+6.1f} ({it['decode_iterations']}), "
                  f"gap {it['host_gap_median_s'] * 1e6:.0f} us")
    for method, o in result["overall"].items():
        print(f"median |error| %, {method:6}: " + ", ".join(f"{k} {v:.1f}" for k, v in o["median_abs_pct"].items()))


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring); writes the result JSON (atomic); bad input: one line, exit 2."""
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m benchmarks.validate_serving", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", type=Path, help=f"run files (default {RUNS_DIR.relative_to(REPO)}/*.json)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        paths = args.runs or sorted(RUNS_DIR.glob("*.json"))
        if not paths:
            raise UserError(f"no run files in {RUNS_DIR}; pass --runs F.json")
        if not args.out.parent.is_dir():
            raise UserError(f"--out {args.out}: folder {args.out.parent} does not exist; create it or name another")
        result = validate([p.resolve() for p in paths])
    except UserError as e:
        print(f"validate_serving: error: {e}", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                            check=False).stdout.strip()
    result["provenance"] = {"computed": "on the CPU from the shipped tables and fits and the committed run files",
                            "commit": commit, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "command": "python -m benchmarks.validate_serving " + " ".join(sys.argv[1:])}
    write_json_atomic(args.out, result)
    print_table(result)
    print(f"wrote {args.out}")
    return 0
