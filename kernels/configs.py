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


def prefill_attention_config(d: int) -> AttentionConfig:
    """The prefill-attention config of head dim d: its block is the next power of two (d = 80, 96 run as 128)."""
    return PREFILL_ATTENTION[max(64, _next_pow2(max(16, d)))]

# Decode attention (kernels/decode_attention.py): one program per (sequence, KV head, split of the
# cache); the query heads of a KV head are the rows of its tiles, so K and V are read once.
@dataclass(frozen=True)
class DecodeConfig:
    """Launch choices of decode attention.

    block_n: keys per step; merge: "fused" (the last split program of a (sequence, KV head) merges the
    partials, one launch) or "two_pass" (a second small kernel merges); merge_block: splits whose partials
    the merge loads as one block per round (1 = a serial loop, run 3's code); programs_per_sm and
    min_chunk (fewest keys per split) fix the split count from the cache capacity."""

    block_n: int = 128
    num_warps: int = 4
    num_stages: int = 3
    merge: str = "fused"
    merge_block: int = 32
    programs_per_sm: int = 1
    min_chunk: int = 256


DECODE_MERGES = ("fused", "two_pass")
# Up to head dim 128: run 2/3's best split kernel (128 keys, 4 warps, 3 stages, one wave of splits);
# the merge loads all (<= 32) splits' partials in one round, instead of run 3's serial loop that cost
# b1.c8192 20.4 us against 18.2 us for run 2's two-pass merge (docs/kernels-notes.md).
DECODE_ATTENTION = DecodeConfig()
# Head dims above 128 (GPT-J's 256): the 128-key, 3-stage pipeline needs 268 KB of shared memory
# against the H100's 227 KB (seen on the GPU), so half the keys per step and two stages.
DECODE_ATTENTION_WIDE = DecodeConfig(block_n=64, num_stages=2)


def decode_attention_config(head_dim: int) -> DecodeConfig:
    """Split-kernel configuration for a head dim: the tuned one up to 128, a narrower one above."""
    return DECODE_ATTENTION if head_dim <= 128 else DECODE_ATTENTION_WIDE


def decode_num_splits(batch: int, kv_heads: int, max_len: int, sm_count: int = 132,
                      config: DecodeConfig = DECODE_ATTENTION) -> tuple[int, int]:
    """(splits, chunk) of flash-decoding: fixed by the cache capacity, not the lengths (graph-safe);
    at most `programs_per_sm` programs per SM, each at least `min_chunk` keys, in whole key blocks.

    Rounded down to whole waves of programs: rounded up, b*kv_h = 48 at c = 673 ran 3 x 48 = 144 programs on
    132 SMs in 13.9 us, the 12 of the second wave after the rest; 2 x 48 took 9.7 us (H100,
    benchmarks/bench_decode_splits.py)."""
    want = max(1, config.programs_per_sm * sm_count // (batch * kv_heads))
    most = max(1, -(-max_len // config.min_chunk))
    splits = max(1, min(want, most))
    chunk = -(-max_len // splits)
    chunk = -(-chunk // config.block_n) * config.block_n
    return -(-max_len // chunk), chunk


# Grouped (MoE) GEMM (kernels/moe.py): one program per (block of block_m rows of one expert, N tile).
@dataclass(frozen=True)
class MoeConfig:
    """Tile shape of `kernels.moe.grouped_matmul`; block_m is also the padding unit of `moe_align`."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3


# By block_m, chosen by the mean rows per expert (T*k/E) from the H100 sweep
# (benchmarks/results/moe_sweep_h100.json, `benchmarks/check_moe.py --sweep`; OLMoE- and Qwen1.5-MoE-like).
# Decode-like (<= 32 rows): 16-row blocks waste the least padding; the weights are read once per
# (expert, N tile); at T <= 64 this config was within 2% of the best of 14-28 variants, 7% at Qwen T = 8.
# 32 < rows <= 128: 64 x 128 tiles, within 3% of the best of 28 variants at T = 512 (34 and 64 rows).
# > 128 rows: 128 x 256 tiles, 8 warps, 4 stages, best at T = 4096 (273 and 512 rows) for both models,
# 1.35x and 1.20x over 64 x 128 (no point swept between 64 and 273 rows); 192 KB of shared memory: fits
# the H100's 227 KB, not an A100's 164 KB.
MOE_CONFIGS: dict[int, MoeConfig] = {
    16: MoeConfig(16, 64, 128, num_warps=4, num_stages=4),
    64: MoeConfig(64, 128, 64, num_warps=4, num_stages=3),
    128: MoeConfig(128, 256, 64, num_warps=8, num_stages=4),
}
MOE_BLOCK_M_BY_ROWS = ((32, 16), (128, 64))  # (most mean rows per expert, block_m); above the last: 128


def moe_config(n_slots: int, n_experts: int) -> MoeConfig:
    """The grouped-GEMM configuration of T*k = n_slots routed rows over n_experts, by the mean rows per
    expert (MOE_BLOCK_M_BY_ROWS): 16-row blocks for decode, 64 and then 128 for prefill."""
    for most, block_m in MOE_BLOCK_M_BY_ROWS:
        if n_slots <= most * max(1, n_experts):
            return MOE_CONFIGS[block_m]
    return MOE_CONFIGS[128]
