"""How well a throughput table predicts op times it did not measure (GPU; --loo, --repredict, --grid-cost on the CPU).

A thin entry point over calibration/table_accuracy.py. From the repository root:
    python3 -m benchmarks.bench_table_accuracy --help
"""
from calibration.table_accuracy import main

if __name__ == "__main__":
    raise SystemExit(main())
