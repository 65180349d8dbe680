"""Board power per op class from a table's measured `op_power` section (calibration/op_power.py), and the
energy of a phase from its ops.

Model, per GPU: an op of class c on stack s draws P_s,c(u) watts while it runs, where u is its utilisation:
its datasheet roofline time over its time per run (simulator.opclasses.roofline_s; a table point's `table_us`,
an op's time from the time model), how busy it keeps the resource it is bound by. P is piecewise linear in u
through the measured points of (s, c) (points at the same u averaged) and constant beyond the first and last.
While the GPU runs no kernel (the host's part of a phase, fixed costs) the board draws `idle_w`. So a phase costs Σ_ops count · t_op · P_op + idle_w · (wall time − GPU busy time), each class's time
scaled by its fit coefficient as the phase's time is.

A (stack, class) without points takes the curve of the first of these that has points, its own stack first,
then the other measured stack: the class itself; its `OpClass.fallback` (the class a table times it as);
`elementwise` (memory-bound; covers the all-reduce, whose power is not measured); `decode_attn`; else the
median watts of all measured points. A section without points is no power model (energy falls back to one
board power figure, simulator.predict).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.opclasses import OP_CLASS, roofline_s
from simulator.ops import Op
from simulator.timemodel import TimeModel

SOURCE = "op_power (measured per op class)"
HOST_CLASS = "launch"  # the host's work: the GPU runs no kernel for it
LAST_RESORTS = ("elementwise", "decode_attn")  # memory-bound classes a class without points is powered as
STACK_ORDER = ("triton", "torch")  # the measured stacks; the `best` stack looks in this order


def utilisation(op_class: str, shape: dict, seconds, gpu: GPUSpec) -> np.ndarray:
    """u = datasheet roofline seconds of one run / its `seconds` (arrays broadcast)."""
    roof = roofline_s(op_class, shape, gpu.peak_bf16_flops, gpu.hbm_bw_bytes_s, gpu.interconnect_bw_bytes_s)
    return np.asarray(roof, dtype=float) / np.maximum(np.asarray(seconds, dtype=float), 1e-15)


@dataclass(frozen=True)
class Curve:
    """Watts of one (stack, op class) against utilisation: points sorted by u, distinct u."""

    u: np.ndarray
    watts: np.ndarray

    def __call__(self, u) -> np.ndarray:
        """Piecewise-linear watts at u, constant beyond the end points."""
        return np.interp(u, self.u, self.watts)


@dataclass(frozen=True)
class PowerModel:
    """Measured power curves per (stack, op class) and the idle board power, for one stack's ops."""

    stack: str
    gpu: GPUSpec  # whose datasheet roofline utilisation is taken against
    idle_w: float
    curves: dict[tuple[str, str], Curve]
    median_w: float  # of all measured points: the power of a class no chain reaches

    def curve_key(self, op_class: str) -> tuple[str, str] | None:
        """The (stack, class) whose curve powers `op_class` on this stack (module docstring), None if none has points."""
        stacks = [self.stack] + [s for s in STACK_ORDER if s != self.stack]
        stacks += sorted({s for s, _ in self.curves} - set(stacks))
        record = OP_CLASS.get(op_class)
        chain = [op_class] + ([record.fallback] if record is not None and record.fallback else []) + list(LAST_RESORTS)
        for cls in chain:
            for s in stacks:
                if (s, cls) in self.curves:
                    return s, cls
        return None

    def watts(self, op: Op, seconds) -> np.ndarray:
        """Board watts while `op` runs, `seconds` a run (arrays broadcast over its shape)."""
        key = self.curve_key(op.op_class)
        return self.curves[key](utilisation(op.op_class, op.shape, seconds, self.gpu)) if key else \
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
    by_key: dict[tuple[str, str], dict[float, list[float]]] = {}
    for i, pt in enumerate(section["points"]):
        if not isinstance(pt, dict) or pt.get("op") not in OP_CLASS or not isinstance(pt.get("shape"), dict):
            raise UserError(f"{where}: op_power.points[{i}] needs an 'op' of {', '.join(OP_CLASS)} and a 'shape'")
        watts = _positive(pt.get("watts"), f"points[{i}].watts", where)
        seconds = _positive(pt.get("table_us"), f"points[{i}].table_us", where, "microseconds") * 1e-6
        try:
            u = float(utilisation(pt["op"], pt["shape"], seconds, gpu))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: op_power.points[{i}].shape {pt['shape']} is not a {pt['op']} shape") from None
        by_key.setdefault((str(pt.get("stack")), pt["op"]), {}).setdefault(u, []).append(watts)
    if not by_key:
        return None
    curves = {key: Curve(np.array(sorted(by_u)), np.array([np.mean(by_u[u]) for u in sorted(by_u)]))
              for key, by_u in by_key.items()}
    median = float(np.median([w for by_u in by_key.values() for ws in by_u.values() for w in ws]))
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


def times_and_energy(ops: list[Op], model: TimeModel, power: PowerModel | None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per op class: seconds (as simulator.timemodel.time_by_class) and joules of the GPU running them (none
    for the host's `launch`; {} without a power model), each the sum over its ops of count × time (× watts)."""
    times: dict[str, np.ndarray] = {}
    joules: dict[str, np.ndarray] = {}
    for op in ops:
        run_s = model.op_time_s(op.op_class, op.shape)
        t_s = np.asarray(op.count * run_s, dtype=float)
        times[op.op_class] = times[op.op_class] + t_s if op.op_class in times else t_s
        if power is not None and op.op_class != HOST_CLASS:
            e_j = t_s * power.watts(op, run_s)
            joules[op.op_class] = joules[op.op_class] + e_j if op.op_class in joules else e_j
    return times, joules


def phase_energy(times: dict[str, np.ndarray], joules: dict[str, np.ndarray], coef: dict[str, float],
                 wall_s: np.ndarray, idle_w: float) -> dict[str, np.ndarray]:
    """Joules of one GPU over a phase, per class (scaled by its coefficient as its time is) and "idle":
    idle_w × (wall_s − the GPU's busy time)."""
    out = {c: coef[OP_CLASS[c].coefficient] * e for c, e in joules.items()}
    busy = sum((coef[OP_CLASS[c].coefficient] * v for c, v in times.items() if c != HOST_CLASS), np.zeros(()))
    out["idle"] = idle_w * np.maximum(np.asarray(wall_s) - busy, 0.0)
    return out
