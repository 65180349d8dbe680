"""GEMM C[M, N] = A[M, K] · W for the reference engine's linear layers, in Triton.

bf16 or fp16 operands, fp32 accumulation, output in the input dtype; any M, N, K (edges masked);
W stored as (N, K) like `nn.Linear.weight` ("nk") or as (K, N) ("kn").  The launch configuration is a
pure function of the shape (`kernels.configs.gemm_config`), so nothing is timed at call time and the
kernel can be captured in a CUDA graph after its first (compiling) call.  Small M narrows the N
tiles, and past that splits K over programs (fp32 atomics into a zeroed buffer), when the tiles would
leave SMs idle.  Large products load tiles through TMA tensor descriptors (`_matmul_tma_kernel`) when
the strides allow.
"""
from __future__ import annotations

import functools
import os

import triton
import triton.language as tl

from kernels.configs import GemmConfig, gemm_config


@triton.jit
def _tile_of(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(row tile, column tile) of program pid in grouped order: GROUP_M row tiles in turn take each
    column tile, so its B tile is read from HBM once and from L2 by the rest of the group."""
    grid_m = tl.cdiv(M, BLOCK_M)
    width = GROUP_M * tl.cdiv(N, BLOCK_N)
    group_id = pid // width
    group_size = min(grid_m - group_id * GROUP_M, GROUP_M)
    return group_id * GROUP_M + (pid % width) % group_size, (pid % width) // group_size


@triton.jit
def _matmul_kernel(
    # pointers
    a_ptr, b_ptr, c_ptr,
    # sizes
    M, N, K,
    # strides (B is addressed as (K, N) whatever its layout in memory)
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, EVEN_K: tl.constexpr, UPCAST: tl.constexpr,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    # rows/cols past the edge wrap onto valid ones (read, never stored): no masks in the loop
    ram = rm % M
    rbn = rn % N
    a_ptrs = a_ptr + ram[:, None] * stride_am + rk[None, :] * stride_ak   # (BLOCK_M, BLOCK_K)
    b_ptrs = b_ptr + rk[:, None] * stride_bk + rbn[None, :] * stride_bn   # (BLOCK_K, BLOCK_N)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K * SPLIT_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_left = K - kk * (BLOCK_K * SPLIT_K)
            a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0.0)
        if UPCAST:      # CPU interpreter only: see dot_upcast
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K * SPLIT_K * stride_ak
        b_ptrs += BLOCK_K * SPLIT_K * stride_bk

    c_ptrs = c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn
    c_mask = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT_K == 1:
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)
    else:
        tl.atomic_add(c_ptrs, acc, mask=c_mask)


@triton.jit
def _matmul_tma_kernel(
    # tensor descriptors (TMA: bounds-checked bulk copies, out-of-range reads as zero, stores clipped)
    a_desc, b_desc, c_desc,
    # sizes
    M, N, K,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, B_NK: tl.constexpr, OUT_BF16: tl.constexpr, UPCAST: tl.constexpr,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    off_m = pid_m * BLOCK_M
    off_n = pid_n * BLOCK_N

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K)):
        a = a_desc.load([off_m, kk * BLOCK_K])                         # (BLOCK_M, BLOCK_K)
        if B_NK:
            b = tl.trans(b_desc.load([off_n, kk * BLOCK_K]))           # (BLOCK_N, BLOCK_K) -> (BLOCK_K, BLOCK_N)
        else:
            b = b_desc.load([kk * BLOCK_K, off_n])                     # (BLOCK_K, BLOCK_N)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
    c_desc.store([off_m, off_n], acc.to(tl.bfloat16 if OUT_BF16 else tl.float16))


def dot_upcast(dtype) -> bool:
    """True when tl.dot must see fp32 operands: Triton 3.9's CPU interpreter multiplies bf16 bit
    patterns as integers; bf16 products are exact in fp32, so the upcast keeps the GPU's numerics."""
    import torch

    return dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    import torch

    return torch.cuda.get_device_properties(device_index).multi_processor_count


def sm_count(device) -> int:
    """Multiprocessors of `device` (132 for a CPU tensor: the interpreter's stand-in, an H100)."""
    return _sm_count(device.index or 0) if device.type == "cuda" else 132


def _check(a, w, w_layout: str) -> tuple[int, int, int]:
    """Validate operands; return (M, N, K)."""
    import torch

    if w_layout not in ("nk", "kn"):
        raise ValueError(f"w_layout={w_layout!r}: use 'nk' (nn.Linear weight, (N, K)) or 'kn' ((K, N))")
    if a.dim() != 2 or w.dim() != 2:
        raise ValueError(f"a and w must be 2-D (got a {tuple(a.shape)}, w {tuple(w.shape)}); flatten batch dims first")
    if a.dtype not in (torch.bfloat16, torch.float16) or w.dtype != a.dtype:
        raise ValueError(f"dtypes a={a.dtype}, w={w.dtype}: both must be torch.bfloat16 or both torch.float16")
    m, k = a.shape
    n, kw = (w.shape if w_layout == "nk" else (w.shape[1], w.shape[0]))
    if kw != k:
        raise ValueError(f"inner sizes differ: a has K={k}, w ({w_layout}) has K={kw}; pass matching weights")
    if a.device != w.device:
        raise ValueError(f"a on {a.device}, w on {w.device}: put both on one device")
    return m, n, k


def matmul(a, w, *, w_layout: str = "nk", config: GemmConfig | None = None):
    """C = A · Wᵀ (w_layout "nk") or A · W ("kn"); a (M, K), c (M, N) in a's dtype, fp32 accumulate.

    `config` overrides the shape-bucket choice (used by the variant sweep of the benchmark).
    """
    import torch

    m, n, k = _check(a, w, w_layout)
    if m == 0 or n == 0:
        return torch.empty((m, n), dtype=a.dtype, device=a.device)
    if k == 0:
        return torch.zeros((m, n), dtype=a.dtype, device=a.device)
    cfg = config or gemm_config(m, n, k, sm_count(a.device), w_layout)
    if cfg.tma and _tma_ok(a, w, n):
        return _matmul_tma(a, w, w_layout, m, n, k, cfg)
    # W addressed as (K, N): "nk" is its transpose view
    stride_bk, stride_bn = (w.stride(1), w.stride(0)) if w_layout == "nk" else (w.stride(0), w.stride(1))
    if cfg.split_k == 1:
        c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    else:
        c = torch.zeros((m, n), dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n), cfg.split_k)
    _matmul_kernel[grid](
        a, w, c, m, n, k,
        a.stride(0), a.stride(1), stride_bk, stride_bn, c.stride(0), c.stride(1),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        GROUP_M=cfg.group_m, SPLIT_K=cfg.split_k, EVEN_K=(k % (cfg.block_k * cfg.split_k) == 0),
        UPCAST=dot_upcast(a.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return c if cfg.split_k == 1 else c.to(a.dtype)


def _tma_ok(a, w, n: int) -> bool:
    """TMA needs a contiguous last dim, 16-byte aligned bases and row strides (else: pointer kernel)."""
    return (a.stride(1) == 1 and w.stride(1) == 1 and n % 8 == 0
            and all(x.data_ptr() % 16 == 0 and x.stride(0) % 8 == 0 for x in (a, w)))


def _matmul_tma(a, w, w_layout: str, m: int, n: int, k: int, cfg: GemmConfig):
    """Launch the TMA kernel: descriptors built on the host, one program per output tile."""
    import torch
    from triton.tools.tensor_descriptor import TensorDescriptor

    c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    b_block = [cfg.block_n, cfg.block_k] if w_layout == "nk" else [cfg.block_k, cfg.block_n]
    _matmul_tma_kernel[(triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n),)](
        TensorDescriptor.from_tensor(a, [cfg.block_m, cfg.block_k]), TensorDescriptor.from_tensor(w, b_block),
        TensorDescriptor.from_tensor(c, [cfg.block_m, cfg.block_n]), m, n, k,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        B_NK=(w_layout == "nk"), OUT_BF16=(a.dtype == torch.bfloat16), UPCAST=dot_upcast(a.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return c


def matmul_ref(a, w, w_layout: str = "nk"):
    """Plain torch reference of `matmul`, computed in float64 on a's device (CPU) or float32 (GPU)."""
    import torch

    acc = torch.float64 if a.device.type == "cpu" else torch.float32
    wk = w.to(acc).t() if w_layout == "nk" else w.to(acc)   # (K, N)
    return a.to(acc) @ wk


def gemm_flops(m: int, n: int, k: int) -> int:
    """Floating-point operations of one (m, n, k) product (a multiply-add counts 2)."""
    return 2 * m * n * k


def gemm_bytes(m: int, n: int, k: int, itemsize: int = 2) -> int:
    """Fewest bytes one (m, n, k) product moves: read A and W once, write C once."""
    return itemsize * (m * k + n * k + m * n)
