"""Entry points of the GPU benchmarks and checks (`python3 -m benchmarks.NAME` from the repository root); their
code lives in calibration/. Results, with provenance, in benchmarks/results/."""
