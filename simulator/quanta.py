"""Quantisation of kernel work into programs and waves: the step function a table divides out before it
interpolates.

A kernel runs a shape as programs (output tiles, query blocks), a few at a time per SM, so its time steps
up each time the programs need one more wave: m = 129 rows of n = 6144 take 144 tiles of 64 x 128 on 132 SMs,
two waves, 38 us where m = 128 (96 tiles, one wave) takes 23 us (H100 line scans). Between grid nodes such
steps are not linear, so the table holds time per unit of critical work (`critical_work`) and multiplies the
shape's own back. Our Triton GEMM: waves of output tiles. Causal prefill attention (both stacks): the makespan
of its query-block programs, unequal in work, scheduled in launch order on the SMs (`prefill_makespan`).
Our kernels' launch choices come from kernels/configs.py, the single source of truth (plain dataclasses, no
torch); SDPA's prefill from simulator/sdpa_launch.py (FlashAttention-2's, read from its source). cuBLAS picks
its tiles at run time, and a critical-keys model of our split decode kernel fitted the random checks worse than
none (H100 seeds 3-5): neither is modelled (their steps are grid nodes, calibration/grids.py).
"""
from __future__ import annotations

import functools
import heapq

import numpy as np

from simulator.sdpa_launch import SDPA_TILES, SPLIT_BLOCK_M, sdpa_head_dim, sdpa_splits, split_block_n

# Products of up to this many rows are memory-bound (the weights are read once, whatever the tiling): their
# time follows bytes, not waves. Above it the tiles are compute-bound and the waves show.
WAVE_ROWS_ABOVE = 64
# Programs of a memory-bound product stream at the GPU's whole bandwidth while this many SMs or more run them; a
# last partial wave of q programs takes as long as max(q, HBM_SATURATING_SMS) would at that rate (one SM draws
# about 1/32 of the bandwidth). H200: m = 17, n = 4672, k = 4544 (146 programs on 132 SMs) took 35% longer than its
# bytes on the nodes of 128 and 192 programs said. Chosen on the pooled checks of seeds 12-19 (Triton GEMM P95
# 14.2 -> 12.8% H100, 14.7 -> 12.8% H200; 24 SMs: 14.2, 14.2; 48: 14.1, 13.4; full waves: 19.9, 17.5); seeds 20-21,
# after: 12.5 -> 11.9%, 15.5 -> 14.9%.
HBM_SATURATING_SMS = 32


def _per_unique(fn, *arrays) -> np.ndarray:
    """fn(*scalars) at every element of the broadcast arrays, called once per distinct tuple (sweeps repeat)."""
    arrs = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in arrays])
    flat = np.rint(np.stack([a.reshape(-1) for a in arrs], -1)).astype(np.int64)  # (nodes come back from log space)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    vals = np.array([fn(*row) for row in uniq.tolist()], dtype=float)
    return vals[inverse.reshape(-1)].reshape(arrs[0].shape)


