"""Throughput-table time model: op times looked up in a GPU's measured (or derived) table, with the roofline
where the table has no data.

A table holds, per op class (simulator.opclasses), measured points of shape -> time. The lookup runs a shape as
the stack's kernel does (whole tiles, padded head dim), finds the grid of its categorical values
(simulator.grid) and interpolates there; a shape outside the grid takes the roofline time scaled by the
efficiency at the grid edge. Both that and a table derived from another GPU's (simulator.derive) are reported in
`model.warnings`. Pure numpy: no torch.
"""
from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np

try:  # a table is megabytes: orjson parses it ~4x faster than json (the GPU machines have only json)
    import orjson
except ImportError:
    orjson = None

from simulator.derive import derive_table, nearest_measured
from simulator.dispatch import Dispatch
from simulator.errors import UserError
from simulator.gpus import GPUS
from simulator.grid import Grid
from simulator.hostmodel import host_mode_seconds, is_host_mode
from simulator.layer_points import LayerCurves
from simulator.opclasses import CATEGORY_DEFAULT, OP_CLASS, PADS_INTO, gpu_roofline_s, op_cost, round_up
from simulator.opclasses import op_class as op_class_record
from simulator.paths import TABLES_DIR
from simulator.quanta import LaunchModel, critical_work, memory_bound
from simulator.sustained import recovery, throttles
from simulator.timemodel import RooflineModel, TimeModel


