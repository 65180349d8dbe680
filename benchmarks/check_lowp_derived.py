"""Derived low-precision GEMM times against the measured ones of benchmarks/results/lowp_h200.json (CPU only):
`python -m benchmarks.check_lowp_derived --out benchmarks/results/lowp_derived_h200.json`."""
from calibration.lowp_derived import main

if __name__ == "__main__":
    raise SystemExit(main())
