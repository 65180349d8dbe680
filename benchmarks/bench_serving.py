"""Speed targets of the serving simulator, on this CPU:
- 100,000 requests served by one replica in under 10 s (a fresh step cost: its tables are built in the time);
- `plan` over at least 500 deployments in under a minute.

    python -m benchmarks.bench_serving [--out benchmarks/results/bench_serving.json]

Prints a table and writes JSON (timings are of this machine; the simulated figures are idealized predictions).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone

import idealrt
from simulator.atomic import write_atomic
from simulator.paths import REPO

MODEL, GPU, GPUS = "llama-3.1-8b", "h100-sxm", ("h100-sxm", "h200", "a100-80gb")
LENGTHS = "lognormal:p=1024,o=256,sigma=0.8"
SERVE = {"requests": 100_000, "rate_per_s": 10.0, "max_batch": 256}
SCHEDULERS = ({"policy": "prefill-first", "chunk_tokens": None}, {"policy": "decode-first", "chunk_tokens": 2048})
PLAN = {"requests": 1000, "rate_per_s": 20.0, "replicas": (1, 2, 3, 4, 6, 8), "max_batch": (4, 8, 16, 32, 64, 128, 256),
        "slo": "ttft_p95=0.5,tpot_p95=0.05"}
MAX_SERVE_S, MAX_PLAN_S = 10.0, 60.0


def bench_serve() -> list[dict]:
    """100,000 requests on one replica, per scheduler: wall time and what the simulation says."""
    workload = idealrt.synthetic(LENGTHS, SERVE["rate_per_s"], SERVE["requests"], seed=0)
    out = []
    for sched in SCHEDULERS:
        start = time.perf_counter()
        res = idealrt.serve(MODEL, GPU, workload, 1, 1, SERVE["max_batch"], **sched)
        wall = time.perf_counter() - start
        row = res.row()
        out.append({**sched, "wall_s": wall, "iterations": res.iterations, "tokens_per_s": row["tokens_per_s"],
                    "ttft_p95_s": row["ttft_p95"], "tpot_p95_s": row["tpot_p95"], "target_s": MAX_SERVE_S,
                    "met": wall < MAX_SERVE_S})
    return out


def bench_plan() -> dict:
    """One plan over GPUS × every valid t × replicas × max batch."""
    workload = idealrt.synthetic(LENGTHS, PLAN["rate_per_s"], PLAN["requests"], seed=0)
    start = time.perf_counter()
    result = idealrt.plan(MODEL, list(GPUS), workload, PLAN["slo"], replicas=PLAN["replicas"],
                          max_batch=PLAN["max_batch"])
    wall = time.perf_counter() - start
    n = len(result.rows) + len(result.pruned)
    best = result.meeting[0] if result.meeting else None
    return {"deployments": n, "simulated": len(result.rows), "pruned": len(result.pruned),
            "meeting_slo": len(result.meeting), "wall_s": wall, "target_s": MAX_PLAN_S,
            "met": wall < MAX_PLAN_S and n >= 500,
            "cheapest": None if best is None else {k: best[k] for k in ("gpu", "t", "replicas", "max_batch",
                                                                        "usd_per_1k_tokens", "ttft_p95", "tpot_p95")}}


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks, print a table, write the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/bench_serving.json")
    args = ap.parse_args(argv)
    serve_rows, plan_row = bench_serve(), bench_plan()
    print(f"{'benchmark':44} {'wall s':>8} {'target s':>9} {'met':>4}")
    for r in serve_rows:
        name = f"serve {SERVE['requests']:,} requests, {r['policy']}, chunk {r['chunk_tokens']}"
        print(f"{name:44} {r['wall_s']:8.2f} {r['target_s']:9.0f} {'yes' if r['met'] else 'NO':>4}")
    name = f"plan over {plan_row['deployments']} deployments"
    print(f"{name:44} {plan_row['wall_s']:8.2f} {plan_row['target_s']:9.0f} {'yes' if plan_row['met'] else 'NO':>4}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                            check=False).stdout.strip()
    result = {"provenance": {"computed": "on the CPU from the shipped tables and fits (no GPU)", "commit": commit,
                             "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                             "cpus": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat(),
                             "command": "python -m benchmarks.bench_serving"},
              "setup": {"model": MODEL, "gpu": GPU, "gpus": GPUS, "lengths": LENGTHS, "serve": SERVE,
                        "plan": PLAN},
              "serve": serve_rows, "plan": plan_row}
    write_atomic(REPO / args.out, json.dumps(result, indent=1) + "\n")
    return 0 if all(r["met"] for r in serve_rows) and plan_row["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