def load_table(path: str | Path) -> dict:
    """Load a throughput table file; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        table = orjson.loads(path.read_bytes()) if orjson is not None else json.loads(path.read_text())
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


class TableModel(TimeModel):
    """Op times from a measured (or derived) throughput table for one software stack."""

    def __init__(self, table: dict, gpu, stack: str = "triton", *, source: str = "table",
                 derived_from: str | None = None, ideal: bool = False):
        """`ideal`: grids padded on every axis, without the kernels' wave steps (simulator.grid.Grid)."""
        super().__init__()
        self.table, self.gpu, self.stack, self.ideal = table, gpu, stack, ideal
        self.derived_from = derived_from
        self.source = f"{'derived' if derived_from else 'measured'} {source}"
        self._grids: dict[tuple, Grid | None] = {}
        self._fallback = RooflineModel(gpu)
        self._launch: LaunchModel | None = None
        self._measured_classes = {p.get("op") for p in table["points"] if p.get("median_us", 0) > 0}
        self._fallbacks: set[str] = set()
        self._fallback_warning = ""
        self._borrowed: set[tuple] = set()  # (op, category) timed from the other stack's points
        self.derived_classes: set[str] = set()  # classes timed from another's points by the roofline ratio
        self.throttles = {} if derived_from else throttles(table, stack)
        self.recovery = None if derived_from else recovery(table, stack)
        # exact layer shapes (simulator.layer_points); not on ideal grids, which must stay monotone in n and k
        self.layers = LayerCurves({} if derived_from or ideal else table, stack)

    @property
    def power_w(self) -> dict | None:
        """Board power measured during the sweep (None for a derived table)."""
        return None if self.derived_from else self.table.get("power_w")

    def _roof(self, op: str, cat: tuple, axes: list[np.ndarray]) -> np.ndarray:
        """Roofline time at table coordinates: the reference that efficiencies are taken against (a fixed cost,
        launch, is its own efficiency)."""
        if op == "launch":
            return np.asarray(1.0)
        record = OP_CLASS[op]
        shape = record.from_axes(dict(zip(record.category_names(self.stack), cat)), axes)
        return np.maximum(gpu_roofline_s(op, shape, self.gpu), 1e-12)

    def _grid(self, op: str, cat: tuple) -> Grid | None:
        key = (op, cat)
        if key not in self._grids:
            pts = [p for p in self.table["points"] if p.get("op") == op and p.get("median_us", 0) > 0]
            mine = [p for p in pts if p.get("stack") == self.stack]
            if not mine and pts and OP_CLASS[op].per_stack:
                self._borrowed.add(key)
            use = mine or pts
            x, t_s = np.zeros((0, len(OP_CLASS[op].axes))), np.zeros(0)
            if use:  # coordinates of all points at once (a table holds thousands)
                keys = {k for p in use for k in p["shape"]}  # a categorical key older points lack takes its default
                cats, axes = OP_CLASS[op].coords(
                    {k: np.array([p["shape"].get(k, CATEGORY_DEFAULT.get(k)) for p in use]) for k in keys}, self.stack)
                sel = np.ones(len(use), bool)
                for c, v in zip(cats, cat):
                    sel &= np.asarray(c) == v
                x = np.stack(axes, -1)[sel] if axes else np.zeros((int(sel.sum()), 0))
                t_s = np.array([p["median_us"] for p in use])[sel] * 1e-6
            waves = (lambda axes, memory=None: self._work(op, axes, cat, memory)) \
                if self.stack in OP_CLASS[op].work_stacks and not self.ideal else None
            regime = (lambda axes: memory_bound(op, axes, self._launch_model())) if waves is not None else None
            self._grids[key] = Grid(op, cat, x, t_s, self._roof, waves, self.ideal, regime) if t_s.size else None
        return self._grids[key]

    def _launch_model(self) -> LaunchModel:
        """The table's launch model (simulator.quanta), on the GPU the table was measured on."""
        if self._launch is None:
            measured_on = GPUS.get((self.table.get("provenance") or {}).get("gpu", ""), self.gpu)
            self._launch = LaunchModel.from_table(self.table, measured_on)
        return self._launch

    def _work(self, op: str, axes: list[np.ndarray], cat: tuple = (), memory: np.ndarray | None = None) -> np.ndarray:
        """This stack's critical work at table coordinates (simulator.quanta) on the table's GPU; `memory`: as
        simulator.quanta.critical_work counts it."""
        return critical_work(op, self.stack, axes, self._launch_model(), cat, memory)

    def op_time_s(self, op_class: str, shape: dict, category: dict[str, int] | None = None,
                  layers: bool = True) -> np.ndarray:
        """Seconds per run of `op_class` at `shape` (arrays broadcast); fills `warnings` as it goes. `category`:
        values of categorical keys to use instead of the shape's (another variant of the kernel); `layers`:
        a GEMM at a layer shape the table measured takes that time (False: the sweep grid's alone)."""
        grid_s = self._grid_time_s(op_class, shape, category)
        if layers and op_class == "gemm" and self.layers:
            return self.layers.apply(shape, grid_s)[0]
        return grid_s

    def _grid_time_s(self, op_class: str, shape: dict, category: dict[str, int] | None = None) -> np.ndarray:
        """op_time_s from the sweep grid (and the roofline or derivations where it has no data)."""
        if op_class in ("launch", "start") and is_host_mode(shape["mode"]):  # a measured host model's (simulator.hostmodel)
            return np.asarray(host_mode_seconds(None if self.derived_from else self.table, shape["mode"]))
        record = op_class_record(op_class)
        if record.derived_from and op_class not in self._measured_classes:
            return self._derived_time_s(op_class, record.derived_from, shape)
        if record.fallback and op_class not in self._measured_classes:
            self._note_fallback(op_class, record.fallback)
            return self.op_time_s(record.fallback, {"bytes": np.asarray(op_cost(op_class, shape)[1], dtype=float)})
        cats, axes = record.coords(record.tiled(shape, self.stack, self.ideal), self.stack)
        if category:
            names = record.category_names(self.stack)
            cats = tuple(np.asarray(category[n]) if n in category else c for n, c in zip(names, cats))
        full = np.broadcast_shapes(*(np.shape(a) for a in (*cats, *axes)))
        size = int(np.prod(full, dtype=int))
        logx = [np.log(np.maximum(np.broadcast_to(a, full).reshape(-1), 1e-30)) for a in axes]
        cat = np.stack([np.broadcast_to(c, full).reshape(-1) for c in cats], -1) if cats else np.zeros((size, 0))
        keys, group = np.unique(cat, axis=0, return_inverse=True)
        out = np.empty(size)
        for i, row in enumerate(keys):  # a few categorical keys per class: groups, vectorised inside
            sel = group.reshape(-1) == i
            key = self._measured_key(op_class, tuple(v.item() for v in row), sel.reshape(full))
            grid = self._grid(op_class, key)
            if grid is None and record.stand_in:  # a category the table has no points of: its stand-in's grid
                names = record.category_names(self.stack)
                key = tuple(record.stand_in.get(n, v) for n, v in zip(names, key))
                grid = self._grid(op_class, key)
                if grid is not None:
                    self.warn(f"{op_class}: no points of {', '.join(record.stand_in)} = 0 in this table; timed on "
                              f"the grid of 1 (re-run 'idealrt calibrate --ops {op_class}')", sel.reshape(full))
            if grid is None:
                out[sel] = self._roofline_fallback(op_class, shape, full, sel, key)
                continue
            if (op_class, key) in self._borrowed:
                self.warn(f"{op_class}: no {self.stack} points in the table; using the other stack's",
                          sel.reshape(full))
            log_t, outside, filled = grid.log_time([v[sel] for v in logx], int(sel.sum()))
            out[sel] = np.exp(log_t)
            if grid.waves is not None:  # time per unit of critical work back to time (outside the grid: at its edge)
                inside = [np.clip(np.broadcast_to(a, full).reshape(-1)[sel], *np.exp(nd[[0, -1]]))
                          for a, nd in zip(axes, grid.nodes)]
                out[sel] *= self._work(op_class, inside, key)
            if outside.any():
                self.warn(f"{op_class}: shapes outside the measured grid ({grid.extent()}) extrapolated "
                          "as roofline x the efficiency at the grid edge", _where(sel, outside, full))
            if filled.any():
                self.warn(f"{op_class}: shapes near grid nodes the sweep skipped (work cap) use the "
                          "nearest measured efficiency", _where(sel, filled, full))
        if self.derived_from:
            self.warn(f"table derived from {self.derived_from} by spec ratios, not measured on {self.gpu.name}")
        return out.reshape(full)

    def _derived_time_s(self, op_class: str, base: str, shape: dict) -> np.ndarray:
        """Time of a class the table has no points of: the measured time of `base` at the same shape x the ratio
        of their rooflines on the GPU's datasheet (bytes at each class's dtypes, FLOPs at each class's peak)."""
        self.derived_classes.add(op_class)
        how = ("no microbenchmark measures it yet" if OP_CLASS[op_class].unmeasured
               else f"'idealrt calibrate --ops {op_class}' on the GPU measures it")
        self.warn(f"{op_class}: derived, not measured: {base} times of this table x the roofline ratio, an "
                  f"ideal kernel's (optimistic: docs/decisions.md; {how})")
        ratio = gpu_roofline_s(op_class, shape, self.gpu) / gpu_roofline_s(base, shape, self.gpu)
        return self.op_time_s(base, shape) * ratio

    def _note_fallback(self, op_class: str, fallback: str) -> None:
        """One warning naming every class this table times as another's (it has no points of them)."""
        self.warnings.discard(self._fallback_warning)
        self._fallbacks.add(op_class)
        self._fallback_warning = (f"{', '.join(sorted(self._fallbacks))}: not measured in this table; timed as "
                                  f"{fallback} of their bytes (re-run 'idealrt calibrate' to measure them)")
        self.warn(self._fallback_warning)

    def _measured_key(self, op: str, key: tuple, where: np.ndarray) -> tuple:
        """The categorical values to look `key` up at: itself, or where the table has no points there (a table
        measured before `l2` or `fn` existed), its keys with defaults (CATEGORY_DEFAULT) at them, said so."""
        if self._grid(op, key) is not None:
            return key
        names = OP_CLASS[op].category_names(self.stack)
        movable = [i for i, n in enumerate(names) if CATEGORY_DEFAULT.get(n, key[i]) != key[i]]
        for moved in itertools.chain.from_iterable(itertools.combinations(movable, r) for r in range(1, len(movable) + 1)):
            alt = tuple(CATEGORY_DEFAULT[n] if i in moved else v for i, (n, v) in enumerate(zip(names, key)))
            if self._grid(op, alt) is not None:  # the fewest keys moved to their defaults
                changed = ", ".join(f"{names[i]}={key[i]} as {names[i]}={alt[i]}" for i in moved)
                self.warn(f"{op}: no points of {changed} in the table; timed as the latter", where)
                return alt
        return key

    def _roofline_fallback(self, op: str, shape: dict, full: tuple, sel: np.ndarray, key: tuple) -> np.ndarray:
        """Datasheet roofline for an op class or category the table lacks (e.g. all-reduce over t = 8)."""
        names = OP_CLASS[op].category_names(self.stack)
        sub = {k: (key[names.index(k)] if k in names else np.broadcast_to(v, full).reshape(-1)[sel])
               for k, v in shape.items()}
        where = ", ".join(f"{n}={v}" for n, v in zip(names, key))
        self.warn(f"{op} {where}: not in the table; roofline from datasheet peaks", sel.reshape(full))
        return np.broadcast_to(self._fallback.op_time_s(op, sub), (int(sel.sum()),))


