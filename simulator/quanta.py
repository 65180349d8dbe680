"""Quantisation of kernel work into programs and waves: the step function a table divides out before it
interpolates.

A kernel runs a shape as programs (output tiles, query blocks), a few at a time per SM, so its time steps
up each time the programs need one more wave: m = 129 rows of n = 6144 take 144 tiles of 64 x 128 on 132 SMs,
two waves, 38 us where m = 128 (96 tiles, one wave) takes 23 us (H100 line scans). Between grid nodes such
steps are not linear, so the table holds time per unit of critical work (`critical_work`) and multiplies the
shape's own back. Our Triton GEMMs (bf16 and FP8): waves of output tiles. Causal prefill attention (both stacks): the makespan
of its query-block programs, unequal in work, scheduled in launch order on the SMs (`prefill_makespan`).
Our kernels' launch choices come from kernels/configs.py, the single source of truth (plain dataclasses, no
torch); SDPA's prefill from simulator/sdpa_launch.py (FlashAttention-2's, read from its source). cuBLAS picks
its tiles at run time, and our split decode kernel is not modelled (their steps are grid nodes,
calibration/grids.py). The few numbers of this model (`LaunchModel`) are stored with the table they were chosen
for (its "launch_model" entry); docs/decisions.md says how each was chosen.
"""
from __future__ import annotations

import functools
import heapq
from dataclasses import dataclass

import numpy as np

from simulator.errors import UserError
from simulator.sdpa_launch import SDPA_TILES, SPLIT_BLOCK_M, sdpa_head_dim, sdpa_splits, split_block_n

@dataclass(frozen=True)
class LaunchModel:
    """The GPU's SMs and the numbers of the wave and schedule model, as a table stores them."""

    sm_count: int  # SMs of the GPU the table was measured on
    smem_per_sm_bytes: int  # shared memory of one SM
    wave_rows_above: int  # products of up to this many rows are memory-bound: time follows bytes, not waves
    hbm_saturating_sms: int  # a memory-bound partial wave of q programs takes as long as max(q, this) would
    program_steps: float  # fixed work of one attention program (load its queries, write its output), key steps
    simulated_waves: int  # up to this many waves of programs the schedule is simulated; above, average + half
    sdpa_alone_rate: float  # rate of one SDPA program alone on an SM, relative to a pair's
    split_step_cost: float  # a split-KV program's key step, relative to a non-split one's
    combine_steps: float  # work of a split's combine kernel, key steps

    @classmethod
    def from_table(cls, table: dict, gpu) -> "LaunchModel":
        """The table's launch model, on the SMs the table was measured on (else the GPU spec's)."""
        entry = table.get("launch_model")
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            raise UserError("the throughput table has no 'launch_model' entry; re-run 'idealrt calibrate', "
                            "which copies it from the nearest shipped table")
        sm = int((table.get("provenance") or {}).get("sm_count") or gpu.sm_count)
        return cls(sm_count=sm, smem_per_sm_bytes=gpu.smem_per_sm_bytes, **entry["values"])


def _per_unique(fn, *arrays) -> np.ndarray:
    """fn(*scalars) at every element of the broadcast arrays, called once per distinct tuple (sweeps repeat)."""
    arrs = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in arrays])
    flat = np.rint(np.stack([a.reshape(-1) for a in arrs], -1)).astype(np.int64)  # (nodes come back from log space)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    vals = np.array([fn(*row) for row in uniq.tolist()], dtype=float)
    return vals[inverse.reshape(-1)].reshape(arrs[0].shape)


@functools.lru_cache(maxsize=65536)
def _gemm_waves(m: int, n: int, k: int, lm: LaunchModel, memory: int) -> float:
    """Waves of output tiles of our GEMM; counted as a memory-bound product (`memory`: `_waves`) relative to its
    bytes at full bandwidth (`hbm_saturating_sms`)."""
    from kernels.configs import gemm_config

    cfg = gemm_config(m, n, k, lm.sm_count)
    programs = ceil_div(m, cfg.block_m) * ceil_div(n, cfg.block_n) * cfg.split_k
    return _waves(memory, programs, lm.sm_count * _programs_per_sm(cfg, lm.smem_per_sm_bytes), lm)


