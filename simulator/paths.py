"""Where the shipped data lives in the repository, and how outputs name a file (relative to the repo)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALIBRATION_DIR = REPO / "calibration"
TABLES_DIR = CALIBRATION_DIR / "tables"
FITS_DIR = CALIBRATION_DIR / "fits"
MEASUREMENTS_DIR = CALIBRATION_DIR / "measurements"


def repo_relative(path: str | Path) -> str:
    """`path` relative to the repository root when it lies inside it (outputs read the same on any
    machine), else as given."""
    full = Path(path).resolve()
    return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(path)
