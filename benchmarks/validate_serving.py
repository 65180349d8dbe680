"""The serving simulator against the engine's measured serving runs (calibration/serving_validation.py).

    python -m benchmarks.validate_serving [--runs F.json ...] [--out benchmarks/results/validate_serving_h200.json]
"""
from calibration.serving_validation import main

if __name__ == "__main__":
    raise SystemExit(main())
