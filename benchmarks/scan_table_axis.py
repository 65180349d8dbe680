"""Op time along one shape axis, measured densely, beside the table's interpolation (GPU).

A thin entry point over calibration/axis_scan.py. From the repository root:
    python3 -m benchmarks.scan_table_axis --help
"""
from calibration.axis_scan import main

if __name__ == "__main__":
    raise SystemExit(main())
