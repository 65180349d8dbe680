"""Check, then time, our Triton kernels against torch's (GPU).

A thin entry point over calibration/kernel_bench.py. From the repository root:
    python3 -m benchmarks.bench_kernels --help
"""
from calibration.kernel_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
