"""4-bit weight-only GEMM C[M, N] = A[M, K] · dequant(W)ᵀ in Triton (the AWQ/GPTQ serving layout's cost).

W holds signed 4-bit values q in [-8, 7] stored as q + 8, two per byte along K (element 2j in the low
nibble, 2j + 1 in the high one): a uint8 tensor (N, K / 2). Scales are per output channel and group of
`group` consecutive K (N, K / group), symmetric: w = (nibble − 8) · scale. The weights are dequantized to
bf16 inside the main loop, so HBM carries half a byte per weight; A and C are bf16, accumulation fp32.
"""
from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl

from kernels.gemm import _tile_of


@dataclass(frozen=True)
class Int4Config:
    """Tile shape of the int4 GEMM (block_k divides the quantization group; split_k: fp32 atomics)."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3


def int4_config(m: int, n: int, k: int, group: int, sm_count: int) -> Int4Config:
    """Default configuration by shape: 128-row tiles for prefill, narrow split-K tiles for decode."""
    block_k = min(128, group)
    if m > 256:
        return Int4Config(128, 128, block_k, num_warps=8, num_stages=3)
    cfg = Int4Config(min(64, max(16, 1 << (m - 1).bit_length())), 64, block_k, group_m=1)
    tiles = -(-m // cfg.block_m) * -(-n // cfg.block_n)
    split = 1
    while tiles * split < sm_count and k // (2 * split) >= 2 * block_k:
        split *= 2
    return Int4Config(cfg.block_m, cfg.block_n, block_k, 1, split, cfg.num_warps, cfg.num_stages)


@triton.jit
def _int4_kernel(
    a_ptr, q_ptr, s_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_qn, stride_qk, stride_sn, stride_sg, stride_cm, stride_cn,
    GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, UPCAST: tl.constexpr,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    rk2 = tl.arange(0, BLOCK_K // 2)
    rnn = (rn % N).to(tl.int64)  # 64-bit row offsets (a large W is past 2^31 bytes)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(pid_k, tl.cdiv(K, BLOCK_K), SPLIT_K):   # K is a multiple of GROUP, GROUP of BLOCK_K
        k0 = kb * BLOCK_K
        a = tl.load(a_ptr + (rm % M).to(tl.int64)[:, None] * stride_am + (k0 + rk)[None, :] * stride_ak)
        packed = tl.load(q_ptr + rnn[:, None] * stride_qn + (k0 // 2 + rk2)[None, :] * stride_qk)
        lo = (packed & 0xF).to(tl.int8) - 8
        hi = (packed >> 4).to(tl.int8) - 8
        q = tl.reshape(tl.join(lo, hi), (BLOCK_N, BLOCK_K))                 # element 2j, 2j + 1 side by side
        scale = tl.load(s_ptr + rnn * stride_sn + (k0 // GROUP) * stride_sg).to(tl.float32)
        w = (q.to(tl.float32) * scale[:, None])
        if UPCAST:
            acc = tl.dot(a.to(tl.float32), tl.trans(w), acc)
        else:
            acc = tl.dot(a, tl.trans(w.to(tl.bfloat16)), acc)
    c_ptrs = c_ptr + rm.to(tl.int64)[:, None] * stride_cm + rn[None, :] * stride_cn
    c_mask = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT_K == 1:
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)
    else:
        tl.atomic_add(c_ptrs, acc, mask=c_mask)


def matmul_int4(a, qweight, scales, *, config: Int4Config | None = None):
    """bf16 C = A · dequant(W)ᵀ: a (M, K) bf16, qweight (N, K/2) uint8, scales (N, K/group) bf16/fp32."""
    import os

    import torch

    if a.dtype != torch.bfloat16 or qweight.dtype != torch.uint8:
        raise ValueError(f"dtypes a={a.dtype}, qweight={qweight.dtype}: use torch.bfloat16 and torch.uint8")
    (m, k), n = a.shape, qweight.shape[0]
    if qweight.shape[1] * 2 != k or k % scales.shape[1]:
        raise ValueError(f"shapes a {tuple(a.shape)}, qweight {tuple(qweight.shape)}, scales {tuple(scales.shape)}: "
                         "qweight must be (N, K/2) and scales (N, K/group)")
    group = k // scales.shape[1]
    cfg = config or int4_config(m, n, k, group, _sm_count(a))
    if group % cfg.block_k or cfg.block_k % 2:
        raise ValueError(f"block_k={cfg.block_k} must be even and divide the group size {group}")
    split = cfg.split_k
    c = (torch.empty((m, n), dtype=torch.bfloat16, device=a.device) if split == 1
         else torch.zeros((m, n), dtype=torch.float32, device=a.device))
    if m == 0 or n == 0:
        return c.to(torch.bfloat16)
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n), split)
    _int4_kernel[grid](
        a, qweight, scales, c, m, n, k,
        a.stride(0), a.stride(1), qweight.stride(0), qweight.stride(1), scales.stride(0), scales.stride(1),
        c.stride(0), c.stride(1),
        GROUP=group, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        SPLIT_K=split, UPCAST=os.environ.get("TRITON_INTERPRET") == "1",
        num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return c if split == 1 else c.to(torch.bfloat16)


def _sm_count(a) -> int:
    from kernels.gemm import sm_count

    return sm_count(a.device)


def quantize_int4(w, group: int = 128):
    """(qweight uint8 (N, K/2), scales fp32 (N, K/group)) of a (N, K) weight: symmetric, per group of K."""
    import torch

    n, k = w.shape
    if k % group or group % 2:
        raise ValueError(f"K={k} must be a multiple of the group size {group} (even)")
    g = w.float().reshape(n, k // group, group)
    scales = (g.abs().amax(dim=2) / 7.0).clamp(min=1e-12)
    q = (torch.round(g / scales[..., None]).clamp(-8, 7) + 8).to(torch.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous(), scales


def dequantize_int4(qweight, scales):
    """The (N, K) float32 weight that `matmul_int4` multiplies by."""
    import torch

    n, half = qweight.shape
    q = torch.stack(((qweight & 0xF), (qweight >> 4)), dim=2).reshape(n, 2 * half).float() - 8.0
    group = 2 * half // scales.shape[1]
    return q * scales.float().repeat_interleave(group, dim=1)


def matmul_int4_ref(a, qweight, scales):
    """Torch reference of `matmul_int4` (float64 on the CPU, float32 on the GPU)."""
    import torch

    acc = torch.float64 if a.device.type == "cpu" else torch.float32
    return a.to(acc) @ dequantize_int4(qweight, scales).to(acc).t()
