"""A second measurement of grid points that stand out from their neighbours: a slow moment, not the shape.

A point timed during a transient slowdown of the GPU (clocks, power) is slow over all its repeats, so its spread
does not flag it. The H100 table's Triton prefill at b*h = 32, s = 1536, d = 128 took 96 us where the line scan
took 70 and 78 us at s = 1505 and 1625, and five of the worst misses of the random checks interpolated from it.
A point is suspect when it lies more than SUSPECT_RATIO above the log-log line through its two neighbours along
at least two grid axes (a real step, at a tile or configuration boundary, shows along one). The sweep measures
each suspect once more and keeps the faster median; the point records both (`rechecked`).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from simulator.opclasses import coords

SUSPECT_RATIO = 1.12
OPS = ("gemm", "gemm_fp8", "gemm_int4", "prefill_attn", "decode_attn")  # classes on multi-axis grids


def suspects(points: list[dict]) -> list[dict]:
    """The points of `points` (table rows) that are suspect and not yet rechecked, in table order."""
    groups: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    where = []
    for p in points:
        if p.get("op") not in OPS or not p.get("median_us"):
            continue
        cat, axes = coords(p["op"], p["shape"], p["stack"])
        key = (p["op"], p["stack"], tuple(np.asarray(c).item() for c in cat))
        x = tuple(float(a) for a in axes)
        groups[key][x] = float(p["median_us"])
        where.append((p, key, x))
    nodes = {key: [sorted({x[i] for x in g}) for i in range(len(next(iter(g))))] for key, g in groups.items()}
    out = []
    for p, key, x in where:
        if not p.get("rechecked") and _high_axes(groups[key], nodes[key], x) >= 2:
            out.append(p)
    return out


def _high_axes(times: dict[tuple, float], nodes: list[list[float]], x: tuple) -> int:
    """Along how many axes the time at `x` is over SUSPECT_RATIO x the log-log interpolation of its neighbours."""
    high = 0
    for i, axis in enumerate(nodes):
        j = axis.index(x[i])
        if 0 < j < len(axis) - 1:
            lo, hi = x[:i] + (axis[j - 1],) + x[i + 1:], x[:i] + (axis[j + 1],) + x[i + 1:]
            if lo in times and hi in times:
                w = np.log(x[i] / axis[j - 1]) / np.log(axis[j + 1] / axis[j - 1])
                line = np.exp((1 - w) * np.log(times[lo]) + w * np.log(times[hi]))
                high += times[x] > SUSPECT_RATIO * line
    return high


def keep_faster(first: dict, second: dict) -> dict:
    """The point to keep after a recheck: the faster of the two measurements, noting the other's median."""
    if second["median_us"] < first["median_us"]:
        return dict(second, rechecked=True, first_median_us=first["median_us"])
    return dict(first, rechecked=True, recheck_median_us=second["median_us"])
