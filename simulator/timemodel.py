"""Time of one op from its class and shape, behind one interface: the datasheet roofline lives here;
measured or derived throughput tables (simulator/tables.py) plug into the same interface.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np

from simulator.gpus import GPUSpec
from simulator.hostmodel import host_mode_seconds, is_host_mode
from simulator.opclasses import gpu_roofline_s
from simulator.ops import Op

# Assumed fixed costs of the roofline (modelling choices, NOT measurements; a fit's `launch` and
# `allreduce` coefficients rescale them, and measured tables replace them):
LAUNCH_S = {"eager": 5e-6, "graph_launch": 5e-6}  # host: one eager kernel launch; one CUDA-graph replay
ALLREDUCE_LATENCY_S = 10e-6  # one NCCL all-reduce within a node, small message


class TimeModel:
    """Interface: seconds of one run of an op. `source` says where the numbers come from
    ("roofline", "measured <file>", "derived <file>"); `warnings` fills up as the model is used, and inside
    `noting()` each warning also records which elements of the op's arrays caused it."""

    source: str = "unknown"

    def __init__(self) -> None:
        self.warnings: set[str] = set()
        self.throttles: dict = {}  # compute class -> simulator.sustained.ClassThrottle (measured tables only)
        self.recovery = None  # simulator.sustained.Recovery: decode right after a prefill (measured tables only)
        self._noted: list[dict[str, np.ndarray]] = []  # open `noting` records, innermost last

    def warn(self, text: str, where: np.ndarray | bool = True) -> None:
        """Add a warning; `where` (bool, broadcast over the elements of the current op_time_s call) says which
        elements caused it."""
        self.warnings.add(text)
        if self._noted:
            record = self._noted[-1]
            record[text] = np.logical_or(record.get(text, False), where)

    @contextmanager
    def noting(self) -> Iterator[dict[str, np.ndarray]]:
        """A record, filled while open: warning -> which elements of the op_time_s calls made then caused it."""
        record: dict[str, np.ndarray] = {}
        self._noted.append(record)
        try:
            yield record
        finally:
            self._noted.pop()

    def op_time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Seconds of one run of an `op_class` op of `shape` (arrays broadcast)."""
        raise NotImplementedError

    def settled_extra_s(self, op_class: str, throttled: str, shape: dict, flops, burst_s: np.ndarray) -> np.ndarray:
        """Seconds one run of the op adds once sustained throttling has settled (simulator.sustained.extra_s),
        by the throttle of class `throttled` (the op's, or the class it is derived from)."""
        from simulator.sustained import extra_s

        return extra_s(self.throttles, throttled, flops, burst_s)


class RooflineModel(TimeModel):
    """max(FLOPs / dense peak, bytes / HBM bandwidth) per op; ring all-reduce 2(t−1)/t · bytes / link bw
    + latency; a fixed cost per kernel launch. Datasheet peaks: an optimistic bound, not a measurement."""

    source = "roofline"

    def __init__(self, gpu: GPUSpec) -> None:
        super().__init__()
        self.gpu = gpu

    def op_time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Roofline seconds of one run (see the class docstring)."""
        self.warn(f"no throughput table for {self.gpu.name}: roofline from datasheet peaks, "
                  "assumed launch and all-reduce latencies")
        if op_class in ("launch", "start"):
            if is_host_mode(shape["mode"]):
                return np.asarray(host_mode_seconds(None, shape["mode"]))  # raises: measured only
            return np.asarray(LAUNCH_S[shape["mode"]])
        time_s = gpu_roofline_s(op_class, shape, self.gpu)
        if op_class == "allreduce":  # plus one call's fixed cost
            return time_s + ALLREDUCE_LATENCY_S * (np.asarray(shape["t"]) > 1)
        return time_s


def device_and_host(by_class: dict[str, np.ndarray], coef: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The GPU's seconds (every class but `launch`, each scaled by its coefficient) and the host's (`launch`: the
    launches the GPU waits for) of a phase, from its per-class times."""
    from simulator.opclasses import OP_CLASS

    device = sum(coef[OP_CLASS[c].coefficient] * v for c, v in by_class.items() if c != "launch")
    return np.asarray(device, dtype=float), np.asarray(coef["launch"] * by_class.get("launch", 0.0), dtype=float)


def phase_time(by_class: dict[str, np.ndarray], coef: dict[str, float],
               exposed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Seconds of a phase from its per-class times: the GPU's work and the host's overlap, so the longer one
    counts (device_and_host); with `exposed` (X, Y of simulator.overlap, an eager host's queue) the longer of the
    GPU's work plus the host's seconds it waits for (X, scaled as the host's) and the host's work plus the GPU's
    seconds after the host's last issue (Y, scaled as the GPU's work is on average)."""
    device, host = device_and_host(by_class, coef)
    if exposed is None:
        return np.maximum(device, host)
    unit = busy_s(by_class)
    scale = np.divide(device, unit, out=np.ones(np.broadcast(device, unit).shape), where=unit > 0)
    return np.maximum(device + coef["launch"] * exposed[0], host + scale * exposed[1])


def op_burst_s(op: Op, model: TimeModel) -> np.ndarray:
    """Seconds of one run of `op` (burst): the model's, and for an all-reduce over more GPUs than a node holds, the
    model's over one node plus the ring over nodes (simulator.network, modelled, not measured)."""
    shape = op.shape
    if op.op_class == "allreduce" and np.max(shape["t"]) > model.gpu.gpus_per_node:
        from simulator.network import across_nodes_allreduce_s, note

        g = model.gpu.gpus_per_node
        model.warn(note(model.gpu))
        return (np.asarray(model.op_time_s("allreduce", {**shape, "t": g}), dtype=float)
                + across_nodes_allreduce_s(model.gpu, shape["bytes"], int(np.max(shape["t"]))))
    return np.asarray(model.op_time_s(op.op_class, shape), dtype=float)


def burst_and_settled(ops: list[Op], model: TimeModel, warned: dict[str, np.ndarray] | None = None,
                      visit: Callable[[Op, np.ndarray], None] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per op class: burst seconds of a phase (Σ over its ops of count × time per run, arrays broadcast) and the
    seconds sustained throttling adds once fully settled (simulator.sustained; classes the table measured it for).
    `warned` and `visit` as in time_by_class."""
    from simulator.opclasses import OP_CLASS

    out: dict[str, np.ndarray] = {}
    extra: dict[str, np.ndarray] = {}
    for op in ops:
        with model.noting() if warned is not None else nullcontext({}) as record:
            burst = op_burst_s(op, model)
        for text, where in record.items():
            warned[text] = np.logical_or(warned.get(text, False), where)
        if visit is not None:
            visit(op, burst)
        t_s = op.count * burst
        out[op.op_class] = out[op.op_class] + t_s if op.op_class in out else t_s
        # a low-precision class throttles as the class it is derived from (its own sustained run is not measured)
        throttled = op.op_class if op.op_class in model.throttles else OP_CLASS[op.op_class].derived_from
        if throttled in model.throttles:
            e = op.count * model.settled_extra_s(op.op_class, throttled, op.shape, op.flops, burst)
            extra[op.op_class] = extra[op.op_class] + e if op.op_class in extra else e
    return out, extra


def busy_s(by_class: dict[str, np.ndarray]) -> np.ndarray:
    """The GPU's unscaled seconds of a phase: every class but the host's `launch`."""
    return sum((v for c, v in by_class.items() if c != "launch"), np.zeros(()))


def time_by_class(ops: list[Op], model: TimeModel, warned: dict[str, np.ndarray] | None = None,
                  visit: Callable[[Op, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Seconds of a phase per op class: Σ over its ops of count × time per run (arrays broadcast), compute
    classes slowed as sustained work settles (simulator.sustained), where the table measured it: the phase's ops
    at the mean onset over its burst time. `warned`, if given, gets per warning which elements of the phase's
    arrays caused it (bool, broadcastable to them); `visit` is called with each op and its time per run
    (simulator.power uses it)."""
    from simulator.sustained import mean_onset

    out, extra = burst_and_settled(ops, model, warned, visit)
    if extra:
        onset = mean_onset(model.throttles, busy_s(out))
        for c, e in extra.items():
            out[c] = out[c] + onset * e
    return out


def describe(model: TimeModel) -> str:
    """Where a model's numbers come from, for every output: measured / derived table or roofline."""
    return str(getattr(model, "source", None) or type(model).__name__)
