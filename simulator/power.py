"""Board power per op class from a table's measured `op_power` section (calibration/op_power.py), and the
energy of a phase from its ops.

Model, per GPU: an op of class c on stack s draws P_s,c(x) watts while it runs, where
x = log10(max(FLOPs, 1) / max(bytes, 1)) of one run: its arithmetic intensity on a log scale (for the FLOP-free
element-wise classes, minus the log of its size), the key calibration.op_power picks its points by. P is
piecewise linear in x through the measured points of (s, c) (points at the same x averaged) and constant beyond
the first and last. While the GPU runs no kernel (the host's part of a phase, fixed costs) the board draws
`idle_w`. So a phase costs Σ_ops count · t_op · P_op + idle_w · (wall time − GPU busy time), each class's time
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
from simulator.opclasses import OP_CLASS, op_cost
from simulator.ops import Op
from simulator.timemodel import TimeModel

SOURCE = "op_power (measured per op class)"
HOST_CLASS = "launch"  # the host's work: the GPU runs no kernel for it
LAST_RESORTS = ("elementwise", "decode_attn")  # memory-bound classes a class without points is powered as
STACK_ORDER = ("triton", "torch")  # the measured stacks; the `best` stack looks in this order


def log_intensity(flops, nbytes) -> np.ndarray:
    """x = log10(max(FLOPs, 1) / max(bytes, 1)) of one run (arrays broadcast)."""
    return np.log10(np.maximum(np.asarray(flops, dtype=float), 1.0) / np.maximum(np.asarray(nbytes, dtype=float), 1.0))


@dataclass(frozen=True)
class Curve:
    """Watts of one (stack, op class) against log intensity: points sorted by x, distinct x."""

    x: np.ndarray
    watts: np.ndarray

    def __call__(self, x) -> np.ndarray:
        """Piecewise-linear watts at x, constant beyond the end points."""
        return np.interp(x, self.x, self.watts)


@dataclass(frozen=True)
class PowerModel:
    """Measured power curves per (stack, op class) and the idle board power, for one stack's ops."""

    stack: str
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

    def watts(self, op: Op) -> np.ndarray:
        """Board watts while `op` runs (arrays broadcast over its shape)."""
        key = self.curve_key(op.op_class)
        return self.curves[key](log_intensity(op.flops, op.bytes)) if key else np.asarray(self.median_w)


def _positive(value, field: str, where: str) -> float:
    """A finite number > 0, or a UserError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise UserError(f"{where}: op_power.{field} must be a number of watts > 0, got {value!r}; re-measure it "
                        "with 'python -m calibration.op_power' and --merge it")
    return float(value)


def from_section(section: dict, stack: str, where: str = "table") -> PowerModel | None:
    """The power model of `stack` from a table's `op_power` section (schema: calibration/op_power.py); None when
    it has no points."""
    if not isinstance(section, dict) or not isinstance(section.get("points"), list):
        raise UserError(f"{where}: op_power has no 'points' list; re-run 'python -m calibration.op_power --merge'")
    idle = _positive(section.get("idle_w"), "idle_w", where)
    xs: dict[tuple[str, str], dict[float, list[float]]] = {}
    for i, pt in enumerate(section["points"]):
        if not isinstance(pt, dict) or pt.get("op") not in OP_CLASS or not isinstance(pt.get("shape"), dict):
            raise UserError(f"{where}: op_power.points[{i}] needs an 'op' of {', '.join(OP_CLASS)} and a 'shape'")
        watts = _positive(pt.get("watts"), f"points[{i}].watts", where)
        try:
            x = float(log_intensity(*op_cost(pt["op"], pt["shape"])))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: op_power.points[{i}].shape {pt['shape']} is not a {pt['op']} shape") from None
        xs.setdefault((str(pt.get("stack")), pt["op"]), {}).setdefault(x, []).append(watts)
    if not xs:
        return None
    curves = {key: Curve(np.array(sorted(by_x)), np.array([np.mean(by_x[x]) for x in sorted(by_x)]))
              for key, by_x in xs.items()}
    median = float(np.median([w for by_x in xs.values() for ws in by_x.values() for w in ws]))
    return PowerModel(stack, idle, curves, median)


def power_model(model: TimeModel) -> PowerModel | None:
    """The power model of a measured table's `op_power` section, None for a roofline, a derived table (its
    power was measured on another GPU) or a table without the section."""
    tables = [getattr(m, "table", None) for m in getattr(model, "stacks", [model])]
    table = tables[0]
    if not isinstance(table, dict) or table.get("derived") or getattr(model, "derived_from", None):
        return None
    if table.get("op_power") is None:
        return None
    return from_section(table["op_power"], getattr(model, "stack", STACK_ORDER[0]), describe_table(model))


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
        t_s = np.asarray(op.count * model.op_time_s(op.op_class, op.shape), dtype=float)
        times[op.op_class] = times[op.op_class] + t_s if op.op_class in times else t_s
        if power is not None and op.op_class != HOST_CLASS:
            e_j = t_s * power.watts(op)
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
