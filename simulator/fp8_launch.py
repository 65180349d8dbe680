"""What our FP8 GEMM (kernels/gemm_fp8.py) launches for a shape, restated in plain Python (no triton) so the table
lookup can divide out the waves it causes (simulator.quanta).

`kernels.gemm_fp8.fp8_config` is the source of truth (tests/test_fp8_launch.py checks this copy against it): one
row (m = 1) runs the GEMV kernel, 32 output columns a program, K split while the programs fill under two per SM;
up to 256 rows the pointer kernel, row tiles of 16, 32 or 64 by m, 64 columns, K split while the tiles fill under
one wave; above, the TMA kernel with 128 x 256 tiles. The kernel file itself imports triton, which the simulator
does not need.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fp8Launch:
    """Tile shape, K split and pipeline of one FP8 GEMM launch (the fields of kernels.gemm_fp8.Fp8Config that set
    its programs and their shared memory)."""

    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int
    gemv: bool
    tma: bool

    def programs(self, m: int, n: int) -> int:
        """Programs of an (m, n) product: output tiles times K slices (the GEMV's tiles are 1 x block_n)."""
        rows = 1 if self.gemv else -(-m // self.block_m)
        return rows * -(-n // self.block_n) * self.split_k


def fp8_launch(m: int, n: int, k: int, sm_count: int) -> Fp8Launch:
    """The launch of kernels.gemm_fp8.matmul_fp8 for an (m, n, k) product on `sm_count` SMs."""
    if m > 256:
        return Fp8Launch(128, 256, 128, 1, 8, 3, gemv=False, tma=True)
    if m == 1:
        split = 1
        while -(-n // 32) * split < 2 * sm_count and k // (2 * split) >= 512:
            split *= 2
        return Fp8Launch(1, 32, 512, split, 4, 3, gemv=True, tma=False)
    block_m = min(64, max(16, 1 << (m - 1).bit_length()))
    tiles = -(-m // block_m) * -(-n // 64)
    split = 1
    while tiles * split < sm_count and k // (2 * split) >= 2 * 256:
        split *= 2
    return Fp8Launch(block_m, 64, 256, split, 4, 4, gemv=False, tma=False)


def fp8_k_in_blocks(m, k) -> np.ndarray:
    """Whether K is a whole number of the launch's K blocks (512 for the GEMV, 256 for the pointer kernel; the TMA
    kernel above 256 rows reads past K as zeros, unmasked): a K cut inside a block (falcon-7b's 4544) runs the
    masked loads slower, a table category of its own (docs/decisions.md)."""
    m, k = np.asarray(m), np.asarray(k)
    block_k = np.where(m == 1, 512, 256)
    return (m > 256) | (np.mod(k, block_k) == 0)
