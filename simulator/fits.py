"""Read a fit file (calibration/fits/<gpu>_<stack>.json) and check a coefficients mapping before use.

A fit scales the simulator: time = Σ_class coef[class] · class_time + prefill_fixed_s (once) or
decode_fixed_s (per decode step). Classes a fit leaves out keep coefficient 1.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from simulator.band import BAND_KEY
from simulator.errors import UserError
from simulator.opclasses import COEFFICIENTS
from simulator.paths import FITS_DIR, repo_relative
FIXED_KEYS = ("prefill_fixed_s", "decode_fixed_s")
PATH_KEY = "path"  # where load_fit's mapping came from


def fit_path(gpu_name: str, stack: str = "triton") -> Path:
    """Where the default fit of this GPU and stack lives."""
    return FITS_DIR / f"{gpu_name}_{stack}.json"


def check_coefficients(coefficients: dict, where: str = "coefficients") -> dict[str, float]:
    """Multipliers per op class (default 1) and fixed seconds (default 0), all finite and >= 0."""
    unknown = set(coefficients) - set(COEFFICIENTS) - set(FIXED_KEYS) - {PATH_KEY, BAND_KEY}
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; use op classes {list(COEFFICIENTS)} "
                        f"and {list(FIXED_KEYS)}")
    out = {c: 1.0 for c in COEFFICIENTS} | {k: 0.0 for k in FIXED_KEYS}
    for key in out:
        if key not in coefficients:
            continue
        value = coefficients[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{where}: '{key}' is {value!r}; it must be a finite number >= 0 (re-run idealrt fit)")
        out[key] = float(value)
    return out


def load_fit(gpu_name: str, stack: str = "triton") -> dict | None:
    """The coefficients of calibration/fits/<gpu>_<stack>.json plus its path under "path", or None."""
    path = fit_path(gpu_name, stack)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"fit file {path}: cannot be read as JSON ({e}); re-run idealrt fit or pass --no-fit")
    coefficients = data.get("coefficients") if isinstance(data, dict) else None
    if not isinstance(coefficients, dict):
        raise UserError(f"fit file {path}: no 'coefficients' mapping; re-run idealrt fit or pass --no-fit")
    check_coefficients(coefficients, where=f"fit file {path}")
    return {**coefficients, PATH_KEY: repo_relative(path), BAND_KEY: data.get(BAND_KEY)}
