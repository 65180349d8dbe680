"""Predicted energy per query against the measured energy of the configuration queries (CPU, committed rows only).

A thin entry point over calibration/energy_validation.py. From the repository root:
    python3 -m benchmarks.validate_energy --help
"""
from calibration.energy_validation import main

if __name__ == "__main__":
    raise SystemExit(main())
