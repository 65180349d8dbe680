"""Which kernels torch's SDPA runs for the torch stack's decode attention (GPU).

A thin entry point over calibration/sdpa_decode_probe.py. From the repository root:
    python3 -m benchmarks.probe_sdpa_decode --help
"""
from calibration.sdpa_decode_probe import main

if __name__ == "__main__":
    raise SystemExit(main())
