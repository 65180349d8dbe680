"""Throughput-table time model: lookup and interpolation of measured op times, roofline fallback, derived tables.

Per op class the measured points form a regular grid (GEMM: m, n, k; prefill attention: b*h, s, d per
causal flag; decode attention: b*kv_h, h/kv_h, c, d; element-wise and all-reduce: bytes, per t; launch: per
mode). The grid is first made monotone by padding: a shape never takes longer than a larger measured one
(a kernel can run the larger one, padded), so each node takes the least time at or above it on every
axis but those in NOT_PADDED. A shape is looked up at its dimensions rounded up to whole kernel tiles (TILE) and
its head dim padded as the stack's kernel pads it (HEAD_DIM_STEP); our Triton GEMM's time is interpolated per
wave of output tiles and prefill attention's per step of its busiest SM (simulator.quanta). Between nodes, time
is interpolated multilinearly in work coordinates (m, n, k, b*h, s, c, ...: latency + work / throughput
is multilinear in them), which is monotone, NaN-free and exact at (monotone) nodes; element-wise and
all-reduce interpolate log efficiency over log bytes, whose grids span decades. Leave-one-out comparison
of these choices: calibration/tables/README.md. Grid nodes the sweep skipped (above its
work cap) take the roofline time scaled by the achieved efficiency of the nearest measured node; a shape
outside the grid takes the roofline time scaled by the efficiency at the grid edge. Both are reported in
`model.warnings`, as is a table derived from another GPU's by spec ratios. Pure numpy: no torch.
"""
from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np

from simulator.errors import UserError
from simulator.ops import op_cost
from simulator.paths import TABLES_DIR
from simulator.quanta import critical_work, has_model
from simulator.sdpa_launch import sdpa_even
from simulator.timemodel import RooflineModel, TimeModel
DERIVE_RULE = "compute-bound points x peak FLOP/s ratio, memory-bound x HBM bandwidth ratio (by arithmetic " \
              "intensity vs the source GPU's ridge point); all-reduce x interconnect ratio; launch unchanged"
STACK_CLASSES = ("gemm", "prefill_attn", "decode_attn", "launch")  # measured separately per stack


