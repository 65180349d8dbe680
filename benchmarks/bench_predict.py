"""Speed targets of the Python path, on the CPU:

- a reused `idealrt.predictor(...)` answers one request in under 100 us (scalar calls);
- `simulator.predict.predict` makes at least 1,000,000 (p, o) predictions a second for one model, GPU, t and b
  (vectorised);
- `idealrt predict` returns in under 0.5 s from a cold start (a fresh interpreter), without torch or triton.

    python -m benchmarks.bench_predict [--out benchmarks/results/bench_predict.json]

Prints a table and writes JSON with this CPU's description; each figure is the median of ROUNDS rounds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from calibration.provenance import cpu_provenance
from simulator.atomic import write_atomic
from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.paths import REPO
from simulator.predict import predict
from simulator.tables import default_model

ROUNDS = 5
N_VECTOR = 1_000_000
N_SCALAR = 1000
MODEL, GPU = "llama-3.1-8b", "h100-sxm"
COLD_START = """
import sys
from idealrt.cli import main
rc = main(["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "512", "--output", "64"])
heavy = [m for m in ("torch", "triton") if m in sys.modules]
sys.exit(f"imported {heavy}" if heavy else rc)
"""


def median_s(run, rounds: int = ROUNDS) -> float:
    """Median wall seconds of `rounds` calls of run()."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scalar_call_s() -> float:
    """Seconds a request from a reused predictor, over N_SCALAR random requests with its caches filled."""
    import idealrt

    fast = idealrt.predictor(MODEL, GPU)
    rng = np.random.default_rng(0)
    requests = list(zip(rng.integers(1, 8192, N_SCALAR).tolist(), rng.integers(1, 1024, N_SCALAR).tolist()))
    for p, o in requests:  # fill the caches: a reused predictor
        fast(p, o)

    def calls():
        for p, o in requests:
            fast(p, o)
    return median_s(calls) / N_SCALAR


def vector_rate_per_s() -> float:
    """(p, o) predictions a second of one vectorised call over N_VECTOR random requests."""
    arch, gpu = get_arch(MODEL), get_gpu(GPU)
    rng = np.random.default_rng(0)
    p, o = rng.integers(1, 8192, N_VECTOR), rng.integers(1, 2048, N_VECTOR)  # (N,) each
    model = default_model(gpu)  # what users get: the GPU's table if there is one, else the roofline
    predict(arch, gpu, p, o, 1, 1, model=model)  # warm-up: the table's grids
    return N_VECTOR / median_s(lambda: predict(arch, gpu, p, o, 1, 1, model=model))


def cold_start_s() -> float:
    """Wall seconds of `idealrt predict` in a fresh interpreter (its .pyc files compiled once before)."""
    def run_once():
        proc = subprocess.run([sys.executable, "-c", COLD_START], cwd=REPO, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise SystemExit(f"cold start failed: {proc.stderr.strip()}")
    run_once()
    return median_s(run_once)


def main(argv: list[str] | None = None) -> int:
    """Measure the three figures, print them against their targets, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/bench_predict.json")
    args = ap.parse_args(argv)
    results = {"scalar_call_us": 1e6 * scalar_call_s(), "vector_rate_per_s": vector_rate_per_s(),
               "cold_start_s": cold_start_s()}
    targets = {"scalar_call_us": ("<", 100.0), "vector_rate_per_s": (">=", 1e6), "cold_start_s": ("<", 0.5)}
    print(f"{'figure':20} {'value':>14} {'target':>12}  met")
    for key, value in results.items():
        op, bound = targets[key]
        met = value < bound if op == "<" else value >= bound
        print(f"{key:20} {value:14,.3f} {op + ' ' + format(bound, 'g'):>12}  {'yes' if met else 'NO'}")
    out = {"provenance": cpu_provenance("python -m benchmarks.bench_predict",
                                        f"on the CPU: {MODEL} on {GPU}'s shipped table, t = 1, b = 1"),
           "rounds": ROUNDS, "scalar_requests": N_SCALAR, "vector_requests": N_VECTOR,
           "targets": {k: f"{op} {bound:g}" for k, (op, bound) in targets.items()}, "results": results}
    write_atomic(REPO / args.out, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
