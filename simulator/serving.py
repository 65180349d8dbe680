"""Continuous batching of a request stream on one replica, iteration by iteration, as the common serving engines
schedule it (discrete-event, pure numpy and Python numbers).

The schedule, at the start of every iteration:
1. Admit waiting requests in arrival order while the batch has fewer than `max_batch` requests and the KV cache
   has room for the head of the queue's prompt + output tokens (reserved whole at admission and freed when the
   request ends: no preemption). A request that does not fit blocks those behind it (first come, first served).
2. Fill the iteration. `chunk_tokens` None: a prompt is prefilled whole in one iteration; else at most
   `chunk_tokens` tokens an iteration, a prompt split over iterations as needed (chunked prefill).
   - "prefill-first": while any admitted prompt is not fully prefilled, the iteration prefills only (in
     admission order, up to the budget); otherwise it decodes every running request.
   - "decode-first": every decoding request decodes one token, and prompts fill what is left of the budget.
3. The iteration takes `step.one(decoding, their context sum, chunks)` seconds (simulator/stepcost.py). A prompt
   whose last chunk ran yields its first token at the iteration's end; a decode yields one token; a request
   with all its output tokens leaves the batch.
Runs of decode-only iterations with nothing to admit are timed together (`step.decode_run`, then `step.advance`
with how many ran).

Per request: queueing (arrival to its first iteration), TTFT (arrival to first token), TPOT ((end − first
token) / (output − 1)), end-to-end (arrival to last token).
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.errors import UserError

POLICIES = ("prefill-first", "decode-first")


class Step(Protocol):
    """Iteration times: one iteration on Python numbers, and a run of decode-only iterations (of which the
    scheduler then says how many ran: `advance`)."""

    def one(self, n_decode: int, context_sum: int, chunks: list[tuple[int, int]]) -> float: ...

    def decode_run(self, n: int, context_sum: int, steps: int) -> np.ndarray: ...

    def advance(self, steps: int) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """Per request (arrival order): when its first iteration started, its first token came, its last token
    came (seconds); and the iterations the replica ran."""

    start_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    iterations: int


def check_policy(policy: str, chunk_tokens: int | None, max_batch: int) -> None:
    """A UserError naming the option if the scheduler settings are not valid."""
    if policy not in POLICIES:
        raise UserError(f"--policy '{policy}': use one of {', '.join(POLICIES)}")
    if chunk_tokens is not None and chunk_tokens < 1:
        raise UserError(f"--chunk {chunk_tokens}: give a token budget >= 1, or leave it out (whole prompts)")
    if max_batch < 1:
        raise UserError(f"max batch {max_batch}: give a whole number >= 1")


def simulate(arrival_s: np.ndarray, prompt: np.ndarray, output: np.ndarray, step: Step, max_batch: int,
             kv_tokens: int, chunk_tokens: int | None = None, policy: str = "prefill-first") -> Schedule:
    """The schedule of requests sorted by arrival on one replica (module docstring); every request's
    prompt + output must fit in `kv_tokens`."""
    check_policy(policy, chunk_tokens, max_batch)
    arrival = [float(a) for a in arrival_s]
    p, o = [int(x) for x in prompt], [int(x) for x in output]
    n = len(arrival)
    need = [a + b for a, b in zip(p, o)]
    if n and max(need) > kv_tokens:
        raise UserError(f"a request of {max(need)} prompt + output tokens exceeds the KV cache of {kv_tokens} tokens")
    start, first, finish = [np.nan] * n, [np.nan] * n, [np.nan] * n
    done_prefill = [0] * n
    prefilling: deque[int] = deque()  # admitted, prompt not yet whole, in admission order
    decode_heap: list[tuple[int, int]] = []  # (decode-step count at which it ends, request)
    n_decoding, base_sum = 0, 0  # decoding requests; Σ (p + 1 − steps count at entry) over them
    steps = 0  # decode iterations so far: every decoding request runs in each
    head, kv_used, now, iterations = 0, 0, 0.0, 0
    budget = chunk_tokens if chunk_tokens is not None else float("inf")

    def enter_decode(r: int) -> None:
        nonlocal n_decoding, base_sum
        if o[r] == 1:
            finish[r] = now
            return
        heapq.heappush(decode_heap, (steps + o[r] - 1, r))
        n_decoding += 1
        base_sum += p[r] + 1 - steps

    while head < n or prefilling or n_decoding:
        while (head < n and arrival[head] <= now and len(prefilling) + n_decoding < max_batch
               and kv_used + need[head] <= kv_tokens):
            prefilling.append(head)
            kv_used += need[head]
            head += 1
        if not prefilling and not n_decoding:
            now = arrival[head]
            continue
        decode = n_decoding > 0 and (policy == "decode-first" or not prefilling)
        left = budget - (n_decoding if decode and chunk_tokens is not None else 0)
        chunks: list[tuple[int, int, int]] = []  # (request, from, to)
        for r in prefilling:
            if left <= 0:
                break
            take = int(min(p[r] - done_prefill[r], left))
            chunks.append((r, done_prefill[r], done_prefill[r] + take))
            left -= take
        if not chunks:  # decode only: run until the first request ends or the queue's head could enter
            context_sum = base_sum + n_decoding * steps
            run = decode_heap[0][0] - steps
            times = np.cumsum(step.decode_run(n_decoding, context_sum, run))
            if head < n and len(prefilling) + n_decoding < max_batch and kv_used + need[head] <= kv_tokens:
                run = min(run, int(np.searchsorted(times, arrival[head] - now, side="left")) + 1)
            now += float(times[run - 1])
            step.advance(run)
            steps += run
            iterations += run
        else:
            context_sum = base_sum + n_decoding * steps if decode else 0
            begin = now
            now += step.one(n_decoding if decode else 0, context_sum, [(a, b) for _, a, b in chunks])
            iterations += 1
            steps += decode
            for r, a, b in chunks:
                if a == 0:
                    start[r] = begin
                done_prefill[r] = b
                if b == p[r]:
                    prefilling.popleft()  # chunks run in admission order: a whole prompt is the front one
                    first[r] = now
                    enter_decode(r)
                    if o[r] == 1:
                        kv_used -= need[r]
        while decode_heap and decode_heap[0][0] <= steps:
            end, r = heapq.heappop(decode_heap)
            finish[r] = now
            n_decoding -= 1
            base_sum -= p[r] + 1 - (end - (o[r] - 1))
            kv_used -= need[r]
    return Schedule(np.array(start), np.array(first), np.array(finish), iterations)
