"""Check, then time, the grouped-GEMM routed experts; --sweep: their tile configs (GPU; --cpu: a dry run).

A thin entry point over calibration/moe_bench.py. From the repository root:
    python3 -m benchmarks.check_moe --help
"""
from calibration.moe_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
