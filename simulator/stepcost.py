"""Seconds and energy of one continuous-batching iteration: prefill chunks of some sequences and one decode token
of others, run as one step of the engine, timed as `simulator.predict` times a phase.

An iteration on T tokens of R sequences is built from the op lists of simulator/ops.py, in parts that add up:
- the body (embedding and every layer without attention) on T tokens,
- the head (final norm, LM head, logits, sampling) on R rows, one a sequence,
- causal attention of each prefill chunk: a chunk of positions a+1..e costs the attention of a prompt of e
  tokens less that of a prompt of a tokens (the query-key pairs it adds); k whole prompts of one length in an
  iteration run as one attention of batch k,
- decode attention of the D decoding sequences, at their mean context.
Each part keeps its sums apart (PART columns): the GPU's burst seconds scaled by the fit, their unscaled sum, the
seconds sustained throttling adds once settled, the host's launches, and joules of the GPU's work (power model).
The iteration then settles as one phase: its GPU time is burst + ḡ(its whole burst time) · settled extra
(simulator.sustained), it takes the longer of GPU and host, plus the fit's fixed seconds of a prefill phase when
it holds a prefill chunk, else of a decode step. Decode iterations after one that held a prefill add the measured
post-prefill recovery over the time since it (`Recovery`), as `predict` adds it to a decode phase. So a static
batch — one iteration prefilling b whole prompts, then o − 1 decode steps — takes exactly predict's prefill and
decode times, and energy per GPU is predict's: Σ coef · joules of the kernels + idle power over the rest.

With pp pipeline stages (one micro-batch: each iteration passes every stage in turn) an iteration adds the
point-to-point sends of its activations between stages (simulator/network.py, modelled).

Each part is computed once over a whole range of its size (tokens, rows, context) and looked up afterwards, so
timing an iteration is a few array reads; ranges grow by doubling when a larger size comes. Prefill attention
(whose table lookup is the slow one) is computed exactly at every prompt length of the workload, and at the
multiples of CHUNK_GRID positions, between which a chunk boundary inside a prompt is interpolated.
"""
from __future__ import annotations

from bisect import bisect_right

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.fits import check_coefficients
from simulator.gpus import GPUSpec
from simulator.memory import check_tp
from simulator.network import p2p_s, stage_boundaries
from simulator.opclasses import ACT_BYTES, OP_CLASS
from simulator.ops import (
    HOST_MODES,
    body_ops,
    decode_attention_ops,
    head_ops,
    prefill_attention_ops,
    with_launches,
)
from simulator.power import HOST_CLASS, power_model
from simulator.sustained import mean_onset, onset_level
from simulator.timemodel import TimeModel, burst_and_settled, time_by_class

CHUNK_GRID = 64  # prompt positions between the points a chunk boundary inside a prompt is interpolated from
# columns of a part: GPU burst s (fit applied), unscaled GPU burst s, settled extra s (fit applied), host s,
# joules of the burst, joules of the settled extra (fit applied)
DEV, RAW, EXT, HOST, JB, JE = range(6)
PART = 6


def _grow(have: int, need: int) -> int:
    """Next size of a range that holds `need`: at least double the old, at least 64."""
    return max(need, 2 * have, 64)