@functools.lru_cache(maxsize=65536)
def _fp8_waves(m: int, n: int, k: int, lm: LaunchModel, memory: int) -> float:
    """Waves of our FP8 GEMM's programs (simulator.fp8_launch), counted as `_gemm_waves` counts the bf16 one's,
    with one-byte tiles in shared memory."""
    from simulator.fp8_launch import fp8_launch

    cfg = fp8_launch(m, n, k, lm.sm_count)
    return _waves(memory, cfg.programs(m, n), lm.sm_count * _programs_per_sm(cfg, lm.smem_per_sm_bytes, 1), lm)


def _waves(memory: int, programs: int, per_wave: int, lm: LaunchModel) -> float:
    """Waves of `programs` at `per_wave` a wave; for a memory-bound product (`memory`, see `memory_bound`), the time
    of its bytes at full bandwidth, a partial wave of q programs counted as max(q, `hbm_saturating_sms`)."""
    if memory:
        last = programs % per_wave  # programs of the partial wave
        return (programs - last + (max(last, lm.hbm_saturating_sms) if last else 0)) / programs
    return float(max(1, ceil_div(programs, per_wave)))


def memory_bound(op: str, axes: list[np.ndarray], lm: LaunchModel) -> np.ndarray | None:
    """Per shape, 1 where a GEMM's critical work is counted as a memory-bound product's (up to `wave_rows_above`
    rows, as `_per_unique` rounds them), else 0; None for classes with one way of counting (attention)."""
    if op == "prefill_attn":
        return None
    return (np.rint(np.asarray(axes[0], dtype=float)) <= lm.wave_rows_above).astype(int)


