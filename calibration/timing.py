"""The one timing helper of idealrt: every microbenchmark (sweep, all-reduce, accuracy check) goes through `measure`.

Policy, in order:
- Warm-up: one call (it compiles the Triton kernel or plans cuBLAS; its wall time is reported apart as
  `compile_s`, never as GPU time), then WARM_CALLS calls on the next input sets (they estimate the time of
  a call, which sets the batch length), then two more calls on a side stream before the CUDA graph is
  captured. (A pass over all `rotate` sets, as before, cost up to 64 eager launches a point for nothing the
  graph replays do not do again: the inputs are fresh from one random fill, already in memory.)
- Cache: inputs are rotated over `rotate` freshly drawn random copies, chosen by the op builder so that the
  working set exceeds twice the L2 cache (ops too small for that within 64 copies are latency-bound and
  measured as such). No point measures data left in L2 by the previous call of the same input.
- Clock: CUDA events on the current stream around a batch of `inner` back-to-back calls, replayed from a CUDA
  graph when the op can be captured (the idealized engine's decode regime: launch gaps of ~1 us, no Python),
  else launched eagerly. `inner` is picked so a batch lasts about `batch_s`; the time of one call is the
  batch time / `inner`. GPU clocks are left as found (no locking, no boost changes).
- Statistic: the median over `reps` batches, with min, p10, p90 and standard deviation kept as the spread.
  A point whose (p90 - p10) / median exceeds `max_spread` is measured once more with twice the repeats;
  if still too wide it is kept and marked `flagged`.
- Several processes (all-reduce over NCCL) pass `agree`, a function returning the maximum of a float over
  ranks, so every rank makes the same choice of `inner` and of retrying (else the collectives would hang).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

BATCH_S = 0.3e-3  # target length of one timed batch of calls (graph replays: launch gaps are ~0.2% of it)
MAX_INNER = 64
WARM_CALLS = 2  # each costs a whole call: for the longest points (~3 ms) the warm-up was a third of their time
REPS = 7  # timed batches per point: p10..p90 of the H100 table's points spans ~1% of the median at 15, so 7
# suffice (an odd count: the median is a measured batch); the GPU seconds go to more grid nodes instead
# (calibration/grids.py)


@dataclass(frozen=True)
class Timing:
    """Per-call time statistics of one point, in microseconds."""

    median_us: float
    min_us: float
    p10_us: float
    p90_us: float
    std_us: float
    reps: int
    inner: int
    mode: str  # "graph" (CUDA-graph replay) or "eager"
    flagged: bool
    compile_s: float  # wall time of the first (compiling) call, not GPU time

    def row(self) -> dict:
        """The fields a table point stores."""
        return asdict(self)


def _stats(per_call_us: list[float]) -> tuple[float, float, float, float, float]:
    a = np.asarray(per_call_us, dtype=float)
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    return float(med), float(a.min()), float(p10), float(p90), float(a.std())


def batch_times_us(run_batch: Callable[[], None], reps: int, inner: int = 1) -> list[float]:
    """Time `reps` batches of `inner` calls with CUDA events; returns per-call microseconds."""
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        run_batch()
        e.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1e3 / inner for s, e in zip(starts, ends)]


def _graph_batch(call: Callable[[int], object], inner: int) -> Callable[[], None] | None:
    """Capture `inner` calls, cycling the input sets, in a CUDA graph; None if the op cannot be captured."""
    import torch

    try:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # a capture-safe side stream, warmed as torch recommends
            for i in range(2):
                call(i)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            for i in range(inner):
                call(i)
        graph.replay()
        torch.cuda.synchronize()
        return graph.replay
    except Exception:  # noqa: BLE001 — any capture failure means: time it eagerly
        torch.cuda.synchronize()
        return None


def measure(call: Callable[[int], object], *, rotate: int = 1, reps: int = REPS, use_graph: bool = True,
            max_spread: float = 0.15, batch_s: float = BATCH_S,
            agree: Callable[[float], float] | None = None) -> Timing:
    """Time `call(i)` (runs the op on input set i % rotate) by the policy in this module's docstring."""
    import torch

    agree = agree or (lambda x: x)
    t0 = time.perf_counter()
    call(0)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    est_us = batch_times_us(lambda: [call(i) for i in range(1, WARM_CALLS + 1)], 1, WARM_CALLS)[0]
    est_us = agree(est_us)
    inner = int(min(MAX_INNER, max(1, math.ceil(batch_s * 1e6 / max(est_us, 1e-3)))))
    inner = max(inner, min(rotate, MAX_INNER))  # each batch visits every input set when it can

    def cycled() -> None:
        for i in range(inner):
            call(i)

    batch = _graph_batch(call, inner) if use_graph else None
    mode = "graph" if batch is not None else "eager"
    batch = batch or cycled
    flagged = False
    for attempt in range(2):
        n = reps * (attempt + 1)
        per_call = batch_times_us(batch, n, inner)
        med, mn, p10, p90, std = _stats(per_call)
        spread = agree((p90 - p10) / med if med > 0 else math.inf)
        flagged = not spread <= max_spread
        if not flagged:
            break
    return Timing(median_us=med, min_us=mn, p10_us=p10, p90_us=p90, std_us=std, reps=n, inner=inner,
                  mode=mode, flagged=flagged, compile_s=compile_s)


def l2_bytes(default: int = 50 * 2**20) -> int:
    """L2 cache size of the current CUDA device (bytes)."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return int(getattr(props, "L2_cache_size", default) or default)


def rotation_count(op_bytes: float, l2: int, max_copies: int = 64, max_total_bytes: float = 4 * 2**30) -> int:
    """How many input copies make the working set exceed 2 x L2, within `max_copies` and a memory cap."""
    if op_bytes <= 0:
        return 1
    want = math.ceil(2 * l2 / op_bytes) + 1
    cap = max(1, int(max_total_bytes // op_bytes))
    return int(max(1, min(want, max_copies, cap)))
