"""Per-row (per-token) FP8 quantization of GEMM activations in Triton: x (T, K) -> q (T, K) e4m3, scale (T,) fp32.

What an FP8 w8a8 linear runs before each `kernels.gemm_fp8.matmul_fp8` (row scales of A): one program per row
reads the row once for its absolute maximum and once more to scale, round and store it (the second read mostly
hits L1/L2), and writes the row's scale amax / 448 (e4m3's largest finite value), so x ≈ q · scale. The torch
reference is `kernels.gemm_fp8.quantize_fp8(x, rowwise=True)`, which this matches value for value.
"""
from __future__ import annotations

import triton
import triton.language as tl

E4M3_MAX = 448.0  # largest finite float8_e4m3fn value
AMAX_FLOOR = 1e-12  # an all-zero row keeps a finite scale (as quantize_fp8 clamps it)
BLOCK = 2048  # columns per loop iteration


@triton.jit
def _quant_rows_kernel(
    # pointers
    x_ptr, q_ptr, s_ptr,
    # sizes and strides (the K dim is contiguous)
    K, stride_x, stride_q,
    # meta-parameters
    BLOCK: tl.constexpr, FMAX: tl.constexpr, FLOOR: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    amax = tl.zeros((BLOCK,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK):
        x = tl.load(x_ptr + row * stride_x + k0 + cols, mask=k0 + cols < K, other=0.0)
        amax = tl.maximum(amax, tl.abs(x.to(tl.float32)))
    scale = tl.maximum(tl.max(amax, axis=0), FLOOR) / FMAX
    tl.store(s_ptr + row, scale)
    for k0 in range(0, K, BLOCK):
        mask = k0 + cols < K
        x = tl.load(x_ptr + row * stride_x + k0 + cols, mask=mask, other=0.0).to(tl.float32)
        q = tl.clamp(x / scale, -FMAX, FMAX)
        tl.store(q_ptr + row * stride_q + k0 + cols, q.to(q_ptr.dtype.element_ty), mask=mask)


def quantize_rows(x):
    """(q, scale): x (T, K) (bf16, fp16 or fp32, K contiguous) as float8_e4m3fn with one fp32 scale per row,
    x ≈ q · scale[:, None]."""
    import torch

    if x.dim() != 2 or x.stride(-1) != 1:
        raise ValueError(f"quantize_rows: x {tuple(x.shape)} must be 2-D (T, K) with a contiguous last dim")
    t, k = x.shape
    q = torch.empty((t, k), dtype=torch.float8_e4m3fn, device=x.device)
    scale = torch.empty((t,), dtype=torch.float32, device=x.device)
    if t and k:
        block = min(BLOCK, triton.next_power_of_2(k))
        _quant_rows_kernel[(t,)](x, q, scale, k, x.stride(0), q.stride(0), BLOCK=block, FMAX=E4M3_MAX,
                                 FLOOR=AMAX_FLOOR, num_warps=min(8, max(1, block // 256)))
    return q, scale


def quantize_rows_ref(x):
    """Torch reference of `quantize_rows`: `kernels.gemm_fp8.quantize_fp8` with per-row scales."""
    from kernels.gemm_fp8 import quantize_fp8

    return quantize_fp8(x, rowwise=True)
