"""Interpolation over the measured points of one op class and categorical value (simulator.tables builds one
Grid per key).

The grid is first made monotone by padding: a shape never takes longer than a larger measured one (a kernel can
run the larger one, padded), so each node takes the least time at or above it on every axis but the class's
`not_padded` ones (every axis, for the idealized stack: `ideal`). On the ideal stack a node also takes at most
the least time per unit of the batch's axis (`OpClass.rate_axis`) at or below it, times its own amount. Between
nodes, time is interpolated multilinearly in work coordinates (m, n, k, b*h, s, c, ...: latency + work /
throughput is multilinear in them), which is monotone, NaN-free and exact at (monotone) nodes; element-wise and
all-reduce interpolate log efficiency over log bytes, whose grids span decades. Where
a stack's critical work is modelled (simulator.quanta), time per unit of it is interpolated instead. Nodes the
sweep skipped (above its work cap) take the roofline time scaled by the efficiency of the nearest measured node.
"""
from __future__ import annotations

import itertools

import numpy as np

from simulator.opclasses import OP_CLASS


class Grid:
    """Grid of one op class and categorical value, built from measured points: log time and log efficiency."""

    def __init__(self, op: str, cat: tuple, x: np.ndarray, t_s: np.ndarray, roof, waves=None, ideal: bool = False,
                 regime=None):
        """Points at coordinates `x` (points, axes) took `t_s` seconds. `waves(axes)`: if given, the lookup
        interpolates time per unit of critical work (simulator.quanta), made monotone as time first. `ideal`:
        padded on every axis and interpolated multilinearly in work (no waves), so time never falls as any axis
        grows: a stack that picks its tiles per shape (split-K, stream-K) has no partial-wave steps between
        measured nodes. `regime(axes)`: how each looked-up shape counts its work (simulator.quanta.memory_bound;
        None: one way), passed to `waves(axes, regime)` for the nodes around it."""
        if ideal and waves is not None:
            raise ValueError("an ideal grid interpolates time itself: pass no waves")
        self.op, self.cat, self.roof, self.ideal = op, cat, roof, ideal
        self.linear = ideal or OP_CLASS[op].work_interpolated
        logx = np.log(x)
        dims = logx.shape[1]
        self.nodes = [np.unique(logx[:, i]) for i in range(dims)]
        shape = tuple(len(n) for n in self.nodes)
        pos = np.ravel_multi_index(tuple(np.searchsorted(self.nodes[i], logx[:, i]) for i in range(dims)), shape) \
            if dims else np.zeros(len(t_s), int)
        flat = np.full(int(np.prod(shape)), np.inf)
        np.minimum.at(flat, pos, np.log(t_s))  # a node measured twice keeps its faster time
        logt = np.where(np.isinf(flat), np.nan, flat).reshape(shape)
        mesh = [m.reshape(-1) for m in np.meshgrid(*self.nodes, indexing="ij")]
        logroof = self._logroof(mesh).reshape(logt.shape)
        self.filled = np.isnan(logt)
        if self.filled.any():
            logt = self._fill(logt, logroof, np.stack(mesh, -1))
        for ax in range(dims):  # padding: never slower than a larger shape, so non-decreasing on every axis
            if ax in OP_CLASS[op].not_padded and not ideal:
                continue
            logt = np.flip(np.minimum.accumulate(np.flip(logt, ax), axis=ax), ax)
        rate = OP_CLASS[op].rate_axis
        if ideal and rate is not None:  # time per unit of the batch's axis never rises: each node's x at most the
            # least time per unit at or below it (a stream-K kernel shares any amount of work out over the SMs)
            x = np.exp(self.nodes[rate]).reshape([-1 if i == rate else 1 for i in range(dims)])
            logt = np.log(x) + np.minimum.accumulate(logt - np.log(x), axis=rate)
        self.waves, self.regime = waves, regime
        self._node_works: dict[int, np.ndarray] = {}  # way of counting (-1: the node's own) -> work per node
        self.logt, self.logeff = logt, logroof - logt  # efficiency = roofline time / time

    def _logroof(self, logx: list[np.ndarray]) -> np.ndarray:
        return np.log(self.roof(self.op, self.cat, [np.exp(v) for v in logx]))

    @staticmethod
    def _fill(logt: np.ndarray, logroof: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """Skipped nodes: roofline x the efficiency of the nearest measured node (in log coordinates)."""
        flat, roof = logt.reshape(-1).copy(), logroof.reshape(-1)
        have, miss = np.flatnonzero(~np.isnan(flat)), np.flatnonzero(np.isnan(flat))
        dist = np.zeros((miss.size, have.size))
        for axis in mesh.T:  # axis by axis: no (miss, have, axes) temporary
            dist += (axis[miss, None] - axis[None, have]) ** 2
        nearest = have[np.argmin(dist, axis=1)]
        flat[miss] = roof[miss] - (roof[nearest] - flat[nearest])
        return flat.reshape(logt.shape)

    def log_time(self, logx: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log seconds, outside-grid mask, used-a-skipped-node mask) at n log coordinates (1-D arrays).

        Inside the grid: multilinear interpolation of time over the axes (`OpClass.work_interpolated`, or an
        ideal grid), or of log efficiency over log axes (clipped to the cell's corner times) for the other
        classes; both exact at (monotone) nodes, and monotone.
        """
        linear = self.linear
        for ax in OP_CLASS[self.op].floor_axes:  # below the first node: that node's time (a latency floor)
            logx = [np.maximum(v, self.nodes[ax][0]) if i == ax else v for i, v in enumerate(logx)]
        outside = np.zeros(n, bool)
        clamped, base, weights, steps = [], np.zeros(n, np.intp), [], []
        strides = np.cumprod([1] + [len(nd) for nd in self.nodes[:0:-1]])[::-1]  # of the C-ordered flat grid
        for v, nodes, stride in zip(logx, self.nodes, strides):
            vc = np.clip(v, nodes[0], nodes[-1])
            outside |= vc != v
            if len(nodes) == 1:  # one node: no second corner along this axis
                i, w, step = 0, np.zeros(n), 0
            else:
                i = np.clip(np.searchsorted(nodes, vc, side="right") - 1, 0, len(nodes) - 2)
                lo, hi, at = (np.exp(nodes[i]), np.exp(nodes[i + 1]), np.exp(vc)) if linear else \
                    (nodes[i], nodes[i + 1], vc)
                w, step = np.clip((at - lo) / (hi - lo), 0.0, 1.0), int(stride)
            clamped.append(vc), weights.append(w), steps.append(step)
            base += i * int(stride)
        values = (np.exp(self.logt) if linear else self.logeff).reshape(-1)
        regime = None if self.waves is None or self.regime is None else self.regime([np.exp(v) for v in clamped])
        acc, used_filled, flat_filled = np.zeros(n), np.zeros(n, bool), self.filled.reshape(-1)
        for corner in itertools.product((0, 1), repeat=len(self.nodes)):
            wt = np.ones(n)
            for c, w in zip(corner, weights):
                wt *= w if c else 1.0 - w
            idx = base + sum(c * st for c, st in zip(corner, steps))
            acc += wt * (values[idx] if self.waves is None else values[idx] / self._node_work(idx, regime))
            used_filled |= (wt > 0) & flat_filled[idx]
        if not linear:  # clipped to the cell's corner times: no dip just past a memory/compute bend
            flat_t = self.logt.reshape(-1)
            lo_t, hi_t = flat_t[base], flat_t[base + sum(steps)]  # in either order along a not-padded axis
            out = np.clip(self._logroof(clamped) - acc, np.minimum(lo_t, hi_t), np.maximum(lo_t, hi_t))
        else:
            out = np.log(acc)
        if outside.any():  # roofline at the shape x efficiency at the grid edge
            if self.ideal:  # the roofline ratio taken at the grid's top on the axes inside it: a factor of the
                # outside axes alone, so time stays non-decreasing along the inside ones
                top = [np.where(v == c, nd[-1], v) for v, c, nd in zip(logx, clamped, self.nodes)]
                top_in = [np.where(v == c, nd[-1], c) for v, c, nd in zip(logx, clamped, self.nodes)]
                out = out + np.where(outside, self._logroof(top) - self._logroof(top_in), 0.0)
            else:
                out = out + np.where(outside, self._logroof(logx) - self._logroof(clamped), 0.0)
        return out, outside, used_filled

    def _node_work(self, idx: np.ndarray, regime: np.ndarray | None = None) -> np.ndarray:
        """Critical work (simulator.quanta) at flat node indices, counted as `regime` says per lookup (None: each
        node's own way), computed once per node and way on first use: a lookup touches a few cells, and a table
        has thousands of nodes (simulating them all would slow every start)."""
        if regime is None:
            return self._works(idx, -1)
        out = np.empty(idx.shape)
        for way in np.unique(regime):
            sel = regime == way
            out[sel] = self._works(idx[sel], int(way))
        return out

    def _works(self, idx: np.ndarray, way: int) -> np.ndarray:
        works = self._node_works.setdefault(way, np.full(self.logt.size, np.nan))
        todo = np.unique(idx[np.isnan(works[idx])])
        if todo.size:
            coords = np.unravel_index(todo, self.logt.shape)
            axes = [np.exp(nd[c]) for nd, c in zip(self.nodes, coords)]
            works[todo] = self.waves(axes) if way < 0 else self.waves(axes, np.full(todo.size, way))
        return works[idx]

    def extent(self) -> str:
        """The measured range of each axis, e.g. 'm 1..16384, n 256..131072, k 256..65536'."""
        names = OP_CLASS[self.op].axes
        return ", ".join(f"{a} {np.exp(nd[0]):.4g}..{np.exp(nd[-1]):.4g}" for a, nd in zip(names, self.nodes))
