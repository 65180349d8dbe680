"""The requests a deployment serves: arrival time, prompt tokens and output tokens of each, from a CSV trace
(columns in docs/CONTRACTS.md, "Serving trace") or drawn from a named length distribution with Poisson
arrivals at a rate, from a seed.

Length distributions, `KIND:key=value,...` (p: prompt tokens, o: output tokens):
- `fixed:p=512,o=128` — every request the same;
- `uniform:p=128-2048,o=32-512` — whole numbers uniform over each range, ends included;
- `lognormal:p=1024,o=256,sigma=0.5` — lognormal with those medians and log-space standard deviation,
  rounded, at least 1 (`p_sigma`/`o_sigma` set each on its own).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.errors import UserError

TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
DISTRIBUTIONS = {"fixed": ("p", "o"), "uniform": ("p", "o"), "lognormal": ("p", "o", "sigma", "p_sigma", "o_sigma")}


@dataclass(frozen=True)
class Workload:
    """Requests in arrival order: arrival seconds, prompt and output tokens (arrays of one length)."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    source: str  # the trace's path or the distribution, rate and seed

    def __len__(self) -> int:
        return int(self.arrival_s.size)


def _sorted(arrival_s: np.ndarray, prompt: np.ndarray, output: np.ndarray, source: str) -> Workload:
    order = np.argsort(arrival_s, kind="stable")
    return Workload(arrival_s[order].astype(float), prompt[order].astype(np.int64), output[order].astype(np.int64),
                    source)


def _cell(text: str | None, row: int, column: str, whole: bool) -> float:
    """One trace value: a finite number >= 0 (arrival) or a whole number >= 1 (tokens); else a UserError."""
    kind = "a whole number >= 1" if whole else "a number of seconds >= 0"
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (whole and (value < 1 or value != round(value))) or value < 0:
        raise UserError(f"trace row {row}, column {column}: '{text}' is not {kind}; fix the trace")
    return value


def load_trace(path: str | Path) -> Workload:
    """Requests of a CSV trace with a header holding TRACE_COLUMNS (other columns ignored), rows in any order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--workload {path}: no such file; give a CSV with columns {', '.join(TRACE_COLUMNS)}")
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"--workload {path}: not a readable CSV ({e}); give columns {', '.join(TRACE_COLUMNS)}") \
            from None
    missing = [c for c in TRACE_COLUMNS if c not in header]
    if not rows or missing:
        what = f"column {missing[0]} is missing" if rows else "no requests"
        raise UserError(f"--workload {path}: {what}; the header needs {', '.join(TRACE_COLUMNS)}")
    values = np.array([[_cell(r.get(c), i, c, c != "arrival_s") for c in TRACE_COLUMNS]
                       for i, r in enumerate(rows, start=2)])  # row 1 is the header
    return _sorted(values[:, 0], values[:, 1], values[:, 2], str(path))


def _range(text: str, key: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise UserError(f"--lengths {key}={text}: give whole numbers, e.g. {key}=128-2048") from None
    if not 1 <= a <= b:
        raise UserError(f"--lengths {key}={text}: need 1 <= low <= high")
    return a, b


def parse_lengths(text: str) -> tuple[str, dict[str, str]]:
    """The kind and key=value parameters of a length distribution, checked against DISTRIBUTIONS."""
    kind, _, rest = text.partition(":")
    if kind not in DISTRIBUTIONS:
        raise UserError(f"--lengths '{text}': unknown distribution; use one of {', '.join(DISTRIBUTIONS)} "
                        "(e.g. fixed:p=512,o=128)")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in DISTRIBUTIONS[kind]:
            raise UserError(f"--lengths '{text}': '{item}' is not key=value with a key of "
                            f"{', '.join(DISTRIBUTIONS[kind])}")
        params[key] = value
    for key in ("p", "o"):
        if key not in params:
            raise UserError(f"--lengths '{text}': give {key}=... (e.g. {kind}:p=512,o=128)")
    return kind, params


def _lengths(kind: str, params: dict[str, str], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for key in ("p", "o"):
        lo, hi = _range(params[key], key)
        if kind == "fixed":
            if lo != hi:
                raise UserError(f"--lengths fixed {key}={params[key]}: give one number (uniform takes ranges)")
            out.append(np.full(n, lo))
        elif kind == "uniform":
            out.append(rng.integers(lo, hi + 1, n))
        else:
            sigma_text = params.get(f"{key}_sigma", params.get("sigma", "0.5"))
            try:
                sigma = float(sigma_text)
            except ValueError:
                sigma = math.nan
            if not math.isfinite(sigma) or sigma < 0 or lo != hi:
                raise UserError(f"--lengths lognormal: {key}=MEDIAN and sigma >= 0, got {key}={params[key]}, "
                                f"sigma={sigma_text}")
            out.append(np.maximum(np.rint(lo * np.exp(sigma * rng.standard_normal(n))), 1).astype(np.int64))
    return out[0], out[1]


def synthetic(lengths: str, rate_per_s: float, n: int, seed: int = 0) -> Workload:
    """n requests with lengths from `lengths` (module docstring) and Poisson arrivals at `rate_per_s`."""
    if not math.isfinite(rate_per_s) or rate_per_s <= 0:
        raise UserError(f"--rate {rate_per_s}: give requests per second, a finite number > 0")
    if n < 1:
        raise UserError(f"--requests {n}: give a whole number >= 1")
    kind, params = parse_lengths(lengths)
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    prompt, output = _lengths(kind, params, n, rng)
    return _sorted(arrival, prompt, output, f"{lengths} at {rate_per_s:g}/s, seed {seed}")
