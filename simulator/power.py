"""Board power per op class from a table's measured `op_power` section (calibration/op_power.py), and the
energy of a phase from its ops.

Model, per GPU: an op of class c on stack s draws
    P = min(board power, idle_w + a_s,c · u_mem + b_s,c · u_flop) watts
while it runs, where u_mem and u_flop are the fractions of the datasheet HBM bandwidth and dense bf16 peak its
bytes and FLOPs per run use over its time per run (a table point's `table_us`, an op's time from the time
model): the board's dynamic power follows how busy HBM and the tensor cores are, up to its power limit (the
GPU spec's `board_power_w`). a, b ≥ 0 are fitted per (stack, class) to its measured points, least squares in
relative error (`fit_activity`). While the GPU runs no kernel (the host's part of a phase, fixed costs) the
board draws `idle_w`. So a phase costs Σ_ops count · t_op · P_op + idle_w · (wall time − GPU busy time), each class's time
scaled by its fit coefficient as the phase's time is.

A (stack, class) without points takes the curve of the first of these that has points, its own stack first,
then the other measured stack: the class itself; its `OpClass.fallback` or `derived_from` (the class a table
times it as, e.g. a low-precision GEMM as the bf16 one);
`elementwise` (memory-bound; covers the all-reduce, whose power is not measured); `decode_attn`; else the
median watts of all measured points. A section without points is no power model (energy falls back to one
board power figure, simulator.predict).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.nnls import nonneg_lstsq
from simulator.opclasses import OP_CLASS, op_cost
from simulator.ops import Op
from simulator.timemodel import TimeModel, time_by_class

SOURCE = "op_power (measured per op class)"
HOST_CLASS = "launch"  # the host's work: the GPU runs no kernel for it
IDLE_CLASSES = (HOST_CLASS, "start")  # classes whose time the GPU spends idle (the start: waiting for the host)
LAST_RESORTS = ("elementwise", "decode_attn")  # memory-bound classes a class without points is powered as
STACK_ORDER = ("triton", "torch")  # the measured stacks; the `best` stack looks in this order


def utilisation(flops, nbytes, seconds, gpu: GPUSpec) -> tuple[np.ndarray, np.ndarray]:
    """(u_mem, u_flop): bytes / HBM bandwidth and FLOPs / dense peak, over `seconds` a run (arrays broadcast)."""
    seconds = np.maximum(np.asarray(seconds, dtype=float), 1e-15)
    return (np.asarray(nbytes, dtype=float) / gpu.hbm_bw_bytes_s / seconds,
            np.asarray(flops, dtype=float) / gpu.peak_bf16_flops / seconds)


def fit_activity(u_mem: np.ndarray, u_flop: np.ndarray, watts: np.ndarray, idle_w: float, cap_w: float) -> np.ndarray:
    """(a, b) ≥ 0 minimising Σ ((min(cap_w, idle_w + a·u_mem + b·u_flop) − watts) / watts)²: least squares on the
    points below the cap, the capped set updated until it settles (kept: the best objective seen)."""
    x = np.stack([u_mem, u_flop], axis=1) / watts[:, None]  # relative error: rows divided by the measured watts
    y = (watts - idle_w) / watts

    def objective(c: np.ndarray) -> float:
        return float(np.sum((np.minimum(cap_w, idle_w + x @ c * watts) - watts) ** 2 / watts**2))

    capped = np.zeros(watts.size, dtype=bool)
    best = None
    for _ in range(watts.size + 1):
        c = nonneg_lstsq(x[~capped], y[~capped]) if (~capped).any() else np.zeros(2)
        if best is None or objective(c) < objective(best):
            best = c
        now = idle_w + x @ c * watts >= cap_w
        if np.array_equal(now, capped):
            break
        capped = now
    return best


@dataclass(frozen=True)
class Curve:
    """Watts of one (stack, op class): min(cap_w, idle_w + a · u_mem + b · u_flop)."""

    a_w: float  # watts at the full HBM bandwidth, above idle
    b_w: float  # watts at the full dense peak, above idle
    idle_w: float
    cap_w: float

    def __call__(self, u_mem, u_flop) -> np.ndarray:
        """Board watts at these utilisations."""
        return np.minimum(self.cap_w, self.idle_w + self.a_w * np.asarray(u_mem) + self.b_w * np.asarray(u_flop))


@dataclass(frozen=True)
class PowerModel:
    """Measured power curves per (stack, op class) and the idle board power, for one stack's ops."""

    stack: str
    gpu: GPUSpec  # whose datasheet peaks utilisation is taken against
    idle_w: float
    curves: dict[tuple[str, str], Curve]
    median_w: float  # of all measured points: the power of a class no chain reaches

    def curve_key(self, op_class: str) -> tuple[str, str] | None:
        """The (stack, class) whose curve powers `op_class` on this stack (module docstring), None if none has points."""
        stacks = [self.stack] + [s for s in STACK_ORDER if s != self.stack]
        stacks += sorted({s for s, _ in self.curves} - set(stacks))
        record = OP_CLASS.get(op_class)
        near = [record.fallback, record.derived_from] if record is not None else []
        chain = [op_class] + [c for c in near if c] + list(LAST_RESORTS)
        for cls in chain:
            for s in stacks:
                if (s, cls) in self.curves:
                    return s, cls
        return None

    def watts(self, op: Op, seconds) -> np.ndarray:
        """Board watts while `op` runs, `seconds` a run (arrays broadcast over its shape)."""
        key = self.curve_key(op.op_class)
        return self.curves[key](*utilisation(op.flops, op.bytes, seconds, self.gpu)) if key else \
            np.asarray(self.median_w)


