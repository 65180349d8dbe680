"""Speed targets of the simulator (pytest-benchmark): run `.venv/bin/pytest benchmarks/bench_predict.py -s`.

- predict: at least 1,000,000 (p, o) predictions per second for one model, GPU, t and b;
- `idealrt predict`: returns in under 0.5 s from a cold start (a fresh interpreter), without torch or triton;
- a reused `idealrt.predictor(...)` answers one request in under 100 us.
"""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.predict import predict
from simulator.tables import default_model

N_REQUESTS = 1_000_000
MIN_RATE_PER_S = 1_000_000
MAX_COLD_START_S = 0.5
MAX_SCALAR_CALL_S = 100e-6
REPO = Path(__file__).resolve().parents[1]


def test_predict_rate(benchmark):
    arch, gpu = get_arch("llama-3.1-8b"), get_gpu("h100-sxm")
    rng = np.random.default_rng(0)
    p = rng.integers(1, 8192, N_REQUESTS)  # (N,)
    o = rng.integers(1, 2048, N_REQUESTS)  # (N,)
    model = default_model(gpu)  # what users get: the GPU's table if there is one, else the roofline
    pred = benchmark.pedantic(predict, args=(arch, gpu, p, o, 1, 1), kwargs={"model": model},
                              rounds=5, iterations=1, warmup_rounds=1)
    assert pred.total_s.shape == (N_REQUESTS,) and np.all(pred.total_s > 0)
    rate = N_REQUESTS / benchmark.stats.stats.median
    print(f"\npredict: {rate:,.0f} (p, o) predictions/s (median of 5 rounds of {N_REQUESTS:,}; "
          f"{arch.name}, {gpu.name}, t=1, b=1, time model: {model.source})")
    assert rate >= MIN_RATE_PER_S


def test_predictor_scalar_call(benchmark):
    import idealrt

    fast = idealrt.predictor("llama-3.1-8b", "h100-sxm")
    rng = np.random.default_rng(0)
    requests = list(zip(rng.integers(1, 8192, 1000).tolist(), rng.integers(1, 1024, 1000).tolist()))
    for p, o in requests:  # fill the caches: a reused predictor
        fast(p, o)

    def calls():
        for p, o in requests:
            fast(p, o)
    benchmark.pedantic(calls, rounds=5, iterations=1)
    per_call = benchmark.stats.stats.median / len(requests)
    print(f"\npredictor: {per_call * 1e6:.1f} us a request (reused, llama-3.1-8b on h100-sxm)")
    assert per_call < MAX_SCALAR_CALL_S


COLD_START = """
import sys
from idealrt.cli import main
rc = main(["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "512", "--output", "64"])
heavy = [m for m in ("torch", "triton") if m in sys.modules]
sys.exit(f"imported {heavy}" if heavy else rc)
"""


def test_cli_predict_cold_start(benchmark):
    def run_once() -> float:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", COLD_START], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return time.perf_counter() - start

    run_once()  # compiles the .pyc files once, as an installed package would have them
    benchmark.pedantic(run_once, rounds=5, iterations=1)
    median_s = benchmark.stats.stats.median
    print(f"\nidealrt predict from a cold interpreter: {median_s:.3f} s (median of 5)")
    assert median_s < MAX_COLD_START_S
