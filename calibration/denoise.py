"""Denoised runtime of a black-box API: a lower envelope of logged latencies with the profile's shape,
T(p, o) = overhead + F(p) + g·(o − 1), fitted as a low quantile (pinball loss) rather than the bare minimum,
so that one lucky outlier cannot set it while noise, queuing and slow outliers stay above it.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.profile_fit import check_grid, fit_knots
from simulator.profile import ProfileForm
from simulator.errors import UserError

COLUMNS = ("prompt_tokens", "output_tokens", "latency_s")
QUANTILE = 0.05


@dataclass(frozen=True)
class LatencyLog:
    """Rows of a latency log: prompt tokens, output tokens, end-to-end latency in seconds; (n,) each."""

    p: np.ndarray
    o: np.ndarray
    latency_s: np.ndarray


def _number(text: str | None, column: str, where: str) -> float:
    """One cell as a number: token counts whole and >= 1, latency > 0."""
    if text is None or not text.strip():
        raise UserError(f"{where}: '{column}' is missing; every row needs {', '.join(COLUMNS)}")
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: '{column}' is {text.strip()!r}, not a number") from None
    ok, need = (value > 0, "a number > 0") if column == "latency_s" else (value >= 1 and value == int(value),
                                                                           "a whole number >= 1")
    if not (math.isfinite(value) and ok):
        raise UserError(f"{where}: '{column}' is {text.strip()}; it must be {need}")
    return value


def read_log(path: str | Path) -> LatencyLog:
    """The rows of a CSV log with columns prompt_tokens, output_tokens, latency_s (others are ignored)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise UserError(f"{path}: no column {', '.join(missing)} in the header ({', '.join(header) or 'empty'});"
                                f" the log needs {', '.join(COLUMNS)}")
            values = []
            for row in reader:
                where = f"{path} line {reader.line_num}"
                values.append([_number(row.get(c), c, where) for c in COLUMNS])
    except OSError as e:
        raise UserError(f"cannot read log '{path}': {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV file ({e})") from None
    if not values:
        raise UserError(f"{path}: no data rows under the header")
    p, o, lat = np.array(values, dtype=float).T  # (n,) each
    return LatencyLog(p, o, lat)


def denoise(log: LatencyLog, quantile: float = QUANTILE, max_knots: int = 2, quadratic: bool = False) -> ProfileForm:
    """Fit the τ-quantile envelope (τ = `quantile`) of the logged latencies y by quantile regression:

        min Σ_i ρ_τ(y_i − T(p_i, o_i)),  ρ_τ(r) = max(τ·r, (τ − 1)·r),  s.t. overhead ≥ 0, F non-decreasing, g ≥ 0

    with F's knots chosen greedily from the logged prompt lengths. `intercept_s` of the result is the overhead.
    """
    import cvxpy as cp

    if not 0 < quantile < 0.5:
        raise UserError(f"--quantile is {quantile}; use a low quantile in (0, 0.5), e.g. 0.05")
    check_grid(log.p, log.o, log.latency_s)

    def pinball(r):
        return cp.sum(cp.maximum(quantile * r, (quantile - 1) * r))

    penalty = np.log(log.p.size) / (2 * log.p.size)  # Schwarz criterion of quantile regression (Koenker)
    return fit_knots(log.p, log.o, log.latency_s, quadratic, pinball, f"q{quantile:g} envelope", max_knots, penalty)


def summary(form: ProfileForm, log: LatencyLog) -> dict:
    """The envelope's parameters, the share of rows below it and the median excess latency above it."""
    curve = form(log.p, log.o)
    excess = log.latency_s[curve > 0] / curve[curve > 0] - 1
    return {"overhead_s": form.intercept_s, "knots": list(form.knots), "slopes_s_per_token": list(form.slopes_s),
            "quad_s_per_token2": form.quad_s, "g_s_per_token": form.g_s, "rows": int(log.p.size),
            "below_envelope_share": float(np.mean(log.latency_s < curve)),
            "median_excess_pct": float(100 * np.median(excess)) if excess.size else None}
