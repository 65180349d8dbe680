"""Continuous batching on the reference engine: requests injected at their arrival times (wall clock, same
machine) into a SlotEngine, iteration by iteration, with the serving simulator's "prefill-one" policy
(simulator/serving.py):

At the start of every iteration, admit arrived requests in arrival order while fewer than `max_batch` are in the
batch (every slot holds any request of the workload: the KV cache never limits). Then, if an admitted prompt is
not yet prefilled, prefill the first one (one prompt an iteration, its first token at the iteration's end);
else decode one token for every running request. A request with all its output tokens leaves the batch and
frees its slot. The host waits for every iteration to finish (it needs the wall clock at its end) and sleeps
when nothing runs until the next arrival. Output lengths are the workload's (no end-of-sequence token).

Per request (seconds from the run's start): arrival, start (its prefill iteration began), first token, finish,
and the largest gap between two of its tokens. Per iteration: what ran (prompt tokens, or the
decoding requests and their contexts' sum), its start and end.
"""
from __future__ import annotations

import heapq
import math
import time
from collections import deque

import numpy as np
import torch

from calibration.engine_variants.slot_engine import SlotEngine
from simulator.arch import ArchSpec

POLICY = "prefill-one"  # the simulator's name for this iteration structure
SPIN_S = 0.002  # the last part of an idle wait is spent polling the clock, not sleeping


def make_engine(arch: ArchSpec, max_batch: int, s_needed: int, backend: str = "triton", device: str = "cuda",
                dtype=torch.bfloat16, seed: int = 0) -> SlotEngine:
    """The continuous-batching engine of this variant."""
    return SlotEngine(arch, max_batch, s_needed, backend, device, dtype, seed)


def _wait_until(t0: float, when_s: float) -> None:
    left = when_s - (time.perf_counter() - t0)
    if left > SPIN_S:
        time.sleep(left - SPIN_S)
    while time.perf_counter() - t0 < when_s:
        pass


def max_token_gap(first_s: np.ndarray, finish_s: np.ndarray, decode_end_s: np.ndarray) -> np.ndarray:
    """Per request, the longest time between two of its tokens: its first token, then one at the end of every
    decode iteration up to its last (NaN with one token)."""
    gap = np.full(first_s.size, np.nan)
    for r in np.flatnonzero(np.isfinite(finish_s) & (finish_s > first_s)):
        times = decode_end_s[(decode_end_s > first_s[r]) & (decode_end_s <= finish_s[r])]
        gap[r] = float(np.diff(times, prepend=first_s[r]).max())
    return gap


def serve(engine: SlotEngine, arrival_s, prompt, output, max_batch: int, seed: int = 0,
          deadline_s: float = float("inf")) -> dict:
    """Serve requests (arrival order; arrays of seconds and tokens) on `engine` (module docstring); random prompt
    tokens from `seed`. Stops admitting at `deadline_s` after the start (unserved requests keep NaN times).
    Returns per-request arrays and the iteration log."""
    arrival = [float(a) for a in arrival_s]
    p, o = [int(x) for x in prompt], [int(x) for x in output]
    n = len(arrival)
    if max_batch > engine.max_batch:
        raise ValueError(f"max_batch {max_batch} > the engine's {engine.max_batch} slots")
    g = torch.Generator(device="cpu").manual_seed(seed)
    tokens = torch.randint(0, engine.arch.vocab, (sum(p),), generator=g).to(engine.device)
    offsets = np.concatenate(([0], np.cumsum(p)))
    start, first, finish = ([math.nan] * n for _ in range(3))
    left = o.copy()  # output tokens still to come
    free = list(range(max_batch))  # a heap: the lowest free slot first, keeps the decode rows few
    pending: deque[tuple[int, int]] = deque()  # admitted, not prefilled: (request, slot)
    running: dict[int, int] = {}  # slot -> request
    positions = [0] * max_batch  # per slot: position of its next decode input (0 when free)
    log_kind, log_ctx, log_start, log_end = [], [], [], []  # kind: prompt tokens (> 0) or -(decoding requests)
    head = done = 0
    engine.sync()
    t0 = time.perf_counter()
    while done < head or head < n:
        now = time.perf_counter() - t0
        while head < n and arrival[head] <= now and len(pending) + len(running) < max_batch and now < deadline_s:
            pending.append((head, heapq.heappop(free)))
            head += 1
        if not pending and not running:
            if head >= n or arrival[head] >= deadline_s:
                break
            _wait_until(t0, arrival[head])
            continue
        if pending:
            r, slot = pending.popleft()
            start[r] = now
            engine.prefill(slot, tokens[offsets[r]:offsets[r + 1]])
            engine.sync()
            end = time.perf_counter() - t0
            first[r] = end
            left[r] -= 1
            log_kind.append(p[r])
            log_ctx.append(0)
            if left[r] == 0:
                finish[r], done = end, done + 1
                heapq.heappush(free, slot)
            else:
                running[slot], positions[slot] = r, p[r]
        else:
            engine.decode(positions[:max(running) + 1])
            engine.sync()
            end = time.perf_counter() - t0
            log_kind.append(-len(running))
            log_ctx.append(sum(positions) + len(running))
            for slot, r in list(running.items()):
                left[r] -= 1
                positions[slot] += 1
                if left[r] == 0:
                    finish[r], done = end, done + 1
                    del running[slot]
                    positions[slot] = 0
                    heapq.heappush(free, slot)
        log_start.append(now)
        log_end.append(end)
    first_s, finish_s = np.array(first), np.array(finish)
    gap = max_token_gap(first_s, finish_s, np.array(log_end)[np.array(log_kind) < 0])
    return {"start_s": np.array(start), "first_token_s": first_s, "finish_s": finish_s, "max_gap_s": gap,
            "iterations": {"kind": log_kind, "context_sum": log_ctx, "start_s": log_start, "end_s": log_end}}
