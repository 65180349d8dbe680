"""Launch configurations of the Triton kernels, chosen by shape bucket (a pure function of the shape).

Why a heuristic table and not `triton.autotune`: the choice must be deterministic and must not time
anything at call time, so that the first call (which compiles) can run before a CUDA-graph capture and
every later call launches the same kernel.  The buckets were picked from the variant sweep of
`benchmarks/bench_kernels.py --sweep` on an H100 (see docs/kernels-notes.md); any config here is valid
on any GPU and in the Triton CPU interpreter, only the speed depends on the choice.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class GemmConfig:
    """Tile shape and schedule of `kernels.gemm` (split_k > 1 sums K slices with fp32 atomics;
    tma: load tiles through tensor descriptors, where the operands' strides allow)."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 4
    tma: bool = False


@dataclass(frozen=True)
class AttentionConfig:
    """Tile shape of the attention kernels (block_m: query rows; block_n: keys per step)."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 2


# Decode-like products (small M) read the weights once: narrow N tiles give enough programs to fill
# the GPU, deep K tiles and several stages keep enough bytes in flight.  Keyed by the smallest
# power of two >= M (at least 16, the smallest tile tl.dot takes).  M in (64, 256] keeps 64-row
# tiles with grouped ordering, so the few row tiles of one weight tile run together and share it in L2.
# Entries chosen from the H100 sweeps in benchmarks/results/kernels_h100*.json (worst case over layers).
GEMM_SMALL_M: dict[int, GemmConfig] = {
    16: GemmConfig(16, 64, 512, group_m=1, num_warps=4, num_stages=3),
    32: GemmConfig(32, 32, 512, group_m=1, num_warps=4, num_stages=3),
    64: GemmConfig(64, 64, 128, group_m=1, num_warps=4, num_stages=5),
    128: GemmConfig(64, 128, 128, group_m=8, num_warps=4, num_stages=4),
    256: GemmConfig(64, 128, 128, group_m=8, num_warps=4, num_stages=4),
}
# Prefill-like products (M > 256), by weight layout: compute-bound, large tiles for the tensor cores
# (wgmma), loaded through TMA descriptors (the pointer kernel's best was ~0.8 of cuBLAS at 8192^3 on
# the H100).  "nk" (K-major weight tiles) ran best with 128x128 tiles, "kn" with 128x256.
GEMM_LARGE_M: dict[str, GemmConfig] = {
    "nk": GemmConfig(128, 128, 64, group_m=8, num_warps=4, num_stages=4, tma=True),
    "kn": GemmConfig(128, 256, 64, group_m=8, num_warps=8, num_stages=3, tma=True),
}

# Small-M products whose tiles fill under a third of the SMs use 32-wide N tiles; under a quarter
# even then, they split K.  On the H100 sweep split-K (3 launches: zero, atomics, cast) lost to plain
# narrow tiles for every Llama layer at t = 1 (>= 64 tiles on 132 SMs).
NARROW_BELOW = 1 / 3
MIN_WAVES = 0.25


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def gemm_config(m: int, n: int, k: int, sm_count: int = 132, w_layout: str = "nk") -> GemmConfig:
    """The configuration of an (m, n, k) product: a shape bucket, then narrow tiles or split-K if the
    (m, n) tiles leave SMs idle."""
    if m > 256:
        return GEMM_LARGE_M[w_layout]
    cfg = GEMM_SMALL_M[max(16, _next_pow2(m))]

    def tiles(c: GemmConfig) -> int:
        return -(-m // c.block_m) * -(-n // c.block_n)

    if tiles(cfg) < NARROW_BELOW * sm_count and cfg.block_n > 32:
        cfg = replace(cfg, block_n=32)
    split = 1
    while tiles(cfg) * split < MIN_WAVES * sm_count and k // (2 * split) >= 4 * cfg.block_k:
        split *= 2
    return replace(cfg, split_k=split) if split > 1 else cfg


# Prefill attention: by head-dim block (the padded head dim).
# 128 (also d = 80, 96): best of the H100 sweeps; 64 and 256: checked on the GPU or CPU, not timed.
PREFILL_ATTENTION: dict[int, AttentionConfig] = {
    64: AttentionConfig(128, 64, num_warps=4, num_stages=3),
    128: AttentionConfig(128, 128, num_warps=8, num_stages=3),
    256: AttentionConfig(64, 32, num_warps=4, num_stages=2),
}

# Decode attention: keys per step of the split kernel; query heads of one KV head form the rows.
DECODE_ATTENTION = AttentionConfig(16, 128, num_warps=4, num_stages=3)
# Head dims above 128 (GPT-J's 256): the 128-key, 3-stage pipeline needs 268 KB of shared memory
# against the H100's 227 KB (seen on the GPU), so half the keys per step and two stages.
DECODE_ATTENTION_WIDE = AttentionConfig(16, 64, num_warps=4, num_stages=2)


def decode_attention_config(head_dim: int) -> AttentionConfig:
    """Split-kernel configuration for a head dim: the tuned one up to 128, a narrower one above."""
    return DECODE_ATTENTION if head_dim <= 128 else DECODE_ATTENTION_WIDE
# Target programs per SM of the split kernel, and fewest keys one split handles: on the H100 sweep
# one wave of long splits beat 2-8 programs per SM (fewer partials to merge, longer pipelines).
DECODE_PROGRAMS_PER_SM = 1
DECODE_MIN_CHUNK = 256


def decode_num_splits(batch: int, kv_heads: int, max_len: int, sm_count: int = 132,
                      block_n: int = DECODE_ATTENTION.block_n) -> tuple[int, int]:
    """(splits, chunk) of flash-decoding: fixed by the cache capacity, not the lengths (graph-safe)."""
    want = -(-DECODE_PROGRAMS_PER_SM * sm_count // (batch * kv_heads))
    most = max(1, -(-max_len // DECODE_MIN_CHUNK))
    splits = max(1, min(want, most))
    chunk = -(-max_len // splits)
    chunk = -(-chunk // block_n) * block_n          # whole key blocks per split
    return -(-max_len // chunk), chunk
