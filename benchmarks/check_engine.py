"""The engine's logits against a float32 forward of the same weights, every family (GPU; torchrun for t > 1).

A thin entry point over calibration/engine_check.py. From the repository root:
    python3 -m benchmarks.check_engine --help
"""
from calibration.engine_check import main

if __name__ == "__main__":
    raise SystemExit(main())
