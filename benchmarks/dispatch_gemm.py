"""The best stack's GEMM dispatch against measured GEMM shapes (CPU, from committed files). A thin entry point over
calibration/dispatch_gemm.py:
    python -m benchmarks.dispatch_gemm --out benchmarks/results/dispatch_gemm_h200.json
"""
from calibration.dispatch_gemm import main

if __name__ == "__main__":
    raise SystemExit(main())
