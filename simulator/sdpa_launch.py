"""What torch's SDPA launches for bf16 prefill attention on an H100/H200: FlashAttention-2's forward as built into
PyTorch (aten/src/ATen/native/transformers/cuda/flash_attn: flash_api.cpp, flash_fwd_launch_template.h).

Our own kernels' launch choices live in kernels/configs.py; SDPA's are read from its source, restated here in
plain Python (no torch) so the table lookup can divide out the steps they cause:
- the head dim runs padded to a compiled one, and each has its tile (`SDPA_TILES`, sm90 branch);
- with few query blocks (b*h*ceil(s/64) under 0.8 of two programs per SM) it splits the keys over several
  programs of 64 query rows and combines them in a second kernel (`sdpa_splits`);
- an "even" shape (s a multiple of the 128-row tile, head dim at most 128) runs a template without bounds
  checks: the H100 table ran s = 384 / 385 at b*h = 1024, d = 128 in 239 / 446 us, 1.3x per unit of work.
"""
from __future__ import annotations

import functools
import math

import numpy as np

# Head dims SDPA's flash kernel is compiled for (a shape runs at the next one up).
SDPA_HEAD_DIMS = (32, 64, 96, 128, 160, 192, 224, 256)
# (block_m, block_n, warps) of the non-split kernel per compiled head dim, sm90 (H100/H200) branch.
SDPA_TILES = {32: (128, 128, 4), 64: (128, 128, 4), 96: (128, 64, 4), 128: (128, 64, 4), 160: (128, 32, 4),
              192: (128, 64, 8), 224: (128, 64, 8), 256: (128, 64, 8)}
SPLIT_BLOCK_M = 64  # query rows of a split-KV program, every head dim
MAX_SPLITS = 128


def sdpa_head_dim(d: int) -> int:
    """The compiled head dim a shape of head dim d runs at."""
    return next((h for h in SDPA_HEAD_DIMS if d <= h), SDPA_HEAD_DIMS[-1])


def split_block_n(d: int) -> int:
    """Keys per step of the split-KV kernel."""
    return 256 if d <= 64 else (128 if d <= 128 else 64)


def _splits_heuristic(blocks: int, slots: int, n_blocks: int) -> int:
    """Fewest splits within 85% of the best wave efficiency (1 when the blocks nearly fill the slots)."""
    if blocks >= 0.8 * slots:
        return 1
    most = min(MAX_SPLITS, slots, n_blocks)
    per = [-(-n_blocks // n) for n in range(1, most + 1)]
    eligible = [n == 1 or per[n - 1] != per[n - 2] for n in range(1, most + 1)]  # else the same split as n - 1
    eff = [(blocks * n / slots) / math.ceil(blocks * n / slots) if ok else 0.0
           for n, ok in zip(range(1, most + 1), eligible)]
    return next(n for n, ok in zip(range(1, most + 1), eligible) if ok and eff[n - 1] >= 0.85 * max(eff))


@functools.lru_cache(maxsize=65536)
def sdpa_splits(bh: int, s: int, d: int, sm_count: int) -> int:
    """Key splits SDPA's flash forward picks for b*h heads of s query and key tokens (1: the non-split kernel).
    It counts 64-row query blocks against two 128-thread programs per SM."""
    return _splits_heuristic(bh * -(-s // SPLIT_BLOCK_M), 2 * sm_count, -(-s // split_block_n(d)))


def sdpa_even(s, d):
    """Whether shapes run SDPA's bounds-check-free template: s a multiple of the 128-row tile (block_n divides
    128) and a compiled head dim of at most 128 (d: the padded head dim). Works on arrays."""
    s, d = np.asarray(s), np.asarray(d)
    return (np.rint(s).astype(np.int64) % 128 == 0) & (d <= 128)
