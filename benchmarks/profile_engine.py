"""Where the reference engine's time goes, kernel by kernel (GPU).

A thin entry point over calibration/engine_profile.py. From the repository root:
    python3 -m benchmarks.profile_engine --help
"""
from calibration.engine_profile import main

if __name__ == "__main__":
    raise SystemExit(main())
