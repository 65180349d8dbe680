"""Denoised runtime of a black-box API: a lower envelope of logged latencies with the profile's shape,
T(p, o) = overhead + F(p) + g·(o − 1), fitted as a low quantile (pinball loss) rather than the bare minimum,
so that one lucky outlier cannot set it while noise, queuing and slow outliers stay above it.
"""
from __future__ import annotations

import csv
import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.profile_fit import Solve, check_grid, fit_knots
from calibration.quantile_fit import quantile_fit
from simulator.errors import UserError
from simulator.profile import ProfileForm

COLUMNS = ("prompt_tokens", "output_tokens", "latency_s")
QUANTILE = 0.05
SEARCH_ROWS = 3000  # longer logs: knots chosen on a random subsample of this many rows
SEED = 0  # of that subsample


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
    """The rows of a CSV log with columns prompt_tokens, output_tokens, latency_s (others are ignored): parsed at
    once by numpy; a log it cannot parse, or with a bad value, is read row by row to name the line."""
    path = Path(path)
    try:
        with path.open(newline="") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "no data" warning: the row-by-row reader says it
            header = next(csv.reader(f), [])
            cols = [header.index(c) for c in COLUMNS] if set(COLUMNS) <= set(header) else None
            data = np.loadtxt(f, delimiter=",", usecols=cols, ndmin=2, quotechar='"') if cols else None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error):
        data = None
    if data is not None and data.size:
        p, o, lat = data.T  # (n,) each
        if (np.all((p >= 1) & (p == np.round(p)) & (o >= 1) & (o == np.round(o)))
                and np.all(np.isfinite(lat) & (lat > 0))):
            return LatencyLog(p, o, lat)
    return _read_rows(path)


def _read_rows(path: Path) -> LatencyLog:
    """`read_log` row by row, with one-line errors naming the line and column."""
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


def segment_basis(p: np.ndarray, o: np.ndarray, knots, quadratic: bool) -> tuple[np.ndarray, float, float]:
    """Columns whose non-negative coefficients are exactly the constrained form: 1, the length of p inside each
    of F's segments, [p²], o − 1 — in units of the longest prompt and output; and those two units."""
    p_top, o_top = float(p.max()), float(max(o.max() - 1, 1))
    u, ends = p / p_top, [0.0] + [k / p_top for k in knots] + [np.inf]  # (n,), segment ends
    cols = [np.ones_like(u)] + [np.clip(u - a, 0.0, b - a) for a, b in itertools.pairwise(ends)]
    return np.column_stack(cols + ([u**2] if quadratic else []) + [(o - 1) / o_top]), p_top, o_top  # (n, k)


def _solver(log: LatencyLog, quantile: float, quadratic: bool, name: str, scale: float) -> Solve:
    """Fits of the form with given knots to `log` (calibration.quantile_fit), its loss in units of `scale`."""
    y = log.latency_s / scale

    def solve(knots, near: ProfileForm | None) -> tuple[ProfileForm, float]:
        z, p_top, o_top = segment_basis(log.p, log.o, knots, quadratic)
        guess = None if near is None else near(log.p, log.o) / scale
        theta, loss = quantile_fit(z, y, quantile, guess)
        v = theta * scale
        form = ProfileForm(name, tuple(float(k) for k in knots), float(v[0]),
                           tuple(float(s) / p_top for s in v[1:len(knots) + 2]),
                           float(v[-2]) / p_top**2 if quadratic else 0.0, float(v[-1]) / o_top)
        return form, loss
    return solve


def denoise(log: LatencyLog, quantile: float = QUANTILE, max_knots: int = 2, quadratic: bool = False) -> ProfileForm:
    """Fit the τ-quantile envelope (τ = `quantile`) of the logged latencies y by quantile regression:

        min Σ_i ρ_τ(y_i − T(p_i, o_i)),  ρ_τ(r) = max(τ·r, (τ − 1)·r),  s.t. overhead ≥ 0, F non-decreasing, g ≥ 0

    with F's knots chosen greedily from the logged prompt lengths (calibration.profile_fit.fit_knots; on a
    random subsample of SEARCH_ROWS rows when the log is longer), then the form with those knots fitted exactly
    to every row (calibration.quantile_fit). `intercept_s` of the result is the overhead.
    """
    if not 0 < quantile < 0.5:
        raise UserError(f"--quantile is {quantile}; use a low quantile in (0, 0.5), e.g. 0.05")
    check_grid(log.p, log.o, log.latency_s)
    scale, name = float(np.median(log.latency_s)), f"q{quantile:g} envelope"  # losses in units of the median
    search = log
    if log.p.size > SEARCH_ROWS:
        rows = np.sort(np.random.default_rng(SEED).choice(log.p.size, SEARCH_ROWS, replace=False))
        search = LatencyLog(log.p[rows], log.o[rows], log.latency_s[rows])
    n = search.p.size
    penalty = np.log(n) / (2 * n)  # Schwarz criterion of quantile regression (Koenker)
    form = fit_knots(search.p, _solver(search, quantile, quadratic, name, scale), max_knots, penalty)
    if search is log:
        return form
    return _solver(log, quantile, quadratic, name, scale)(form.knots, form)[0]


def summary(form: ProfileForm, log: LatencyLog) -> dict:
    """The envelope's parameters, the share of rows below it and the median excess latency above it."""
    curve = form(log.p, log.o)
    excess = log.latency_s[curve > 0] / curve[curve > 0] - 1
    return {"overhead_s": form.intercept_s, "knots": list(form.knots), "slopes_s_per_token": list(form.slopes_s),
            "quad_s_per_token2": form.quad_s, "g_s_per_token": form.g_s, "rows": int(log.p.size),
            "below_envelope_share": float(np.mean(log.latency_s < curve)),
            "median_excess_pct": float(100 * np.median(excess)) if excess.size else None}
