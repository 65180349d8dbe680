"""The engine variant `best` against the triton engine and float32, and its kernel choices against the simulator's
(GPU). A thin entry point over calibration/best_check.py. From the repository root:
    python3 -m benchmarks.check_best --help
"""
from calibration.best_check import main

if __name__ == "__main__":
    raise SystemExit(main())
