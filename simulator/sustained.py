"""Sustained compute slows down: the measured clock-throttling model of a table's `sustained` section.

A table time is a burst time (short repetitions). Run back to back, a compute-bound kernel settles slower
(the board lowers the SM clock within tens of milliseconds; calibration/sustained.py measures the curve of
time per call against running time). Per (stack, compute class) the section gives the burst and settled
times of one compute-bound op and the curve between them. Here:

- the settled slowdown of an op is 1 + (R − 1) · u, where R = settled / burst of its class's measured op and
  u ≤ 1 is how close the op comes to that op's burst FLOP rate (memory-bound ops, u ≈ 0, do not slow down);
- a phase whose burst GPU time is T runs its ops at the mean onset ḡ(T) = (1/T) ∫₀ᵀ g of that slowdown, where
  g(τ) ∈ [0, 1] is the measured curve normalised between burst (0) and settled (1), non-decreasing;
- a decode phase right after a prefill adds the measured excess of its first steps (`Recovery`: the clocks the
  prefill lowered come back), scaled by how far the prefill's onset g(T_prefill) had gone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.opclasses import op_cost


@dataclass(frozen=True)
class ClassThrottle:
    """One compute class of one stack: settled/burst ratio, the burst FLOP rate it is relative to, and the
    onset curve's cumulative integral ∫₀^τ g at the curve's times."""

    ratio: float
    burst_flops_s: float
    times_s: np.ndarray
    integral: np.ndarray
    levels: np.ndarray  # g at times_s

    def mean_onset(self, duration_s: np.ndarray) -> np.ndarray:
        """ḡ(T): the mean of the onset over the first T seconds (g = 1 past the curve's end)."""
        t = np.maximum(np.asarray(duration_s, dtype=float), 1e-12)
        inside = np.interp(t, self.times_s, self.integral)
        past = self.integral[-1] + np.maximum(t - self.times_s[-1], 0.0)
        return np.where(t <= self.times_s[-1], inside, past) / t


def class_throttle(op: dict) -> ClassThrottle:
    """The throttle of one measured op of the section (its curve normalised between burst and settled)."""
    burst, settled = float(op["burst_us"]), float(op["settled_us"])
    times = np.array([0.0] + [c[0] for c in op["curve"]])
    us = np.array([burst] + [c[1] for c in op["curve"]])
    g = np.clip((us - burst) / (settled - burst), 0.0, 1.0) if settled > burst else np.zeros_like(us)
    g = np.maximum.accumulate(g)
    integral = np.concatenate(([0.0], np.cumsum(np.diff(times) * (g[1:] + g[:-1]) / 2)))
    flops = float(op_cost(op["op"], op["shape"])[0])
    return ClassThrottle(max(settled / burst, 1.0), flops / (burst * 1e-6), times, integral, g)


def throttles(table: dict, stack: str) -> dict[str, ClassThrottle]:
    """Per compute class, the throttle of `stack` measured in the table's `sustained` section ({} without it)."""
    section = table.get("sustained") or {}
    return {op["op"]: class_throttle(op) for op in section.get("ops", []) if op["stack"] == stack}


def extra_s(model_throttles: dict[str, ClassThrottle], op_class: str, flops, burst_s: np.ndarray) -> np.ndarray:
    """Seconds an op of `flops` and `burst_s` adds once fully settled: burst · (R − 1) · u, u its FLOP rate over
    the measured op's (at most 1); 0 for classes never throttled."""
    th = model_throttles.get(op_class)
    if th is None:
        return np.zeros_like(np.asarray(burst_s, dtype=float))
    u = np.minimum(np.asarray(flops, dtype=float) / np.maximum(burst_s, 1e-12) / th.burst_flops_s, 1.0)
    return burst_s * (th.ratio - 1.0) * u


def mean_onset(model_throttles: dict[str, ClassThrottle], duration_s: np.ndarray) -> np.ndarray:
    """ḡ(T) of a phase: the onset curve of the classes' measured ops, averaged (they share the board's clock)."""
    curves = [th.mean_onset(duration_s) for th in model_throttles.values()]
    return np.mean(curves, axis=0) if curves else np.zeros_like(np.asarray(duration_s, dtype=float))


@dataclass(frozen=True)
class Recovery:
    """Decode steps right after a prefill: the measured excess of their time over the same steps after idling,
    against time since the prefill ended (median over the measured runs), its integral, and the onset level the
    runs' prefills had reached (their clocks' state when decode began)."""

    times_s: np.ndarray
    integral: np.ndarray  # ∫₀^τ excess at times_s
    onset_at_calibration: float

    def extra_s(self, onset: np.ndarray, decode_s: np.ndarray) -> np.ndarray:
        """Seconds a decode phase of `decode_s` adds when it starts at `onset` (0..1) of the settled slowdown."""
        area = np.interp(np.asarray(decode_s, dtype=float), self.times_s, self.integral)  # flat past the curve
        return np.asarray(onset, dtype=float) / self.onset_at_calibration * area


def onset_level(th: ClassThrottle, duration_s: np.ndarray) -> np.ndarray:
    """g(T): how far the slowdown has settled after T seconds of sustained compute (0..1)."""
    return np.interp(np.asarray(duration_s, dtype=float), th.times_s, th.levels, right=1.0)


def recovery(table: dict, stack: str) -> Recovery | None:
    """The table's measured post-prefill recovery for `stack` (the GEMM throttle's onset reached by each run's
    prefill), or None without it."""
    section = (table.get("sustained") or {}).get("recovery") or []
    gemm = throttles(table, stack).get("gemm")
    if not section or gemm is None:
        return None
    grid = np.linspace(0.0, max(r["curve"][-1][0] for r in section), 400)
    excess = np.median([np.interp(grid, [c[0] for c in r["curve"]], [max(c[1], 0.0) for c in r["curve"]], right=0.0)
                        for r in section], axis=0)
    integral = np.concatenate(([0.0], np.cumsum(np.diff(grid) * (excess[1:] + excess[:-1]) / 2)))
    onset = float(np.mean([onset_level(gemm, r["prefill_s"]) for r in section]))
    return Recovery(grid, integral, max(onset, 1e-6))


def recovery_factor(model, prefill_s: np.ndarray, decode_s: np.ndarray) -> np.ndarray:
    """Decode time multiplier of requests whose prefill took `prefill_s` and decode `decode_s` (1 without the
    model's measured recovery): the clocks a long prefill lowered come back during the first decode steps."""
    rec, gemm = getattr(model, "recovery", None), getattr(model, "throttles", {}).get("gemm")
    decode_s = np.asarray(decode_s, dtype=float)
    if rec is None or gemm is None:
        return np.ones_like(decode_s)
    extra = rec.extra_s(onset_level(gemm, prefill_s), decode_s)
    return 1.0 + np.divide(extra, decode_s, out=np.zeros_like(decode_s), where=decode_s > 0)
