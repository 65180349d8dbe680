"""Seconds of one continuous-batching iteration: prefill chunks of some sequences and one decode token of
others, run as one step of the engine.

An iteration on T tokens of R sequences is timed from the op lists of simulator/ops.py, in parts that add up:
- the body (embedding and every layer without attention) on T tokens,
- the head (final norm, LM head, logits, sampling) on R rows, one a sequence,
- causal attention of each prefill chunk: a chunk of positions a+1..e costs the attention of a prompt of e
  tokens less that of a prompt of a tokens (the query-key pairs it adds),
- decode attention of the D decoding sequences, at their mean context.
Device and host (launch) seconds add up per part; the iteration takes the longer of the two, plus the fit's
fixed seconds of a prefill phase when it holds a prefill chunk, else of a decode step. A lone whole prompt and
a lone decode step are then exactly the prefill and decode step of `simulator.predict`.

Each part is computed once over a whole range of its size (tokens, rows, context) and looked up afterwards, so
timing an iteration is a few array reads; ranges grow by doubling when a larger size comes. Prefill attention
(whose table lookup is the slow one) is computed exactly at every prompt length of the workload, and at the
multiples of CHUNK_GRID positions, between which a chunk boundary inside a prompt is interpolated.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.fits import check_coefficients
from simulator.gpus import GPUSpec
from simulator.memory import check_tp
from simulator.ops import (
    HOST_MODES,
    body_ops,
    decode_attention_ops,
    head_ops,
    prefill_attention_ops,
    with_launches,
)
from simulator.timemodel import TimeModel, device_and_host, time_by_class

_NONE = np.zeros(0)
CHUNK_GRID = 64  # prompt positions between the points a chunk boundary inside a prompt is interpolated from


def _grow(have: int, need: int) -> int:
    """Next size of a range that holds `need`: at least double the old, at least 64."""
    return max(need, 2 * have, 64)


class StepCost:
    """Iteration times of one architecture on one GPU at tensor-parallel degree t, under a time model and fit."""

    def __init__(self, arch: ArchSpec, gpu: GPUSpec, t: int, model: TimeModel, coefficients: dict | None = None,
                 *, fused: bool | None = None, host: str = "graph") -> None:
        if host not in HOST_MODES:
            raise UserError(f"host: '{host}'; use one of {', '.join(HOST_MODES)}")
        self.arch, self.gpu, self.t, self.model, self.host = arch, gpu, check_tp(arch, t), model, host
        self.coef = check_coefficients(coefficients or {})
        self.fused = getattr(model, "stack", "triton") != "torch" if fused is None else bool(fused)
        # each part: (device s, host s) over its range; index 0 is size 0 (nothing)
        self._body = (np.zeros(1), np.zeros(1))
        self._head = (np.zeros(1), np.zeros(1))
        self._prefill_attn: dict[int, tuple[float, float]] = {0: (0.0, 0.0)}  # prompt tokens -> (device, host)
        self._grid_top = 0  # multiples of CHUNK_GRID computed up to here
        self._context_floor: int | None = None  # the first decode context of the shortest prompt (prepare)
        self._decode_attn: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # decoding sequences -> over context
        self._decode_steps: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the same, whole decode-only steps
        graph = with_launches([], "graph") if host == "graph" else []
        self._graph_launch_s = float(device_and_host(time_by_class(graph, model), self.coef)[1]) if graph else 0.0

    # -- the parts, over their ranges ---------------------------------------------------------------------
    def _part(self, ops) -> tuple[np.ndarray, np.ndarray]:
        """(device s, host s) of an op list over its size range; host only when kernels launch one by one."""
        if self.host == "eager":
            ops = with_launches(ops, "eager")
        return device_and_host(time_by_class(ops, self.model), self.coef)

    def _extend(self, part: tuple[np.ndarray, np.ndarray], need: int, build) -> tuple[np.ndarray, np.ndarray]:
        have = part[0].size - 1
        if need <= have:
            return part
        sizes = np.arange(have + 1, _grow(have, need) + 1)
        dev, host = self._part(build(sizes))
        return (np.concatenate((part[0], np.broadcast_to(dev, sizes.shape))),
                np.concatenate((part[1], np.broadcast_to(host, sizes.shape))))

    def _ensure(self, tokens: int, rows: int) -> None:
        a, t, f = self.arch, self.t, self.fused
        self._body = self._extend(self._body, tokens, lambda m: body_ops(a, m, t, fused=f))
        self._head = self._extend(self._head, rows, lambda r: head_ops(a, r, t, fused=f))

    def prepare(self, prompts: ArrayLike) -> None:
        """Get ready for a workload of these prompt lengths: their prefill attention in one pass, and decode
        attention from the shortest prompt's first decode context on (no lookups of contexts no request reaches)."""
        prompts = np.asarray(prompts, dtype=np.int64)
        self._prefill_at(prompts)
        floor = int(prompts.min()) + 1 if prompts.size else 1
        if self._context_floor is None or floor < self._context_floor:
            self._context_floor = floor
            self._decode_attn.clear()
            self._decode_steps.clear()

    def _prefill_at(self, positions: ArrayLike) -> None:
        """Compute prefill attention at these prompt positions in one pass."""
        new = np.setdiff1d(np.asarray(positions, dtype=np.int64), list(self._prefill_attn))
        if new.size:
            dev, host = self._part(prefill_attention_ops(self.arch, 1, new, self.t))
            dev, host = np.broadcast_to(dev, new.shape), np.broadcast_to(host, new.shape)
            self._prefill_attn.update(zip(new.tolist(), zip(dev.tolist(), host.tolist())))

    def _attn_at(self, x: int) -> tuple[float, float]:
        """(device s, host s) of causal attention over the first x prompt positions: exact where computed (every
        prepared prompt length), else interpolated between the multiples of CHUNK_GRID around x."""
        table = self._prefill_attn
        if x in table:
            return table[x]
        lo = x // CHUNK_GRID * CHUNK_GRID
        if lo + CHUNK_GRID > self._grid_top:  # the grid up to twice as far as before, in one pass
            self._grid_top = max(2 * self._grid_top, lo + CHUNK_GRID)
            self._prefill_at(np.arange(CHUNK_GRID, self._grid_top + 1, CHUNK_GRID))
        w = (x - lo) / CHUNK_GRID
        (d0, h0), (d1, h1) = table[lo], table[lo + CHUNK_GRID]
        return d0 + w * (d1 - d0), h0 + w * (h1 - h0)

    def _attn_chunks(self, chunks) -> tuple[float, float]:
        """(device s, host s) of the prefill attention of chunks (from, to)."""
        dev = host = 0.0
        for a, b in chunks:
            (da, ha), (db, hb) = self._attn_at(a), self._attn_at(b)
            dev += db - da
            host += hb - ha
        return dev, host

    def _decode(self, n: int, context: int) -> tuple[np.ndarray, np.ndarray]:
        part = self._decode_attn.get(n, (np.zeros(1), np.zeros(1)))
        floor = self._context_floor or 1  # below it (never reached): the floor's time
        part = self._extend(part, context + 1,
                            lambda c: decode_attention_ops(self.arch, n, np.maximum(c, floor), self.t))
        self._decode_attn[n] = part
        return part

    # -- iterations -------------------------------------------------------------------------------------
    def __call__(self, n_decode: ArrayLike, context_sum: ArrayLike, chunk_start: ArrayLike = (),
                 chunk_end: ArrayLike = (), chunk_iteration: ArrayLike = ()) -> np.ndarray:
        """Seconds of K iterations: iteration i decodes n_decode[i] sequences whose contexts sum to
        context_sum[i], and prefills the chunks j with chunk_iteration[j] == i (prompt positions
        chunk_start[j]+1 .. chunk_end[j]). Arrays of length K (decode) and J (chunks)."""
        n = np.atleast_1d(np.asarray(n_decode, dtype=np.int64))
        ctx = np.broadcast_to(np.asarray(context_sum, dtype=float), n.shape)
        start, end = np.asarray(chunk_start, dtype=np.int64), np.asarray(chunk_end, dtype=np.int64)
        where = np.asarray(chunk_iteration, dtype=np.int64)
        k = n.size
        chunks = np.bincount(where, minlength=k)[:k] if where.size else np.zeros(k, dtype=np.int64)
        tokens = n + (np.bincount(where, weights=end - start, minlength=k)[:k].astype(np.int64) if where.size else 0)
        rows = n + chunks
        self._ensure(int(tokens.max(initial=0)), int(rows.max(initial=0)))
        dev = self._body[0][tokens] + self._head[0][rows]
        host = self._body[1][tokens] + self._head[1][rows]
        if where.size:
            per_chunk = np.array([self._attn_chunks([(a, b)]) for a, b in zip(start.tolist(), end.tolist())])
            dev = dev + np.bincount(where, weights=per_chunk[:, 0], minlength=k)[:k]
            host = host + np.bincount(where, weights=per_chunk[:, 1], minlength=k)[:k]
        mean = np.divide(ctx, n, out=np.zeros(k), where=n > 0)
        for d in np.unique(n[n > 0]):
            sel = n == d
            c_dev, c_host = self._decode(int(d), int(np.ceil(mean[sel].max())))
            grid = np.arange(c_dev.size)
            dev[sel] += np.interp(mean[sel], grid, c_dev)
            host[sel] += np.interp(mean[sel], grid, c_host)
        fixed = np.where(chunks > 0, self.coef["prefill_fixed_s"], self.coef["decode_fixed_s"])
        out = np.maximum(dev, host + self._graph_launch_s) + fixed
        return out if np.ndim(n_decode) else out.reshape(())

    def decode_run(self, n: int, context_sum: int, steps: int) -> np.ndarray:
        """Seconds of `steps` consecutive decode-only iterations of the same n sequences, the first at contexts
        summing to context_sum (each step adds one token to every context)."""
        mean = context_sum / n
        lo = int(mean)
        frac = mean - lo
        s_dev, s_host = self._decode_steps.get(n, (_NONE, _NONE))
        if lo + steps + 1 > s_dev.size:  # the whole step (body, head, attention) at contexts 0.., per n
            self._ensure(n, n)
            c_dev, c_host = self._decode(n, lo + steps + 1)
            s_dev = c_dev + (self._body[0][n] + self._head[0][n])
            s_host = c_host + (self._body[1][n] + self._head[1][n] + self._graph_launch_s)
            self._decode_steps[n] = (s_dev, s_host)
        d, h = s_dev[lo:lo + steps + 1], s_host[lo:lo + steps + 1]
        if frac:
            d, h = d[:-1] + frac * (d[1:] - d[:-1]), h[:-1] + frac * (h[1:] - h[:-1])
        else:
            d, h = d[:-1], h[:-1]
        return np.maximum(d, h) + self.coef["decode_fixed_s"]

    def one(self, n_decode: int, context_sum: int, chunks: list[tuple[int, int]]) -> float:
        """Seconds of one iteration (as __call__, on Python numbers: the simulator's inner loop)."""
        tokens = n_decode + sum(e - s for s, e in chunks)
        rows = n_decode + len(chunks)
        if tokens >= self._body[0].size or rows >= self._head[0].size:
            self._ensure(tokens, rows)
        attn_dev, attn_host = self._attn_chunks(chunks)
        dev = float(self._body[0][tokens] + self._head[0][rows]) + attn_dev
        host = float(self._body[1][tokens] + self._head[1][rows]) + attn_host
        if n_decode:
            mean = context_sum / n_decode
            lo = int(mean)
            c_dev, c_host = self._decode_attn.get(n_decode, (np.zeros(1), None))
            if lo + 1 >= c_dev.size:
                c_dev, c_host = self._decode(n_decode, lo + 1)
            frac = mean - lo
            dev += float(c_dev[lo] + frac * (c_dev[lo + 1] - c_dev[lo]))
            host += float(c_host[lo] + frac * (c_host[lo + 1] - c_host[lo]))
        fixed = self.coef["prefill_fixed_s"] if chunks else self.coef["decode_fixed_s"]
        return max(dev, host + self._graph_launch_s) + fixed
