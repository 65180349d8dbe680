"""Prediction error on measured queries: the fitted simulator against the table alone, the roofline alone
and the FLOP-only baseline, per GPU, t, architecture and phase; and leave-one-architecture-out.

Errors are absolute percentage errors |predicted − measured| / measured · 100 of three phases: prefill,
per-token decode (decode_s / (o − 1)) and end-to-end (total_s).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from calibration.fit import MULTIPLIER_BOUNDS, ClassTimes, Features, apply_coefficients, fit_rows
from simulator.errors import UserError

PHASES = ("prefill", "decode_step", "total")
METHODS = ("fitted", "table", "roofline", "flop_only")  # table: the table at unit coefficients, no fixed costs
# rows -> (prefill_s, decode_s over all o − 1 steps) per row
PhaseTimes = Callable[[Sequence[dict]], list[tuple[float, float]]]


def phase_values(row: dict, prefill_s: float, decode_s: float) -> dict[str, float]:
    """Prefill, per-token decode and end-to-end seconds of one query (no decode phase when o = 1)."""
    out = {"prefill": prefill_s, "total": prefill_s + decode_s}
    if row["o"] > 1:
        out["decode_step"] = decode_s / (row["o"] - 1)
    return out


def error_records(rows: Sequence[dict], predicted: Sequence[tuple[float, float]], method: str) -> list[dict]:
    """One record per row and phase: gpu, t, arch, phase, method and the absolute percentage error."""
    out = []
    for row, (pre, dec) in zip(rows, predicted):
        want = phase_values(row, row["prefill_s"], row["decode_s"])
        got = phase_values(row, pre, dec)
        for phase in PHASES:
            if phase in want and want[phase] > 0:
                out.append({"gpu": row["gpu"], "t": row["t"], "arch": row["arch"], "phase": phase,
                            "method": method, "ape_pct": 100.0 * abs(got[phase] - want[phase]) / want[phase]})
    return out


def scaled(times: Sequence[ClassTimes], rows: Sequence[dict], coefs: dict[str, float]) -> list[tuple[float, float]]:
    """(prefill_s, decode_s) of each row from its class times under `coefs` ({}: the table as it is)."""
    return [apply_coefficients(ct, r["o"] - 1, coefs) for ct, r in zip(times, rows)]


def flop_only_times(rows: Sequence[dict]) -> list[tuple[float, float]]:
    """The FLOP-only baseline of each row: 24·h²·l·tokens·b / (t·peak), prefill p tokens, decode o − 1."""
    from calibration.measurements_io import arch_of
    from simulator.gpus import get_gpu
    from simulator.metrics import flop_only_time_s

    out = []
    for r in rows:
        arch, gpu = arch_of(r), get_gpu(r["gpu"])
        out.append((float(flop_only_time_s(arch, gpu, r["p"], r["b"], r["t"])),
                    float(flop_only_time_s(arch, gpu, r["o"] - 1, r["b"], r["t"]))))
    return out


def compare(rows: Sequence[dict], coefs: dict[str, float], table: Features, roofline: Features | None = None,
            flop_only: PhaseTimes | None = None) -> list[dict]:
    """Error records of every method on the same rows: fitted, table alone, roofline alone, FLOP-only."""
    table_times = table(rows)
    records = error_records(rows, scaled(table_times, rows, coefs), "fitted")
    records += error_records(rows, scaled(table_times, rows, {}), "table")
    if roofline is not None:
        records += error_records(rows, scaled(roofline(rows), rows, {}), "roofline")
    if flop_only is not None:
        records += error_records(rows, flop_only(rows), "flop_only")
    return records


def leave_arch_out(rows: Sequence[dict], arch: str, table: Features, max_queries: int = 6,
                   multiplier_bounds: tuple[float, float] = MULTIPLIER_BOUNDS,
                   exclude_archs: frozenset = frozenset()) -> tuple[dict[str, float], list[dict]]:
    """Fit without any query of `arch` (nor of `exclude_archs`), then predict all of its rows (both
    splits: none was seen). Returns the coefficients and the records, method "fitted"."""
    mine = [r for r in rows if r["arch"] == arch]
    if not mine:
        have = sorted({r["arch"] for r in rows})
        raise UserError(f"--leave-out-arch {arch}: no measured queries of it; the data has {', '.join(have)}")
    try:
        result = fit_rows(rows, table, max_queries, multiplier_bounds, frozenset(exclude_archs) | {arch})
    except UserError as e:
        raise UserError(f"refit without {arch}: {e}") from None
    return result.coefficients, error_records(mine, scaled(table(mine), mine, result.coefficients), "fitted")


def fit_on_archs(rows: Sequence[dict], archs: frozenset, table: Features, max_queries: int = 6,
                 multiplier_bounds: tuple[float, float] = MULTIPLIER_BOUNDS,
                 exclude_archs: frozenset = frozenset()) -> tuple[dict[str, float], list[dict]]:
    """Fit on at most `max_queries` of the queries of `archs` alone, both splits (none of their rows is predicted),
    without `exclude_archs`; then predict every row of the other architectures. Returns the coefficients and the
    records, method "fitted"."""
    others = [r for r in rows if r["arch"] not in archs]
    pool = [{**r, "split": "fit"} for r in rows if r["arch"] in archs and r["arch"] not in exclude_archs]
    try:
        result = fit_rows(pool, table, max_queries, multiplier_bounds)
    except UserError as e:
        raise UserError(f"fit on {', '.join(sorted(archs))} alone: {e}") from None
    return result.coefficients, error_records(others, scaled(table(others), others, result.coefficients), "fitted")


def summarize(records: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    """Median and 95th-percentile APE (and count) of the records grouped by `keys`, in sorted key order."""
    groups: dict[tuple, list[float]] = {}
    for rec in records:
        groups.setdefault(tuple(rec[k] for k in keys), []).append(rec["ape_pct"])
    order = {m: i for i, m in enumerate(METHODS)} | {p: i for i, p in enumerate(PHASES)}
    out = []
    for key in sorted(groups, key=lambda k: tuple((order.get(v, 99), str(v)) for v in k)):
        ape = np.array(groups[key])
        out.append({**dict(zip(keys, key)), "n": int(ape.size), "median_pct": float(np.median(ape)),
                    "p95_pct": float(np.percentile(ape, 95))})
    return out