def _where(sel: np.ndarray, hit: np.ndarray, full: tuple) -> np.ndarray:
    """Which elements (shape `full`) of those selected by `sel` (flat) have `hit` (one per selected element)."""
    out = np.zeros(sel.shape, bool)
    out[sel] = hit
    return out.reshape(full)


BEST = "best"  # per op the faster measured kernel, as the engine variant `best` dispatches (BestModel)
IDEAL = "ideal"  # the lower envelope: per op the faster stack on padded, wave-free grids (IdealModel)
MEASURED_STACKS = ("triton", "torch")  # stacks the engine runs and the tables measure
STACKS = MEASURED_STACKS + (BEST, IDEAL)


class _Combined(TimeModel):
    """A stack built from the measured stacks' models of one table: shared warnings, power and sustained data."""

    def __init__(self, stacks: list[TableModel], how: str):
        super().__init__()
        self.stacks = stacks
        self.gpu, self.derived_from = stacks[0].gpu, stacks[0].derived_from
        self.source = f"{stacks[0].source}, {how}"
        self.warnings = stacks[0].warnings  # shared: each stack's model adds to the same set and records
        self.throttles = stacks[0].throttles
        self.recovery = stacks[0].recovery
        for m in stacks:
            m.warnings, m._noted = self.warnings, self._noted

    @property
    def power_w(self) -> dict | None:
        """Board power measured during the sweep (None for a derived table)."""
        return self.stacks[0].power_w