class StepCost:
    """Iteration times and energy of one architecture on one GPU at tensor-parallel degree t (and pp pipeline
    stages), under a time model and fit. It keeps, for `serve`, the sums over the iterations run since `reset`
    (with a power model), per GPU of a stage: `busy_s` (kernels running) and `work_j` (their joules)."""

    def __init__(self, arch: ArchSpec, gpu: GPUSpec, t: int, model: TimeModel, coefficients: dict | None = None,
                 *, fused: bool | None = None, host: str = "graph", pp: int = 1, recovery: bool = True) -> None:
        if host not in HOST_MODES:
            raise UserError(f"host: '{host}'; use one of {', '.join(HOST_MODES)}")
        self.arch, self.gpu, self.t, self.model, self.host = arch, gpu, check_tp(arch, t), model, host
        self.pp = int(pp)
        self.coef = check_coefficients(coefficients or {})
        self.fused = getattr(model, "stack", "triton") != "torch" if fused is None else bool(fused)
        self.power = power_model(model)
        self.idle_w = self.power.idle_w if self.power is not None else 0.0
        gemm = model.throttles.get("gemm")
        self._recovery = model.recovery if recovery and gemm is not None else None
        if self._recovery is not None:  # past the last time the measured excess is positive, nothing more to add
            rising = np.flatnonzero(np.diff(self._recovery.integral) > 0)
            self._recovery_end = float(self._recovery.times_s[rising[-1] + 1]) if rising.size else 0.0
        self._gemm = gemm
        self._curves = [(th.times_s.tolist(), th.integral.tolist()) for th in model.throttles.values()]
        self._body, self._head = np.zeros((1, PART)), np.zeros((1, PART))  # index 0 is size 0 (nothing)
        self._prefill_attn: dict[tuple[int, int], np.ndarray] = {(1, 0): np.zeros(PART)}  # (batch, prompt) -> part
        self._grid_top = 0  # multiples of CHUNK_GRID computed up to here
        self._context_floor: int | None = None  # the first decode context of the shortest prompt (prepare)
        self._decode_attn: dict[int, np.ndarray] = {}  # decoding sequences -> part over context
        self._decode_steps: dict[int, tuple[np.ndarray, ...]] = {}  # the same, whole decode-only steps settled
        graph = with_launches([], "graph") if host == "graph" else []
        self._graph_launch_s = float(self.coef["launch"] * time_by_class(graph, model)["launch"]) if graph else 0.0
        self._boundaries = stage_boundaries(gpu, self.t, self.pp)  # (within a node, across nodes)
        self.reset()

    def reset(self) -> None:
        """Start the sums of a new run (a replica), its clocks rested."""
        self.busy_s = self.work_j = 0.0
        self._level, self._since, self._pending = 0.0, 0.0, None

    # -- the parts, over their ranges ---------------------------------------------------------------------
    def _part(self, ops) -> np.ndarray:
        """The PART columns of an op list (arrays broadcast over its sizes: shape (..., PART))."""
        if self.host == "eager":
            ops = with_launches(ops, "eager")
        joules: dict[str, np.ndarray] = {}

        def visit(op, run_s: np.ndarray) -> None:
            if self.power is not None and op.op_class != HOST_CLASS:
                joules[op.op_class] = joules.get(op.op_class, 0.0) + op.count * run_s * self.power.watts(op, run_s)

        burst, extra = burst_and_settled(ops, self.model, visit=visit)
        k = {c: self.coef[OP_CLASS[c].coefficient] for c in burst}
        gpu = [c for c in burst if c != HOST_CLASS]
        settled_j = [k[c] * joules[c] * np.where(burst[c] > 0, extra[c] / np.maximum(burst[c], 1e-300), 0.0)
                     for c in extra if c in joules]
        cols = [sum(k[c] * burst[c] for c in gpu), sum(burst[c] for c in gpu), sum(k[c] * e for c, e in extra.items()),
                self.coef["launch"] * burst.get(HOST_CLASS, 0.0), sum(k[c] * j for c, j in joules.items()),
                sum(settled_j)]
        return np.stack(np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in cols]), axis=-1)

    def _extend(self, part: np.ndarray, need: int, build) -> np.ndarray:
        have = part.shape[0] - 1
        if need <= have:
            return part
        sizes = np.arange(have + 1, _grow(have, need) + 1)
        return np.concatenate((part, np.broadcast_to(self._part(build(sizes)), (sizes.size, PART))))

    def _ensure(self, tokens: int, rows: int) -> None:
        a, t, f = self.arch, self.t, self.fused
        self._body = self._extend(self._body, tokens, lambda m: body_ops(a, m, t, fused=f))
        self._head = self._extend(self._head, rows, lambda r: head_ops(a, r, t, fused=f))

    def prepare(self, prompts: ArrayLike) -> None:
        """Get ready for a workload of these prompt lengths: their prefill attention in one pass, and decode
        attention from the shortest prompt's first decode context on (no lookups of contexts no request reaches)."""
        prompts = np.asarray(prompts, dtype=np.int64)
        self._prefill_at(1, prompts)
        floor = int(prompts.min()) + 1 if prompts.size else 1
        if self._context_floor is None or floor < self._context_floor:
            self._context_floor = floor
            self._decode_attn.clear()
            self._decode_steps.clear()

    def _prefill_at(self, batch: int, positions: ArrayLike) -> None:
        """Compute prefill attention of `batch` sequences at these prompt positions in one pass."""
        new = np.setdiff1d(np.asarray(positions, dtype=np.int64), [s for b, s in self._prefill_attn if b == batch])
        if new.size:
            part = np.broadcast_to(self._part(prefill_attention_ops(self.arch, batch, new, self.t)), (new.size, PART))
            self._prefill_attn.update(((batch, s), row) for s, row in zip(new.tolist(), part))

    def _attn_at(self, x: int) -> np.ndarray:
        """The part of causal attention over the first x prompt positions: exact where computed (every prepared
        prompt length), else interpolated between the multiples of CHUNK_GRID around x."""
        table = self._prefill_attn
        if (1, x) in table:
            return table[(1, x)]
        lo = x // CHUNK_GRID * CHUNK_GRID
        if lo + CHUNK_GRID > self._grid_top:  # the grid up to twice as far as before, in one pass
            self._grid_top = max(2 * self._grid_top, lo + CHUNK_GRID)
            self._prefill_at(1, np.arange(CHUNK_GRID, self._grid_top + 1, CHUNK_GRID))
        w = (x - lo) / CHUNK_GRID
        return table[(1, lo)] + w * (table[(1, lo + CHUNK_GRID)] - table[(1, lo)])

    def _attn_chunks(self, chunks) -> np.ndarray:
        """The part of the prefill attention of chunks (from, to): k whole prompts of one length as one batch."""
        out = np.zeros(PART)
        whole: dict[int, int] = {}
        for a, b in chunks:
            if a == 0:
                whole[b] = whole.get(b, 0) + 1
            else:
                out = out + self._attn_at(b) - self._attn_at(a)
        for s, k in whole.items():
            if k == 1:
                out = out + self._attn_at(s)
            else:
                if (k, s) not in self._prefill_attn:
                    self._prefill_at(k, [s])
                out = out + self._prefill_attn[(k, s)]
        return out

    def _decode(self, n: int, context: int) -> np.ndarray:
        part = self._decode_attn.get(n, np.zeros((1, PART)))
        floor = self._context_floor or 1  # below it (never reached): the floor's time
        part = self._extend(part, context + 1,
                            lambda c: decode_attention_ops(self.arch, n, np.maximum(c, floor), self.t))
        self._decode_attn[n] = part
        return part

    # -- iterations -------------------------------------------------------------------------------------
    def _p2p(self, tokens) -> np.ndarray:
        """Seconds of the sends of `tokens` tokens' activations between the pp stages (each GPU its 1/t)."""
        nbytes = ACT_BYTES * self.arch.hidden / self.t * np.asarray(tokens, dtype=float)
        within, across = self._boundaries
        return within * p2p_s(self.gpu, nbytes, False) + across * p2p_s(self.gpu, nbytes, True)

    def _settle(self, v: np.ndarray, fixed: float, tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seconds, GPU busy seconds, joules of the kernels, per GPU) of iterations of summed parts v (..., PART)."""
        if not self._curves:
            onset = 0.0
        else:
            onset = self._onset1(float(v[RAW])) if v.ndim == 1 else mean_onset(self.model.throttles, v[..., RAW])
        busy = v[..., DEV] + onset * v[..., EXT]
        time = np.maximum(busy, v[..., HOST] + self._graph_launch_s) + fixed
        if self.pp > 1:
            time = time + self._p2p(tokens)
        return time, busy, v[..., JB] + onset * v[..., JE]

    def _onset1(self, duration_s: float) -> float:
        """simulator.sustained.mean_onset of one duration, on Python numbers (the simulator's inner loop)."""
        t, total = max(duration_s, 1e-12), 0.0
        for times, integral in self._curves:
            if t >= times[-1]:
                total += (integral[-1] + t - times[-1]) / t
                continue
            i = bisect_right(times, t) - 1
            total += (integral[i] + (t - times[i]) / (times[i + 1] - times[i]) * (integral[i + 1] - integral[i])) / t
        return total / len(self._curves)

    def _recovered(self, ends: np.ndarray) -> np.ndarray:
        """Seconds the post-prefill recovery adds to consecutive decode iterations ending `ends` unslowed seconds
        after the current ones began (Recovery.extra_s over each iteration's span since the last prefill)."""
        rec = self._recovery
        spans = np.interp(self._since + np.concatenate(([0.0], ends)), rec.times_s, rec.integral)
        return self._level / rec.onset_at_calibration * np.diff(spans)

    def one(self, n_decode: int, context_sum: int, chunks: list[tuple[int, int]]) -> float:
        """Seconds of one iteration that decodes n_decode sequences whose contexts sum to context_sum and prefills
        the chunks (from, to) of prompt positions; added to the run's sums."""
        tokens = n_decode + sum(e - s for s, e in chunks)
        rows = n_decode + len(chunks)
        if tokens >= self._body.shape[0] or rows >= self._head.shape[0]:
            self._ensure(tokens, rows)
        v = self._body[tokens] + self._head[rows] + self._attn_chunks(chunks)
        if n_decode:
            mean = context_sum / n_decode
            lo = int(mean)
            c = self._decode_attn.get(n_decode)
            if c is None or lo + 1 >= c.shape[0]:
                c = self._decode(n_decode, lo + 1)
            v = v + c[lo] + (mean - lo) * (c[lo + 1] - c[lo])
        fixed = self.coef["prefill_fixed_s"] if chunks else self.coef["decode_fixed_s"]
        time, busy, work = self._settle(v, fixed, tokens)
        time = float(time)
        slow = 1.0
        if chunks:  # the clocks this iteration lowered come back during the decode iterations after it
            self._level = float(onset_level(self._gemm, time)) if self._recovery is not None else 0.0
            self._since = 0.0
        elif self._level:
            slow += float(self._recovered(np.array([time]))[0]) / time
            self._passed(time)
        if self.power is not None:
            self.busy_s += float(busy) * slow
            self.work_j += float(work) * slow
        return time * slow

    def _passed(self, seconds: float) -> None:
        """Unslowed decode seconds since the last prefill iteration went by; past the measured recovery curve the
        clocks are back (nothing more to add)."""
        self._since += seconds
        if self._since > self._recovery_end:
            self._level = 0.0

    def decode_run(self, n: int, context_sum: int, steps: int) -> np.ndarray:
        """Seconds of `steps` consecutive decode-only iterations of the same n sequences, the first at contexts
        summing to context_sum (each step adds one token to every context); `advance` says how many ran."""
        mean = context_sum / n
        lo = int(mean)
        frac = mean - lo
        cached = self._decode_steps.get(n)
        if cached is None or lo + steps + 1 > cached[0].size:  # whole steps (body, head, attention) at contexts 0..
            self._ensure(n, n)
            v = self._decode(n, lo + steps + 1) + self._body[n] + self._head[n]
            time, busy, work = self._settle(v, self.coef["decode_fixed_s"], n)
            cached = (time, busy, work, *(np.concatenate(([0.0], np.cumsum(x))) for x in (busy, work)))
            self._decode_steps[n] = cached
        time = cached[0][lo:lo + steps]
        if frac:
            time = time + frac * (cached[0][lo + 1:lo + steps + 1] - time)
        slow = None
        if self._level:
            ends = np.cumsum(time)
            slow = 1.0 + self._recovered(ends) / time
            time = time * slow
        self._pending = (n, lo, frac, slow, ends if slow is not None else None)
        return time

    def advance(self, steps: int) -> None:
        """The first `steps` iterations of the last decode_run ran: add them to the run's sums."""
        n, lo, frac, slow, ends = self._pending
        self._pending = None
        _, busy, work, cum_busy, cum_work = self._decode_steps[n]
        if slow is None:  # sums of the interpolated steps from the running sums
            if self.power is not None:
                self.busy_s += (1 - frac) * (cum_busy[lo + steps] - cum_busy[lo]) + frac * (
                    cum_busy[lo + steps + 1] - cum_busy[lo + 1])
                self.work_j += (1 - frac) * (cum_work[lo + steps] - cum_work[lo]) + frac * (
                    cum_work[lo + steps + 1] - cum_work[lo + 1])
            return
        self._passed(float(ends[steps - 1]))
        if self.power is not None:
            for name, x in (("busy_s", busy), ("work_j", work)):
                step_x = x[lo:lo + steps] + frac * (x[lo + 1:lo + steps + 1] - x[lo:lo + steps])
                setattr(self, name, getattr(self, name) + float(step_x @ slow[:steps]))