@functools.lru_cache(maxsize=65536)
def _gemm_waves(m: int, n: int, k: int, sm_count: int) -> float:
    """Waves of output tiles of our GEMM; up to WAVE_ROWS_ABOVE rows, its time relative to its bytes at full
    bandwidth (HBM_SATURATING_SMS)."""
    from kernels.configs import gemm_config

    cfg = gemm_config(m, n, k, sm_count)
    programs = -(-m // cfg.block_m) * -(-n // cfg.block_n) * cfg.split_k
    if m <= WAVE_ROWS_ABOVE:
        last = programs % (sm_count * _programs_per_sm(cfg))  # programs of the partial wave
        return (programs - last + (max(last, HBM_SATURATING_SMS) if last else 0)) / programs
    return float(max(1, -(-programs // (sm_count * _programs_per_sm(cfg)))))


SMEM_BYTES = 228 * 1024  # shared memory of an H100/H200 SM


def _programs_per_sm(cfg) -> int:
    """Programs of a GEMM config resident on one SM at a time: as many as its pipelined A and B tiles (bf16, one
    buffer a stage) fit in shared memory, at most 64 warps. (A 64 x 32 narrow tile fits two, so 144 of them on
    132 SMs are one wave: m = 121, n = 2304 took 13 us, not the two waves' 22.)"""
    stage = (cfg.block_m * cfg.block_k + cfg.block_k * cfg.block_n) * 2
    return int(max(1, min(SMEM_BYTES // (cfg.num_stages * stage), 64 // cfg.num_warps)))


# Fixed cost of one attention program (loading its query block, writing its output), in key steps: 2 fitted the
# H100 checks of seeds 7-9 best (triton P95 13.5, 12.5, 13.5, 12.3, 12.5% for 0, 0.5, 1, 2, 3).
PROGRAM_STEPS = 2.0
# Up to this many waves of programs the schedule is simulated; above it the tail is half a program (4 and 8
# re-predicted the pooled checks of seeds 12-21 alike, prefill P95 within 0.1%; 4 keeps SDPA's lookups fast).
SIMULATED_WAVES = 4
# SDPA (simulator.sdpa_launch): two of its 4-warp programs share an SM, and one alone runs at SDPA_ALONE_RATE of
# the pair's rate (H100 table, s = 128, d = 128: b*h = 128 -> 256 took 11.9 -> 17.7 us, 1.49x for twice the
# programs). A split-KV program's key step costs SPLIT_STEP_COST of a non-split one's (per query row), and a
# split adds COMBINE_STEPS for its second kernel. Chosen on the pooled H100/H200 checks of seeds 12-15 with the
# sixth round's tables: torch prefill P95 17.3 -> 13.8% (H100), 15.9 -> 14.4% (H200); one program per SM: 16.9
# and 16.0%; alone rates 0.65 / 0.8: 14.2 / 14.5% (H100); split step 1 or 2: 14.4, 14.3% (H100).
SDPA_ALONE_RATE = 0.72
SPLIT_STEP_COST = 1.5
COMBINE_STEPS = 2.0


@functools.lru_cache(maxsize=65536)
def prefill_makespan(bh: int, s: int, d: int, sm_count: int, stack: str = "triton", causal: bool = True) -> float:
    """Work on the busiest SM of prefill attention over b*h heads of s tokens (head dim d).

    One program per (query block, head): query block j reads min((j + 1) * block_m, s) keys if causal (else s)
    in steps of block_n, plus PROGRAM_STEPS. Programs start in launch order on the first free SM: our kernel
    launches the heaviest block of each head first, one program per SM; SDPA the lightest, two per SM
    (`_sdpa_programs`). b*h = 72, s = 203, d = 64 (144 programs on 132 SMs) took 11.5 us where b*h = 64 (128
    programs) took 7.1 on the H100: the second wave, not the 12% more work. Units: key steps of our kernel's
    block_n; for SDPA, steps of a 128 x 128 tile."""
    if stack != "triton":
        works, per_sm, fixed = _sdpa_programs(bh, s, d, sm_count, causal)
        return _shared_makespan(works, sm_count, per_sm, SDPA_ALONE_RATE) + fixed
    from kernels.configs import PREFILL_ATTENTION

    cfg = PREFILL_ATTENTION[max(64, 1 << (max(16, d) - 1).bit_length())]
    n_blocks = -(-s // cfg.block_m)
    steps = [-(-(min((j + 1) * cfg.block_m, s) if causal else s) // cfg.block_n) + PROGRAM_STEPS
             for j in range(n_blocks)]
    return _shared_makespan(steps[::-1] * bh, sm_count, 1, 1.0)


def _sdpa_programs(bh: int, s: int, d: int, sm_count: int, causal: bool) -> tuple[list[float], int, float]:
    """SDPA's programs in launch order (work in 128 x 128 tile steps), programs per SM, and the fixed work of a
    split's combine kernel. Grid x is the query block, so each head's blocks start lightest first (after the
    split index, for split-KV)."""
    keys = lambda j, block_m: min((j + 1) * block_m, s) if causal else s  # noqa: E731
    splits = sdpa_splits(bh, s, d, sm_count)
    if splits == 1:
        block_m, block_n, warps = SDPA_TILES[sdpa_head_dim(d)]
        head = [-(-keys(j, block_m) // block_n) * block_n * block_m / 128**2 + PROGRAM_STEPS
                for j in range(-(-s // block_m))]
        return head * bh, 2 if warps == 4 else 1, 0.0
    block_m, block_n = SPLIT_BLOCK_M, split_block_n(d)
    chunk = -(-(-(-s // block_n)) // splits)  # key blocks per split
    head = []
    for i in range(splits):
        for j in range(-(-s // block_m)):
            n = max(0, min((i + 1) * chunk, -(-keys(j, block_m) // block_n)) - i * chunk)
            head.append((n * block_n * SPLIT_STEP_COST + 128 * PROGRAM_STEPS) * block_m / 128**2)
    return head * bh, 2, COMBINE_STEPS


def _shared_makespan(works: list[float], sm_count: int, per_sm: int, alone_rate: float) -> float:
    """Finish time of programs of the given work started in launch order, up to `per_sm` at a time on each SM
    (the first `sm_count` across the SMs, then a second on each, ...). The programs on an SM share its rate, 1;
    one alone runs at `alone_rate`. Above SIMULATED_WAVES waves: the average load plus half a program."""
    if len(works) > SIMULATED_WAVES * sm_count * per_sm:
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
    m, n, k = axes
    return _per_unique(lambda mm, nn, kk: _gemm_waves(mm, nn, kk, sm_count), m, n, k)