def load_table(path: str | Path) -> dict:
    """Load a throughput table file; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"table file {path} does not exist; run 'idealrt calibrate --out {path}' on the GPU") from None
    except json.JSONDecodeError as e:
        raise UserError(f"table file {path} is not valid JSON ({e.msg} at line {e.lineno}); re-run the sweep") from None
    if not isinstance(table, dict) or not isinstance(table.get("points"), list):
        raise UserError(f"table file {path} has no 'points' list; it is not a throughput table")
    return table


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int) -> dict:
    return load_table(path)


def _cached(path: Path) -> dict:
    """load_table, parsed once per file version (predict asks for the default model on every call)."""
    return _load_cached(str(path), path.stat().st_mtime_ns)


# -- coordinates: (categorical key, log-interpolated axes) of each op class ---------------------------
AXES = {"gemm": ("m", "n", "k"), "prefill_attn": ("b*h", "s", "d"), "decode_attn": ("b*kv_h", "h/kv_h", "c", "d"),
        "elementwise": ("bytes",), "allreduce": ("bytes",), "launch": ()}
# Power of each axis that time is (piecewise) linear in: interpolation weights are taken in axis**power.
# Prefill attention's work grows as s^2, but between the grid's dense s nodes (each block boundary has one just
# past it) its time grows about linearly: s^2 fitted the H100 checks of seeds 3-5 worse (triton P95 18.7 vs 19.0,
# torch 32.6 vs 32.9 on seed 4). Classes not listed interpolate log efficiency over log axes.
WORK_POWER = {"gemm": (1, 1, 1), "prefill_attn": (1, 1, 1), "decode_attn": (1, 1, 1, 1)}
# Tile quantisation: kernels work in whole tiles, so a shape is looked up at its dimension rounded up to the
# tile (below one tile: to the next power of two, the smaller tiles kernels pick for small problems). GEMM n:
# 128-wide output tiles; decode attention: 128-key steps of the split context (kernels/configs.py
# DecodeConfig.block_n; 64 fitted the seed-3/4 checks worse: triton P95 18.6 vs 17.0%). GEMM m and prefill s
# are not rounded: the grid has a node just past each tile boundary they cross (calibration/grids.py), so the
# step is measured, and the time between a boundary's first row and the next boundary is interpolated (the
# partial tiles of a Triton GEMM run slower than full ones: m = 257 took 109 us where 384 took 83; cuBLAS picks
# its own tiles, and rounding its m to 128 predicted it 10-25% high in the line scans).
TILE = {"gemm": {"n": 128}, "decode_attn": {"c": 128}}
# Head dims the attention kernels are built for: a shape runs, and is looked up, at its head dim padded up to one
# (0: the next power of two). Triton prefill (kernels/prefill_attention.py): BLOCK_D = next power of two (d = 80, 96
# run as 128; 144, 160 as 256) in its tensor-core products. torch prefill (SDPA's flash kernel): multiples of 32.
# Decode (both stacks) is memory-bound and its masked loads read only the d real columns: not padded (seed-2 check:
# triton decode d = 80, 96 were predicted 16-48% high when padded).
HEAD_DIM_STEP = {("triton", "prefill_attn"): 0, ("torch", "prefill_attn"): 32}


def _round_up(x, tile):
    """x rounded up to a multiple of `tile` (0: to the next power of two); below one tile, to the next power of two."""
    x = np.maximum(np.asarray(x, dtype=float), 1.0)
    pow2 = 2.0 ** np.ceil(np.log2(x))
    return pow2 if tile == 0 else np.ceil(x / np.minimum(tile, pow2)) * np.minimum(tile, pow2)


def _tiled(op: str, shape: dict, stack: str = "triton") -> dict:
    """The shape as the stack's kernel runs it: tiled dimensions rounded up to whole tiles (TILE), the head dim
    padded (HEAD_DIM_STEP)."""
    out = dict(shape)
    for key, tile in TILE.get(op, {}).items():
        out[key] = _round_up(shape[key], tile)
    if (stack, op) in HEAD_DIM_STEP:
        out["d"] = _round_up(shape["d"], HEAD_DIM_STEP[stack, op])
    return out


def coords(op: str, shape: dict, stack: str = "triton") -> tuple[tuple, list[np.ndarray]]:
    """Categorical values and interpolation axes of a shape (arrays broadcast). SDPA prefill is also split by
    whether its shape runs the bounds-check-free template (simulator.sdpa_launch.sdpa_even): the two are looked up
    among nodes of their own kind, as the steps between them are not interpolable."""
    f = lambda k: np.asarray(shape[k], dtype=float)  # noqa: E731
    if op == "gemm":
        return (), [f("m"), f("n"), f("k")]
    if op == "prefill_attn":
        causal = np.asarray(shape["causal"]).astype(bool).astype(int)
        even = (sdpa_even(shape["s"], shape["d"]).astype(int),) if stack == "torch" else ()
        return (causal, *even), [f("b") * f("h"), f("s"), f("d")]
    if op == "decode_attn":
        return (), [f("b") * f("kv_h"), f("h") / f("kv_h"), f("c"), f("d")]
    if op == "elementwise":
        return (), [f("bytes")]
    if op == "allreduce":
        return (np.asarray(shape["t"]).astype(int),), [f("bytes")]
    if op == "launch":
        return (np.asarray(shape["mode"]),), []
    raise UserError(f"unknown op class '{op}'; use one of gemm, prefill_attn, decode_attn, elementwise, "
                    "allreduce, launch")


def _canonical(op: str, cat: tuple, axes: list[np.ndarray]) -> dict:
    """A contract shape with the given coordinates (attention heads folded into the batch)."""
    if op == "gemm":
        return dict(zip("mnk", axes))
    if op == "prefill_attn":
        return {"b": axes[0], "h": 1, "kv_h": 1, "s": axes[1], "d": axes[2], "causal": cat[0]}
    if op == "decode_attn":
        return {"b": axes[0], "h": axes[1], "kv_h": 1, "c": axes[2], "d": axes[3]}
    return {"bytes": axes[0], "t": cat[0] if cat else 1}


def _roofline_s(op: str, cat: tuple, axes: list[np.ndarray], peak: float, bw: float, link_bw: float) -> np.ndarray:
    """Roofline time at the coordinates: the reference that efficiencies are taken against."""
    if op == "launch":
        return np.asarray(1.0)  # a fixed cost: efficiency is the time itself
    if op == "allreduce":
        t = cat[0]
        return np.maximum(2.0 * (t - 1) / t * axes[0] / link_bw, 1e-12)
    flops, nbytes = op_cost(op, _canonical(op, cat, axes))
    return np.maximum(np.maximum(flops / peak, nbytes / bw), 1e-12)


# Axes along which a shape is not run as a larger one: the attention kernels pick their tiles by head dim
# (kernels/configs.py), so d = 160 (64-row tiles) can beat d = 128 (128-row tiles) on one-token prompts; a running
# minimum over d would hand the faster config to the smaller head dim (seen: b*h = 1024, s = 1: 18 vs 50 us).
# GEMM rows: a product of 1 row runs other code than one of 16 (Triton specializes M == 1; cuBLAS picks GEMV
# kernels), and was measured slower (n = 2048, k = 4096: 13.4 vs 10.1 us); padding m would give it the 16-row time.
# Prefill attention: no axis. No engine pads a prompt or a batch to a faster shape, and SDPA is not monotone (s = 257
# took longer than s = 384 at b*h = 256, d = 64: 51 vs 43 us); the running minimum made the torch table 7% fast on
# average (H100 random checks of seeds 3-5: P95 32.6 -> 21.2% for seed 4), the Triton one unchanged.
NOT_PADDED = {"gemm": (0,), "prefill_attn": (0, 1, 2), "decode_attn": (3,)}


class _Grid:
    """Grid of one op class and categorical value, built from measured points: log time and log efficiency."""

    def __init__(self, op: str, cat: tuple, x: np.ndarray, t_s: np.ndarray, roof, waves=None):
        """Points at coordinates `x` (points, axes) took `t_s` seconds. `waves(axes)`: if given, the lookup
        interpolates time per unit of critical work (simulator.quanta), made monotone as time first."""
        self.op, self.cat, self.roof = op, cat, roof
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
            if ax in NOT_PADDED.get(op, ()):
                continue
            logt = np.flip(np.minimum.accumulate(np.flip(logt, ax), axis=ax), ax)
        self.waves, self._node_works = waves, np.full(logt.size, np.nan)  # work per node, filled on first use
        self.logt, self.logeff = logt, logroof - logt  # efficiency = roofline time / time

    @property
    def min_time_s(self) -> float:
        """The smallest node time (for all-reduce: its fixed cost, the smallest message's time)."""
        return float(np.exp(self.logt.min()))

    def _logroof(self, logx: list[np.ndarray]) -> np.ndarray:
        return np.log(self.roof(self.op, self.cat, [np.exp(v) for v in logx]))

    @staticmethod
    def _fill(logt: np.ndarray, logroof: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """Skipped nodes: roofline x the efficiency of the nearest measured node (in log coordinates)."""
        flat, roof = logt.reshape(-1).copy(), logroof.reshape(-1)
        have, miss = np.flatnonzero(~np.isnan(flat)), np.flatnonzero(np.isnan(flat))
        dist = ((mesh[miss, None, :] - mesh[None, have, :]) ** 2).sum(-1)
        nearest = have[np.argmin(dist, axis=1)]
        flat[miss] = roof[miss] - (roof[nearest] - flat[nearest])
        return flat.reshape(logt.shape)

    def log_time(self, logx: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log seconds, outside-grid mask, used-a-skipped-node mask) at n log coordinates (1-D arrays).

        Inside the grid: multilinear interpolation of time over axis**power (WORK_POWER), or of log
        efficiency over log axes (clipped to the cell's corner times) for the classes it does not list; both
        exact at (monotone) nodes, and monotone.
        """
        powers = WORK_POWER.get(self.op)
        outside = np.zeros(n, bool)
        clamped, base, weights, steps = [], np.zeros(n, np.intp), [], []
        strides = np.cumprod([1] + [len(nd) for nd in self.nodes[:0:-1]])[::-1]  # of the C-ordered flat grid
        for ax, (v, nodes, stride) in enumerate(zip(logx, self.nodes, strides)):
            vc = np.clip(v, nodes[0], nodes[-1])
            outside |= vc != v
            if len(nodes) == 1:  # one node: no second corner along this axis
                i, w, step = 0, np.zeros(n), 0
            else:
                i = np.clip(np.searchsorted(nodes, vc, side="right") - 1, 0, len(nodes) - 2)
                lo, hi, at = (nodes[i], nodes[i + 1], vc) if powers is None else \
                    (np.exp(powers[ax] * nodes[i]), np.exp(powers[ax] * nodes[i + 1]), np.exp(powers[ax] * vc))
                w, step = np.clip((at - lo) / (hi - lo), 0.0, 1.0), int(stride)
            clamped.append(vc), weights.append(w), steps.append(step)
            base += i * int(stride)
        values = (self.logeff if powers is None else np.exp(self.logt)).reshape(-1)
        acc, used_filled, flat_filled = np.zeros(n), np.zeros(n, bool), self.filled.reshape(-1)
        for corner in itertools.product((0, 1), repeat=len(self.nodes)):
            wt = np.ones(n)
            for c, w in zip(corner, weights):
                wt *= w if c else 1.0 - w
            idx = base + sum(c * st for c, st in zip(corner, steps))
            acc += wt * (values[idx] if self.waves is None else values[idx] / self._node_work(idx))
            used_filled |= (wt > 0) & flat_filled[idx]
        if powers is None:  # clipped to the cell's corner times: no dip just past a memory/compute bend
            flat_t = self.logt.reshape(-1)
            out = np.clip(self._logroof(clamped) - acc, flat_t[base], flat_t[base + sum(steps)])
        else:
            out = np.log(acc)
        if outside.any():  # roofline at the shape x efficiency at the grid edge
            out = out + np.where(outside, self._logroof(logx) - self._logroof(clamped), 0.0)
        return out, outside, used_filled

    def _node_work(self, idx: np.ndarray) -> np.ndarray:
        """Critical work (simulator.quanta) at flat node indices, computed once per node on first use: a lookup
        touches a few cells, and a table has thousands of nodes (simulating them all would slow every start)."""
        todo = np.unique(idx[np.isnan(self._node_works[idx])])
        if todo.size:
            coords = np.unravel_index(todo, self.logt.shape)
            self._node_works[todo] = self.waves([np.exp(nd[c]) for nd, c in zip(self.nodes, coords)])
        return self._node_works[idx]

    def extent(self) -> str:
        """The measured range of each axis, e.g. 'm 1..16384, n 256..131072, k 256..65536'."""
        names = AXES[self.op]
        return ", ".join(f"{a} {np.exp(nd[0]):.4g}..{np.exp(nd[-1]):.4g}" for a, nd in zip(names, self.nodes))


class TableModel(TimeModel):
    """Op times from a measured (or derived) throughput table for one software stack."""

    def __init__(self, table: dict, gpu, stack: str = "triton", *, source: str = "table",
                 derived_from: str | None = None):
        super().__init__()
        self.table, self.gpu, self.stack = table, gpu, stack
        self.derived_from = derived_from
        self.source = f"{'derived' if derived_from else 'measured'} {source}"
        self._grids: dict[tuple, _Grid | None] = {}
        self._fallback = RooflineModel(gpu)

    @property
    def power_w(self) -> dict | None:
        """Board power measured during the sweep (None for a derived table)."""
        return None if self.derived_from else self.table.get("power_w")

    def _roof(self, op: str, cat: tuple, axes: list[np.ndarray]) -> np.ndarray:
        g = self.gpu
        return _roofline_s(op, cat, axes, g.peak_bf16_flops, g.hbm_bw_bytes_s, g.interconnect_bw_bytes_s)

    def _grid(self, op: str, cat: tuple) -> _Grid | None:
        key = (op, cat)
        if key not in self._grids:
            pts = [p for p in self.table["points"] if p.get("op") == op and p.get("median_us", 0) > 0]
            mine = [p for p in pts if p.get("stack") == self.stack]
            if not mine and pts and op in STACK_CLASSES:
                self.warnings.add(f"{op}: no {self.stack} points in the table; using the other stack's")
            use = mine or pts
            x, t_s = np.zeros((0, len(AXES.get(op, ())))), np.zeros(0)
            if use:  # coordinates of all points at once (a table holds thousands)
                cats, axes = coords(op, {k: np.array([p["shape"][k] for p in use]) for k in use[0]["shape"]},
                                    self.stack)
                sel = np.ones(len(use), bool)
                for c, v in zip(cats, cat):
                    sel &= np.asarray(c) == v
                x = np.stack(axes, -1)[sel] if axes else np.zeros((int(sel.sum()), 0))
                t_s = np.array([p["median_us"] for p in use])[sel] * 1e-6
            waves = (lambda axes: self._work(op, axes, cat)) if has_model(op, self.stack) else None
            self._grids[key] = _Grid(op, cat, x, t_s, self._roof, waves) if t_s.size else None
        return self._grids[key]

    def _work(self, op: str, axes: list[np.ndarray], cat: tuple = ()) -> np.ndarray:
        """This stack's critical work at table coordinates (simulator.quanta) on the table's GPU."""
        sm_count = int((self.table.get("provenance") or {}).get("sm_count") or 132)
        return critical_work(op, self.stack, axes, sm_count, cat)

    def op_time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Seconds per run of `op_class` at `shape` (arrays broadcast); fills `warnings` as it goes.

        An all-reduce is split in two: `allreduce_latency`, the measured time of the smallest message (an eager
        call's fixed cost), and `allreduce`, the time above it (moving the bytes)."""
        if op_class == "allreduce_latency":
            grid = self._grid("allreduce", (int(np.max(shape["t"])),))
            if grid is None:
                self.warnings.add(f"allreduce t={np.max(shape['t'])}: not in the table; roofline latency assumed")
                return self._fallback.op_time_s(op_class, shape)
            return np.asarray(grid.min_time_s)
        cats, axes = coords(op_class, _tiled(op_class, shape, self.stack), self.stack)
        full = np.broadcast_shapes(*(np.shape(a) for a in (*cats, *axes)))
        size = int(np.prod(full, dtype=int))
        logx = [np.log(np.maximum(np.broadcast_to(a, full).reshape(-1), 1e-30)) for a in axes]
        cat = np.stack([np.broadcast_to(c, full).reshape(-1) for c in cats], -1) if cats else np.zeros((size, 0))
        keys, group = np.unique(cat, axis=0, return_inverse=True)
        out = np.empty(size)
        for i, row in enumerate(keys):  # a few categorical keys per class: groups, vectorised inside
            sel = group.reshape(-1) == i
            key = tuple(v.item() for v in row)
            grid = self._grid(op_class, key)
            if grid is None:
                out[sel] = self._roofline_fallback(op_class, shape, full, sel, key)
                continue
            log_t, outside, filled = grid.log_time([v[sel] for v in logx], int(sel.sum()))
            out[sel] = np.exp(log_t)
            if grid.waves is not None:  # time per unit of critical work back to time (outside the grid: at its edge)
                inside = [np.clip(np.broadcast_to(a, full).reshape(-1)[sel], *np.exp(nd[[0, -1]]))
                          for a, nd in zip(axes, grid.nodes)]
                out[sel] *= self._work(op_class, inside, key)
            if op_class == "allreduce":  # the fixed cost is the allreduce_latency term
                out[sel] = np.maximum(out[sel] - grid.min_time_s, 0.0)
            if outside.any():
                self.warnings.add(f"{op_class}: shapes outside the measured grid ({grid.extent()}) extrapolated "
                                  "as roofline x the efficiency at the grid edge")
            if filled.any():
                self.warnings.add(f"{op_class}: shapes near grid nodes the sweep skipped (work cap) use the "
                                  "nearest measured efficiency")
        if self.derived_from:
            self.warnings.add(f"table derived from {self.derived_from} by spec ratios, not measured on "
                              f"{self.gpu.name}")
        return out.reshape(full)

    def _roofline_fallback(self, op: str, shape: dict, full: tuple, sel: np.ndarray, key: tuple) -> np.ndarray:
        """Datasheet roofline for an op class or category the table lacks (e.g. all-reduce over t = 8)."""
        names = _cat_names(op, self.stack)
        sub = {k: (key[names.index(k)] if k in names else np.broadcast_to(v, full).reshape(-1)[sel])
               for k, v in shape.items()}
        self.warnings.add(f"{op} {dict(zip(names, key))}: not in the table; roofline from datasheet peaks")
        return np.broadcast_to(self._fallback.op_time_s(op, sub), (int(sel.sum()),))


def _cat_names(op: str, stack: str = "triton") -> tuple[str, ...]:
    if op == "prefill_attn":
        return ("causal", "even") if stack == "torch" else ("causal",)
    return {"allreduce": ("t",), "launch": ("mode",)}.get(op, ())


def derive_table(table: dict, src_gpu, dst_gpu, src_file: str) -> dict:
    """A table for `dst_gpu` from one measured on `src_gpu`: each point scaled by the ratio of the spec
    figure that bounds it (see DERIVE_RULE). Marked `derived`, keeping the source's provenance."""
    ridge = src_gpu.peak_bf16_flops / src_gpu.hbm_bw_bytes_s
    compute = src_gpu.peak_bf16_flops / dst_gpu.peak_bf16_flops
    memory = src_gpu.hbm_bw_bytes_s / dst_gpu.hbm_bw_bytes_s
    link = src_gpu.interconnect_bw_bytes_s / dst_gpu.interconnect_bw_bytes_s
    points = []
    for p in table["points"]:
        if p["op"] == "launch":
            ratio = 1.0
        elif p["op"] == "allreduce":
            ratio = link
        else:
            flops, nbytes = op_cost(p["op"], p["shape"])
            ratio = compute if flops >= ridge * nbytes and flops > 0 else memory
        q = dict(p)
        for key in ("median_us", "min_us", "p10_us", "p90_us", "std_us"):
            if key in q:
                q[key] = q[key] * ratio
        points.append(q)
    ceil = table.get("ceilings") or {}
    ceilings = {k: v / (memory if k == "copy_bw_bytes_s" else compute) for k, v in ceil.items()}
    return {"provenance": table.get("provenance"), "status": table.get("status"),
            "derived": {"from": src_file, "to": dst_gpu.name, "rule": DERIVE_RULE},
            "ceilings": ceilings, "power_w": None, "points": points}


def _nearest_measured(gpu, tables_dir: Path) -> tuple[Path, object] | None:
    """The measured table in `tables_dir` whose GPU is closest to `gpu` in peak FLOP/s and bandwidth."""
    from simulator.gpus import GPUS

    best = None
    for path in sorted(tables_dir.glob("*.json")):
        try:
            table = _cached(path)
        except UserError:
            continue
        src = GPUS.get((table.get("provenance") or {}).get("gpu", ""))
        if table.get("derived") or src is None:
            continue
        dist = abs(np.log(src.peak_bf16_flops / gpu.peak_bf16_flops)) + abs(np.log(src.hbm_bw_bytes_s / gpu.hbm_bw_bytes_s))
        if best is None or dist < best[0]:
            best = (dist, path, src)
    return None if best is None else best[1:]


def table_model_for(gpu, stack: str = "triton", tables_dir: str | Path | None = None) -> TableModel | None:
    """The GPU's measured table, else one derived from the nearest measured GPU's, else None (roofline)."""
    tables_dir = Path(tables_dir) if tables_dir is not None else TABLES_DIR
    own = tables_dir / (gpu.table or f"{gpu.name}.json")
    if own.exists():
        table = _cached(own)
        if not table.get("derived"):
            return TableModel(table, gpu, stack, source=own.name)
    found = _nearest_measured(gpu, tables_dir)
    if found is None:
        return None
    path, src = found
    derived = derive_table(_cached(path), src, gpu, path.name)
    return TableModel(derived, gpu, stack, source=path.name, derived_from=src.name)


def default_model(gpu, stack: str = "triton") -> TimeModel:
    """The GPU's measured or derived throughput table for `stack`, else the datasheet roofline."""
    return table_model_for(gpu, stack) or RooflineModel(gpu)
