"""Measured speed of the stacks on the same queries (CPU, from committed rows). A thin entry point over
calibration/stack_speed.py:
    python -m benchmarks.stack_speed --base best --out benchmarks/results/stack_speed_h200.json
"""
from calibration.stack_speed import main

if __name__ == "__main__":
    raise SystemExit(main())