def _positive(value, field: str, where: str, unit: str = "watts") -> float:
    """A finite number > 0, or a UserError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise UserError(f"{where}: op_power.{field} must be a number of {unit} > 0, got {value!r}; re-measure it "
                        "with 'python -m calibration.op_power' and --merge it")
    return float(value)


def from_section(section: dict, stack: str, gpu: GPUSpec, where: str = "table") -> PowerModel | None:
    """The power model of `stack` from a table's `op_power` section (schema: calibration/op_power.py); None when
    it has no points."""
    if not isinstance(section, dict) or not isinstance(section.get("points"), list):
        raise UserError(f"{where}: op_power has no 'points' list; re-run 'python -m calibration.op_power --merge'")
    idle = _positive(section.get("idle_w"), "idle_w", where)
    by_key: dict[tuple[str, str], list[tuple[float, float, float]]] = {}  # (u_mem, u_flop, watts)
    for i, pt in enumerate(section["points"]):
        if not isinstance(pt, dict) or pt.get("op") not in OP_CLASS or not isinstance(pt.get("shape"), dict):
            raise UserError(f"{where}: op_power.points[{i}] needs an 'op' of {', '.join(OP_CLASS)} and a 'shape'")
        watts = _positive(pt.get("watts"), f"points[{i}].watts", where)
        seconds = _positive(pt.get("table_us"), f"points[{i}].table_us", where, "microseconds") * 1e-6
        try:
            u_mem, u_flop = utilisation(*op_cost(pt["op"], pt["shape"]), seconds, gpu)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: op_power.points[{i}].shape {pt['shape']} is not a {pt['op']} shape") from None
        by_key.setdefault((str(pt.get("stack")), pt["op"]), []).append((float(u_mem), float(u_flop), watts))
    if not by_key:
        return None
    curves = {}
    for key, rows in by_key.items():
        m, f, w = (np.array(col) for col in zip(*rows))
        a, b = fit_activity(m, f, w, idle, gpu.board_power_w)
        curves[key] = Curve(float(a), float(b), idle, gpu.board_power_w)
    median = float(np.median([w for rows in by_key.values() for _, _, w in rows]))
    return PowerModel(stack, gpu, idle, curves, median)


def power_model(model: TimeModel) -> PowerModel | None:
    """The power model of a measured table's `op_power` section, None for a roofline, a derived table (its
    power was measured on another GPU) or a table without the section."""
    table = getattr(getattr(model, "stacks", [model])[0], "table", None)  # BestModel: its stacks share one table
    if not isinstance(table, dict) or table.get("derived") or getattr(model, "derived_from", None):
        return None
    if table.get("op_power") is None:
        return None
    return from_section(table["op_power"], getattr(model, "stack", STACK_ORDER[0]), model.gpu, describe_table(model))


def describe_table(model: TimeModel) -> str:
    """The table a model reads, for error messages."""
    return str(getattr(model, "source", "table"))


def times_and_energy(ops: list[Op], model: TimeModel, power: PowerModel | None,
                     warned: dict[str, np.ndarray] | None = None, runs: list | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per op class: seconds (simulator.timemodel.time_by_class, which fills `warned`) and joules of the GPU running
    them (none for the host's `launch`; {} without a power model): Σ over its ops of count × time per run × watts,
    and the time a class loses to sustained throttling at the power it draws. `runs`, if given, gets each
    (op, seconds a run) in the ops' order."""
    if power is None:
        return time_by_class(ops, model, warned, None if runs is None else lambda op, s: runs.append((op, s))), {}
    joules: dict[str, np.ndarray] = {}
    burst: dict[str, np.ndarray] = {}

    def visit(op: Op, run_s: np.ndarray) -> None:
        if runs is not None:
            runs.append((op, run_s))
        if op.op_class in IDLE_CLASSES:
            return
        t_s = op.count * run_s
        e_j = t_s * power.watts(op, run_s)
        joules[op.op_class] = joules[op.op_class] + e_j if op.op_class in joules else e_j
        burst[op.op_class] = burst[op.op_class] + t_s if op.op_class in burst else t_s

    times = time_by_class(ops, model, warned, visit)
    for c, e in joules.items():  # throttled: the same power over the longer time
        joules[c] = e * np.divide(times[c], burst[c], out=np.ones(np.broadcast(times[c], burst[c]).shape),
                                  where=np.asarray(burst[c]) > 0)
    return times, joules


def phase_energy(times: dict[str, np.ndarray], joules: dict[str, np.ndarray], coef: dict[str, float],
                 wall_s: np.ndarray, idle_w: float) -> dict[str, np.ndarray]:
    """Joules of one GPU over a phase, per class (scaled by its coefficient as its time is) and "idle":
    idle_w × (wall_s − the GPU's busy time)."""
    out = {c: coef[OP_CLASS[c].coefficient] * e for c, e in joules.items()}
    busy = sum((coef[OP_CLASS[c].coefficient] * v for c, v in times.items() if c not in IDLE_CLASSES), np.zeros(()))
    out["idle"] = idle_w * np.maximum(np.asarray(wall_s) - busy, 0.0)
    return out
