"""Wave quantisation of our Triton GEMM: the step function a table divides out before it interpolates.

A kernel runs a shape as programs (output tiles), a few at a time per SM, so its time steps
up each time the programs need one more wave: m = 129 rows of n = 6144 take 144 tiles of 64 x 128 on 132 SMs,
two waves, 38 us where m = 128 (96 tiles, one wave) takes 23 us (H100 line scans). Between grid nodes such
steps are not linear, so the table holds time per unit of critical work (`critical_work`) and multiplies the
shape's own back. The launch choices come from kernels/configs.py, the single source of truth (plain
dataclasses, no torch). Other stacks (cuBLAS, SDPA) pick their tiles at run time, and a critical-keys model of
our split decode kernel fitted the random checks worse than none (H100 seeds 3-5): neither is modelled.
"""
from __future__ import annotations

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


def has_model(op: str, stack: str) -> bool:
    """Whether `critical_work` models this op class on this stack."""
    return stack == "triton" and op == "gemm"


def critical_work(op: str, stack: str, axes: list[np.ndarray], sm_count: int) -> np.ndarray | None:
    """The factor a table point's time is divided by before interpolation (None: no model for this op/stack).

    `axes` are the table coordinates (simulator.tables.AXES): GEMM (m, n, k) -> waves of output tiles."""
    if not has_model(op, stack):
        return None
    m, n, k = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in axes])
    out = np.ones(m.shape)
    big = m > WAVE_ROWS_ABOVE  # (the rest: one, without a call per shape)
    if big.any():
        out[big] = _per_unique(lambda mm, nn, kk: _gemm_waves(mm, nn, kk, sm_count), m[big], n[big], k[big])
    return out