def ceil_div(a: int, b: int) -> int:
    """The smallest whole number >= a / b (b > 0)."""
    return -(-a // b)


def _programs_per_sm(cfg, smem_bytes: int, elem_bytes: int = 2) -> int:
    """Programs of a GEMM config resident on one SM at a time: as many as its pipelined A and B tiles (bf16 by
    default, one buffer a stage) fit in shared memory, at most 64 warps. (A 64 x 32 narrow tile fits two, so 144
    of them on 132 SMs are one wave: m = 121, n = 2304 took 13 us, not the two waves' 22.)"""
    stage = (cfg.block_m * cfg.block_k + cfg.block_k * cfg.block_n) * elem_bytes
    return int(max(1, min(smem_bytes // (cfg.num_stages * stage), 64 // cfg.num_warps)))


@functools.lru_cache(maxsize=65536)
def prefill_makespan(bh: int, s: int, d: int, lm: LaunchModel, stack: str = "triton", causal: bool = True) -> float:
    """Work on the busiest SM of prefill attention over b*h heads of s tokens (head dim d).

    One program per (query block, head): query block j reads min((j + 1) * block_m, s) keys if causal (else s)
    in steps of block_n, plus `program_steps`. Programs start in launch order on the first free SM: our kernel
    launches the heaviest block of each head first, one program per SM; SDPA the lightest, two per SM
    (`_sdpa_programs`). b*h = 72, s = 203, d = 64 (144 programs on 132 SMs) took 11.5 us where b*h = 64 (128
    programs) took 7.1 on the H100: the second wave, not the 12% more work. Units: key steps of our kernel's
    block_n; for SDPA, steps of a 128 x 128 tile."""
    if stack != "triton":
        works, per_sm, fixed = _sdpa_programs(bh, s, d, lm, causal)
        return _shared_makespan(works, lm, per_sm, lm.sdpa_alone_rate) + fixed
    from kernels.configs import prefill_attention_config

    cfg = prefill_attention_config(d)
    steps = [ceil_div(min((j + 1) * cfg.block_m, s) if causal else s, cfg.block_n) + lm.program_steps
             for j in range(ceil_div(s, cfg.block_m))]
    return _shared_makespan(steps[::-1] * bh, lm, 1, 1.0)


def _sdpa_programs(bh: int, s: int, d: int, lm: LaunchModel, causal: bool) -> tuple[list[float], int, float]:
    """SDPA's programs in launch order (work in 128 x 128 tile steps), programs per SM, and the fixed work of a
    split's combine kernel. Grid x is the query block, so each head's blocks start lightest first (after the
    split index, for split-KV)."""
    keys = lambda j, block_m: min((j + 1) * block_m, s) if causal else s  # noqa: E731
    splits = sdpa_splits(bh, s, d, lm.sm_count)
    if splits == 1:
        block_m, block_n, warps = SDPA_TILES[sdpa_head_dim(d)]
        head = [ceil_div(keys(j, block_m), block_n) * block_n * block_m / 128**2 + lm.program_steps
                for j in range(ceil_div(s, block_m))]
        return head * bh, 2 if warps == 4 else 1, 0.0
    block_m, block_n = SPLIT_BLOCK_M, split_block_n(d)
    chunk = ceil_div(ceil_div(s, block_n), splits)  # key blocks per split
    head = []
    for i in range(splits):
        for j in range(ceil_div(s, block_m)):
            n = max(0, min((i + 1) * chunk, ceil_div(keys(j, block_m), block_n)) - i * chunk)
            head.append((n * block_n * lm.split_step_cost + 128 * lm.program_steps) * block_m / 128**2)
    return head * bh, 2, lm.combine_steps


def _shared_makespan(works: list[float], lm: LaunchModel, per_sm: int, alone_rate: float) -> float:
    """Finish time of programs of the given work started in launch order, up to `per_sm` at a time on each SM
    (the first `sm_count` across the SMs, then a second on each, ...). The programs on an SM share its rate, 1;
    one alone runs at `alone_rate`. Above `simulated_waves` waves: the average load plus half a program."""
    sm_count = lm.sm_count
    if len(works) > lm.simulated_waves * sm_count * per_sm:
        return sum(works) / sm_count + max(works) / 2
    if len(works) <= sm_count:  # one program an SM
        return max(works) / (alone_rate if per_sm > 1 else 1.0)
    if per_sm == 1:  # list scheduling: each program starts on the SM that falls free first
        free = works[:sm_count]
        heapq.heapify(free)
        for w in works[sm_count:]:
            heapq.heapreplace(free, free[0] + w)
        return max(free)
    rate = [0.0, alone_rate] + [1.0 / n for n in range(2, per_sm + 1)]  # per program, by programs on the SM
    running: list[list[float]] = [[] for _ in range(sm_count)]  # remaining work of each SM's programs
    clock, version = [0.0] * sm_count, [0] * sm_count
    for i, w in enumerate(works[:sm_count * per_sm]):
        running[i % sm_count].append(w)
    events = [(min(r) / rate[len(r)], k, 0) for k, r in enumerate(running) if r]
    heapq.heapify(events)
    nxt, end = sm_count * per_sm, 0.0
    while events:
        t, k, v = heapq.heappop(events)
        if v != version[k]:
            continue
        done = (t - clock[k]) * rate[len(running[k])]
        running[k] = [r - done for r in running[k] if r - done > 1e-9]
        while len(running[k]) < per_sm and nxt < len(works):
            running[k].append(works[nxt])
            nxt += 1
        clock[k], version[k], end = t, v + 1, t
        if running[k]:
            heapq.heappush(events, (t + min(running[k]) / rate[len(running[k])], k, v + 1))
    return end


def critical_work(op: str, stack: str, axes: list[np.ndarray], lm: LaunchModel, cat: tuple = (),
                  memory: np.ndarray | None = None) -> np.ndarray:
    """The factor a table point's time is divided by before interpolation, for the op classes and stacks that
    `OpClass.work_stacks` names.

    `axes` are the table coordinates (simulator.opclasses): GEMM (m, n, k) -> waves of output tiles (our bf16
    kernel's, kernels/configs.py, or for `gemm_fp8` our FP8 kernel's, simulator.fp8_launch); causal
    prefill attention (b*h, s, d), `cat` = (causal,) -> the makespan of its programs in key steps. `memory`: how a
    GEMM's waves are counted (`memory_bound`), by default each shape's own way; a grid node's work is counted the
    way the shape looked up between nodes counts its own, so the time per unit interpolated between them is in one
    unit (waves, or a memory-bound product's bytes) on both sides of `wave_rows_above`."""
    if op == "prefill_attn":
        bh, s, d = axes
        causal = bool(cat[0]) if cat else True
        return _per_unique(lambda x, y, z: prefill_makespan(x, y, z, lm, stack, causal), bh, s, d)
    m, n, k = axes
    waves = _fp8_waves if op == "gemm_fp8" else _gemm_waves
    mem = memory_bound(op, axes, lm) if memory is None else memory
    return _per_unique(lambda mm, nn, kk, mb: waves(mm, nn, kk, lm, mb), m, n, k, mem)
