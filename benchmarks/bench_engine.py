"""The engine's efficiency on a Llama-3.1-8B-shaped model, as ratios to measured ceilings (GPU).

A thin entry point over calibration/engine_bench.py. From the repository root:
    python3 -m benchmarks.bench_engine --help
"""
from calibration.engine_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
