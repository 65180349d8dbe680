"""Decode attention with its split count rounded down vs up to one wave of programs (GPU).

A thin entry point over calibration/decode_splits_bench.py. From the repository root:
    python3 -m benchmarks.bench_decode_splits --help
"""
from calibration.decode_splits_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
