"""Quantisation of kernel work into programs and waves: the step function a table divides out before it
interpolates.

A kernel runs a shape as programs (output tiles, query blocks), a few at a time per SM, so its time steps
up each time the programs need one more wave: m = 129 rows of n = 6144 take 144 tiles of 64 x 128 on 132 SMs,
two waves, 38 us where m = 128 (96 tiles, one wave) takes 23 us (H100 line scans). Between grid nodes such
steps are not linear, so the table holds time per unit of critical work (`critical_work`) and multiplies the
shape's own back. Our Triton GEMM: waves of output tiles. Causal prefill attention (both stacks): the makespan
of its query-block programs, unequal in work, scheduled in launch order on the SMs (`prefill_makespan`).
Our kernels' launch choices come from kernels/configs.py, the single source of truth (plain dataclasses, no
torch). cuBLAS picks its tiles at run time, and a critical-keys model of our split decode kernel fitted the
random checks worse than none (H100 seeds 3-5): neither is modelled.
"""
from __future__ import annotations

import functools
import heapq

import numpy as np

# Products of up to this many rows are memory-bound (the weights are read once, whatever the tiling): their
# time follows bytes, not waves. Above it the tiles are compute-bound and the waves show.
WAVE_ROWS_ABOVE = 64


def _per_unique(fn, *arrays) -> np.ndarray:
    """fn(*scalars) at every element of the broadcast arrays, called once per distinct tuple (sweeps repeat)."""
    arrs = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in arrays])
    flat = np.rint(np.stack([a.reshape(-1) for a in arrs], -1)).astype(np.int64)  # (nodes come back from log space)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    vals = np.array([fn(*row) for row in uniq.tolist()], dtype=float)
    return vals[inverse.reshape(-1)].reshape(arrs[0].shape)


@functools.lru_cache(maxsize=65536)
def _gemm_waves(m: int, n: int, k: int, sm_count: int) -> float:
    from kernels.configs import gemm_config

    if m <= WAVE_ROWS_ABOVE:
        return 1.0
    cfg = gemm_config(m, n, k, sm_count)
    programs = -(-m // cfg.block_m) * -(-n // cfg.block_n) * cfg.split_k
    return float(max(1, -(-programs // (sm_count * _programs_per_sm(cfg)))))


SMEM_BYTES = 228 * 1024  # shared memory of an H100/H200 SM


def _programs_per_sm(cfg) -> int:
    """Programs of a GEMM config resident on one SM at a time: as many as its pipelined A and B tiles (bf16, one
    buffer a stage) fit in shared memory, at most 64 warps. (A 64 x 32 narrow tile fits two, so 144 of them on
    132 SMs are one wave: m = 121, n = 2304 took 13 us, not the two waves' 22.)"""
    stage = (cfg.block_m * cfg.block_k + cfg.block_k * cfg.block_n) * 2
    return int(max(1, min(SMEM_BYTES // (cfg.num_stages * stage), 64 // cfg.num_warps)))


# SDPA's flash kernel (FlashAttention-2's forward) on the torch stack: 128-row query blocks in launch order, key
# steps of 128 (64 fitted the H100 and H200 checks of seeds 6-9 worse: torch P95 13.0 vs 12.7%, 14.8 vs 13.7%).
SDPA_BLOCKS = (128, 128)
# Fixed cost of one attention program (loading its query block, writing its output), in key steps: 2 fitted the
# H100 checks of seeds 7-9 best (triton P95 13.5, 12.5, 13.5, 12.3, 12.5% for 0, 0.5, 1, 2, 3).
PROGRAM_STEPS = 2.0
# Up to this many waves of programs the schedule is simulated; above it the tail is half a program.
SIMULATED_WAVES = 8


@functools.lru_cache(maxsize=65536)
def prefill_makespan(bh: int, s: int, d: int, sm_count: int, stack: str = "triton", causal: bool = True) -> float:
    """Key steps on the busiest SM of prefill attention over b*h heads of s tokens (head dim d).

    One program per (query block, head): query block j reads min((j + 1) * block_m, s) keys if causal (else s)
    in steps of block_n, plus PROGRAM_STEPS. Programs start in launch order on the first free SM: our kernel
    launches the heaviest block of each head first, SDPA the lightest. b*h = 72, s = 203, d = 64 (144 programs
    on 132 SMs) took 11.5 us where b*h = 64 (128 programs) took 7.1 on the H100: the second wave, not the 12%
    more work."""
    from kernels.configs import PREFILL_ATTENTION

    if stack == "triton":
        cfg = PREFILL_ATTENTION[max(64, 1 << (max(16, d) - 1).bit_length())]
        block_m, block_n = cfg.block_m, cfg.block_n
    else:
        block_m, block_n = SDPA_BLOCKS
    n_blocks = -(-s // block_m)
    steps = [-(-(min((j + 1) * block_m, s) if causal else s) // block_n) + PROGRAM_STEPS for j in range(n_blocks)]
    order = steps[::-1] if stack == "triton" else steps
    programs = bh * n_blocks
    if programs <= sm_count:
        return float(max(steps))
    if programs > SIMULATED_WAVES * sm_count:
        return bh * sum(steps) / sm_count + max(steps) / 2
    launch = order * bh
    free = launch[:sm_count]  # the first wave starts at once; `free`: a heap of the times the SMs fall free
    heapq.heapify(free)
    for w in launch[sm_count:]:
        heapq.heapreplace(free, free[0] + w)
    return float(max(free))


def has_model(op: str, stack: str) -> bool:
    """Whether `critical_work` models this op class on this stack."""
    return (stack == "triton" and op == "gemm") or op == "prefill_attn"


def critical_work(op: str, stack: str, axes: list[np.ndarray], sm_count: int, cat: tuple = ()) -> np.ndarray | None:
    """The factor a table point's time is divided by before interpolation (None: no model for this op/stack).

    `axes` are the table coordinates (simulator.tables.AXES): GEMM (m, n, k) -> waves of output tiles; causal
    prefill attention (b*h, s, d), `cat` = (causal,) -> the makespan of its programs in key steps."""
    if not has_model(op, stack):
        return None
    if op == "prefill_attn":
        bh, s, d = axes
        causal = bool(cat[0]) if cat else True
        return _per_unique(lambda x, y, z: prefill_makespan(x, y, z, sm_count, stack, causal), bh, s, d)
    m, n, k = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in axes])
    out = np.ones(m.shape)
    big = m > WAVE_ROWS_ABOVE  # (the rest: one, without a call per shape)
    if big.any():
        out[big] = _per_unique(lambda mm, nn, kk: _gemm_waves(mm, nn, kk, sm_count), m[big], n[big], k[big])
    return out
