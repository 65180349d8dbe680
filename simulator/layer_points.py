"""GEMM times measured at the catalog's own layer shapes (table section `gemm_layers`, calibration/gemm_layers.py).

The sweep grid's n and k nodes are a coarse ladder; a layer's (n, k) lies between them, where a vendor GEMM
picks other kernels (split-K or not, other tiles) than at the nodes around it. Where the table has a layer's
exact (n, k), its time at m inside the measured m nodes is interpolated linearly in m along that layer's points
(linear in the work, as the grid does); other shapes, and m outside, keep the grid's time. Pure numpy.

They are read only when the environment variable IDEALRT_GEMM_LAYERS is "on" (default: the sweep grid alone;
docs/decisions.md says why). They make a catalog architecture's own shapes exact nodes, so a figure for unseen
architectures must not use them: leave-one-architecture-out hides the shapes only the left-out architecture has
(`exclusive_shapes`).
"""
from __future__ import annotations

import os

import numpy as np

SECTION = "gemm_layers"
ENV = "IDEALRT_GEMM_LAYERS"  # "on": the tables' layer points are read (default off)
CONTEXT = "after_add_norm"  # the points used: the GEMM right after our add_norm in one graph, as in a layer


class LayerCurves:
    """One stack's layer points: (n, k) -> (m nodes, seconds), m ascending."""

    def __init__(self, table: dict, stack: str, op: str = "gemm", context: str | None = None):
        context = context or CONTEXT
        by_nk: dict[tuple[int, int], dict[int, float]] = {}
        section = (table.get(SECTION) or {}) if os.environ.get(ENV, "off").lower() == "on" else {}
        for p in section.get("points", []):
            if p.get("op") == op and p.get("stack") == stack and p.get("context", "alone") == context \
                    and p.get("median_us", 0) > 0:
                s = p["shape"]
                by_nk.setdefault((int(s["n"]), int(s["k"])), {})[int(s["m"])] = p["median_us"] * 1e-6
        self.curves = {(float(n), float(k)): (np.array(sorted(d), float), np.array([d[m] for m in sorted(d)]))
                       for (n, k), d in by_nk.items() if len(d) >= 2}

    def __bool__(self) -> bool:
        return bool(self.curves)

    def hide(self, shapes: set[tuple[int, int]]) -> None:
        """Forget the points of these (n, k) (a left-out architecture's own shapes)."""
        for n, k in shapes:
            self.curves.pop((float(n), float(k)), None)

    def apply(self, shape: dict, grid_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(times, which elements came from layer points): `grid_s` (the grid's times, broadcast shape) with
        the elements of a measured layer (n, k) and m within its nodes replaced by the layer's."""
        full = np.shape(grid_s)
        m, n, k = (np.broadcast_to(np.asarray(shape[key], float), full) for key in ("m", "n", "k"))
        out, hit = np.array(grid_s, dtype=float, copy=True), np.zeros(full, bool)
        pairs = np.unique(np.stack([n.reshape(-1), k.reshape(-1)], 1), axis=0) if n.size else []
        for ln, lk in pairs.tolist() if len(pairs) else []:  # a layer's n and k are one value each: few pairs
            curve = self.curves.get((ln, lk))
            if curve is None:
                continue
            ms, ts = curve
            sel = (n == ln) & (k == lk) & (m >= ms[0]) & (m <= ms[-1])
            out[sel] = np.interp(m[sel], ms, ts)
            hit |= sel
        return out, hit


def gemm_shapes(arch, t: int) -> set[tuple[int, int]]:
    """(n, k) of the dense GEMMs of an architecture at tensor-parallel degree t (MoE experts: grouped, excluded)."""
    from simulator.ops import prefill_ops

    return {(int(op.shape["n"]), int(op.shape["k"])) for op in prefill_ops(arch, 1, 16, t)
            if op.op_class == "gemm" and not op.shape.get("grouped", 0)}


def exclusive_shapes(arch, t: int) -> set[tuple[int, int]]:
    """The GEMM shapes of `arch` at t that no other catalog architecture has at any valid t: the layer points
    only it brought into the table."""
    from simulator.catalog import get_arch, list_archs
    from simulator.memory import valid_tps

    others: set[tuple[int, int]] = set()
    for name in list_archs():
        other = get_arch(name)
        if other.name != arch.name:
            for u in valid_tps(other):
                others |= gemm_shapes(other, u)
    return gemm_shapes(arch, t) - others