class BestModel(_Combined):
    """The `best` stack: per op, the kernel simulator.dispatch chooses (the faster of ours and the vendor's as
    the engine runs them), timed as that stack's table times it. The engine variant `best` runs the same
    choice, so its rows validate these times. Element-wise kernels are ours, the fused ones (simulator.ops)."""

    stack = BEST

    def __init__(self, stacks: list[TableModel]):
        super().__init__(stacks, f"the faster of {' and '.join(m.stack for m in stacks)} per op (simulator.dispatch)")
        self.dispatch = Dispatch(*stacks)

    def op_time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Seconds per run of the kernel the dispatch rule chooses for the op."""
        return self.dispatch.time_s(op_class, shape)

    def settled_extra_s(self, op_class: str, throttled: str, shape: dict, flops, burst_s: np.ndarray) -> np.ndarray:
        """The settled slowdown of the kernel that runs the op, by its own stack's measured throttle (a cuBLAS
        GEMM slows as cuBLAS does, not as ours); a stack without that class's throttle adds none."""
        ours, theirs = (m.settled_extra_s(op_class, throttled, shape, flops, burst_s) for m in self.stacks)
        return np.where(self.dispatch.vendor_faster(op_class, shape), theirs, ours)


class IdealModel(_Combined):
    """The idealized envelope: per op, the faster of the measured stacks' times, each from grids padded on every
    axis and free of partial-wave steps, so no op's time falls as any dimension grows. No engine runs it: a
    kernel that picks its tiles per shape and pads any axis would (docs/decisions.md)."""

    stack = IDEAL

    def __init__(self, stacks: list[TableModel]):
        super().__init__(stacks, f"best of {' and '.join(m.stack for m in stacks)} per op, padded")

    def op_time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Seconds per run: the least of the stacks' ideal times (one stack's, for classes measured once), each
        stack's the least of its kernel variants (`PADS_INTO`: the general one, and the shape padded into the
        faster one)."""
        record = op_class_record(op_class)
        times = []
        for model in self.stacks if record.per_stack else self.stacks[:1]:
            padded = [c for c in record.category_names(model.stack) if c in PADS_INTO]
            times.append(model.op_time_s(op_class, shape, {c: 0 for c in padded}))
            for c in padded:
                key, multiple = PADS_INTO[c]
                times.append(model.op_time_s(op_class, {**shape, key: round_up(shape[key], multiple)}))
        return np.minimum.reduce(times)


def derived_classes(model: TimeModel) -> set[str]:
    """Op classes a model has timed so far from another class's points by the roofline ratio (not measured)."""
    return set().union(*(getattr(m, "derived_classes", set()) for m in getattr(model, "stacks", [model])))


def table_model_for(gpu, stack: str = "triton", tables_dir: str | Path | None = None,
                    ideal: bool = False) -> TimeModel | None:
    """The GPU's measured table, else one derived from the nearest measured GPU's, else None (roofline); the
    `best` stack dispatches between the measured stacks' (BestModel), `ideal` combines them on ideal grids
    (IdealModel)."""
    if stack not in STACKS:
        raise UserError(f"stack '{stack}': use one of {', '.join(STACKS)}")
    if stack in (BEST, IDEAL):
        models = [table_model_for(gpu, s, tables_dir, ideal=stack == IDEAL) for s in MEASURED_STACKS]
        return None if models[0] is None else (BestModel if stack == BEST else IdealModel)(models)
    tables_dir = Path(tables_dir) if tables_dir is not None else TABLES_DIR
    own = tables_dir / (gpu.table or f"{gpu.name}.json")
    if own.exists():
        table = _cached(own)
        if not table.get("derived"):
            return TableModel(table, gpu, stack, source=own.name, ideal=ideal)
    found = nearest_measured(gpu, tables_dir, _cached)
    if found is None:
        return None
    path, src = found
    derived = derive_table(_cached(path), src, gpu, path.name)
    return TableModel(derived, gpu, stack, source=path.name, derived_from=src.name, ideal=ideal)


def default_model(gpu, stack: str = "triton") -> TimeModel:
    """The GPU's measured or derived throughput table for `stack`, else the datasheet roofline."""
    return table_model_for(gpu, stack) or RooflineModel(gpu)
