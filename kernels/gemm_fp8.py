"""FP8 GEMM C[M, N] = (A[M, K] · W[N, K]ᵀ) · s_a · s_w in Triton, for FP8 (e4m3) weights and activations.

Operands are torch.float8_e4m3fn, W laid out like `nn.Linear.weight`; fp32 accumulation on the tensor cores;
the scales are applied once in the epilogue: s_a per tensor (one value) or per row of A (per token), s_w per
tensor or per row of W (per output channel); the output is bf16. Two kernels: a pointer kernel (any shape,
optional split-K for thin products), a TMA kernel for large products, and a GEMV kernel for one-row products
(no tensor cores: each program reduces its W rows against the row of A, K contiguous). Split-K writes fp32
partials to a workspace and the last split of a tile to arrive (an arrival counter, left at zero) sums them
into C: one launch, no memset or conversion kernel around it. The
launch configuration is passed in (`Fp8Config`); `fp8_config` is the default by shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl

from kernels.gemm import _tile_of


@dataclass(frozen=True)
class Fp8Config:
    """Tile shape and schedule of the FP8 GEMM (tma: tensor-descriptor loads; split_k: K slices summed by the
    last to finish, pointer and GEMV kernels; gemv: the one-row kernel, block_m unused)."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 4
    tma: bool = False
    gemv: bool = False


def fp8_config(m: int, n: int, k: int, sm_count: int) -> Fp8Config:
    """Default configuration by shape: large products on TMA with 128×256 tiles, thin ones on narrow tiles
    with split-K while the (m, n) tiles fill less than a wave."""
    if m > 256:
        return Fp8Config(128, 256, 128, num_warps=8, num_stages=3, tma=True)
    if m == 1:
        split = 1
        while -(-n // 32) * split < 2 * sm_count and k // (2 * split) >= 512:
            split *= 2
        return Fp8Config(1, 32, 512, group_m=1, split_k=split, num_stages=3, gemv=True)
    cfg = Fp8Config(min(64, max(16, 1 << (m - 1).bit_length())), 64, 256, group_m=1, num_warps=4, num_stages=4)
    tiles = -(-m // cfg.block_m) * -(-n // cfg.block_n)
    split = 1
    while tiles * split < sm_count and k // (2 * split) >= 2 * cfg.block_k:
        split *= 2
    return Fp8Config(cfg.block_m, cfg.block_n, cfg.block_k, 1, split, cfg.num_warps, cfg.num_stages)


@triton.jit
def _scale_tile(acc, sa_ptr, sw_ptr, rm, rn, M, N, A_ROWWISE: tl.constexpr, W_ROWWISE: tl.constexpr):
    """acc · s_a · s_w (per-row vectors or per-tensor scalars)."""
    if A_ROWWISE:
        acc = acc * tl.load(sa_ptr + rm % M)[:, None]
    else:
        acc = acc * tl.load(sa_ptr)
    if W_ROWWISE:
        acc = acc * tl.load(sw_ptr + rn % N)[None, :]
    else:
        acc = acc * tl.load(sw_ptr)
    return acc


@triton.jit
def _sum_splits(acc, part_ptr, count_ptr, c_ptrs, offs, mask, tile, split, part_stride, SPLIT_K: tl.constexpr):
    """Store this split's fp32 partial of a tile; the tile's last split to arrive sums all of them into C."""
    tl.store(part_ptr + split * part_stride + offs, acc, mask=mask)
    tl.debug_barrier()  # every thread's partial is stored before the arrival is released
    if tl.atomic_add(count_ptr + tile, 1, sem="acq_rel") == SPLIT_K - 1:
        tl.atomic_xchg(count_ptr + tile, 0)  # zero again for the next launch or graph replay
        total = tl.zeros_like(acc)
        for s in range(SPLIT_K):  # .cg: other SMs wrote the partials, bypass L1
            total += tl.load(part_ptr + s * part_stride + offs, mask=mask, other=0.0, cache_modifier=".cg")
        tl.store(c_ptrs, total.to(c_ptrs.dtype.element_ty), mask=mask)


@triton.jit
def _fp8_kernel(
    a_ptr, w_ptr, c_ptr, sa_ptr, sw_ptr, part_ptr, count_ptr,
    M, N, K,
    stride_am, stride_ak, stride_wn, stride_wk, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr, EVEN_K: tl.constexpr, A_ROWWISE: tl.constexpr, W_ROWWISE: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    # 64-bit row offsets: W of 131,072 x 32,768 FP8 values is past 2^31 bytes
    a_ptrs = a_ptr + (rm % M).to(tl.int64)[:, None] * stride_am + rk[None, :] * stride_ak   # (BLOCK_M, BLOCK_K)
    w_ptrs = w_ptr + rk[:, None] * stride_wk + (rn % N).to(tl.int64)[None, :] * stride_wn   # (BLOCK_K, BLOCK_N)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K * SPLIT_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs)
        else:
            k_left = K - kk * (BLOCK_K * SPLIT_K)
            a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0.0)
            w = tl.load(w_ptrs, mask=rk[:, None] < k_left, other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(a, w, acc)
        a_ptrs += BLOCK_K * SPLIT_K * stride_ak
        w_ptrs += BLOCK_K * SPLIT_K * stride_wk

    acc = _scale_tile(acc, sa_ptr, sw_ptr, rm, rn, M, N, A_ROWWISE, W_ROWWISE)
    c_ptrs = c_ptr + rm.to(tl.int64)[:, None] * stride_cm + rn[None, :] * stride_cn
    c_mask = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT_K == 1:
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)
    else:
        _sum_splits(acc, part_ptr, count_ptr, c_ptrs, rm[:, None] * N + rn[None, :], c_mask, tl.program_id(0),
                    pid_k, M * N, SPLIT_K)


@triton.jit
def _fp8_gemv_kernel(
    a_ptr, w_ptr, c_ptr, sa_ptr, sw_ptr, part_ptr, count_ptr,
    N, K, stride_wn,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr, EVEN_K: tl.constexpr,
    W_ROWWISE: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    w_ptrs = w_ptr + (rn % N).to(tl.int64)[:, None] * stride_wn + rk[None, :]   # (BLOCK_N, BLOCK_K), 64-bit rows
    a_ptrs = a_ptr + rk
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K * SPLIT_K)):
        if EVEN_K:
            w = tl.load(w_ptrs)
            a = tl.load(a_ptrs)
        else:
            k_left = K - kk * (BLOCK_K * SPLIT_K)
            w = tl.load(w_ptrs, mask=rk[None, :] < k_left, other=0.0)
            a = tl.load(a_ptrs, mask=rk < k_left, other=0.0)
        acc += tl.sum(w.to(tl.float32) * a.to(tl.float32)[None, :], axis=1)
        w_ptrs += BLOCK_K * SPLIT_K
        a_ptrs += BLOCK_K * SPLIT_K
    acc = acc * tl.load(sa_ptr)
    if W_ROWWISE:
        acc = acc * tl.load(sw_ptr + rn % N)
    else:
        acc = acc * tl.load(sw_ptr)
    if SPLIT_K == 1:
        tl.store(c_ptr + rn, acc.to(c_ptr.dtype.element_ty), mask=rn < N)
    else:
        _sum_splits(acc, part_ptr, count_ptr, c_ptr + rn, rn, rn < N, pid_n, pid_k, N, SPLIT_K)


@triton.jit
def _fp8_tma_kernel(
    a_desc, w_desc, c_desc, sa_ptr, sw_ptr,
    M, N, K,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    A_ROWWISE: tl.constexpr, W_ROWWISE: tl.constexpr, UPCAST: tl.constexpr,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    off_m = pid_m * BLOCK_M
    off_n = pid_n * BLOCK_N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K)):
        a = a_desc.load([off_m, kk * BLOCK_K])
        w = tl.trans(w_desc.load([off_n, kk * BLOCK_K]))
        if UPCAST:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(a, w, acc)
    rm = off_m + tl.arange(0, BLOCK_M)
    rn = off_n + tl.arange(0, BLOCK_N)
    acc = _scale_tile(acc, sa_ptr, sw_ptr, rm, rn, M, N, A_ROWWISE, W_ROWWISE)
    c_desc.store([off_m, off_n], acc.to(tl.bfloat16))


def _upcast() -> bool:
    """True in Triton's CPU interpreter, whose tl.dot has no FP8 path: operands go to fp32 (exact)."""
    import os

    return os.environ.get("TRITON_INTERPRET") == "1"


def _scales(s, rows: int, name: str):
    """(scale tensor as fp32, rowwise?) — a one-element (per-tensor) or `rows`-long (per-row) scale."""
    import torch

    s = torch.as_tensor(s, dtype=torch.float32).reshape(-1)
    if s.numel() not in (1, rows):
        raise ValueError(f"{name} has {s.numel()} values: give 1 (per tensor) or {rows} (per row)")
    return s.contiguous(), s.numel() == rows and rows > 1


def matmul_fp8(a, w, scale_a, scale_w, *, config: Fp8Config | None = None):
    """bf16 C = (A · Wᵀ) · scale_a · scale_w for FP8 e4m3 A (M, K) and W (N, K); scales per tensor or per row."""
    import torch

    if a.dtype != torch.float8_e4m3fn or w.dtype != torch.float8_e4m3fn:
        raise ValueError(f"dtypes a={a.dtype}, w={w.dtype}: both must be torch.float8_e4m3fn")
    if a.dim() != 2 or w.dim() != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"a (M, K) and w (N, K) with equal K expected, got {tuple(a.shape)} and {tuple(w.shape)}")
    (m, k), n = a.shape, w.shape[0]
    sa, a_rows = _scales(scale_a, m, "scale_a")
    sw, w_rows = _scales(scale_w, n, "scale_w")
    sa, sw = sa.to(a.device), sw.to(a.device)
    if m == 0 or n == 0 or k == 0:
        return torch.zeros((m, n), dtype=torch.bfloat16, device=a.device)
    cfg = config or fp8_config(m, n, k, _sm_count(a))
    c = torch.empty((m, n), dtype=torch.bfloat16, device=a.device)
    if cfg.tma and _tma_ok(a, w, n):
        from triton.tools.tensor_descriptor import TensorDescriptor

        grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n),)
        _fp8_tma_kernel[grid](
            TensorDescriptor.from_tensor(a, [cfg.block_m, cfg.block_k]),
            TensorDescriptor.from_tensor(w, [cfg.block_n, cfg.block_k]),
            TensorDescriptor.from_tensor(c, [cfg.block_m, cfg.block_n]), sa, sw, m, n, k,
            BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
            A_ROWWISE=a_rows, W_ROWWISE=w_rows, UPCAST=_upcast(),
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        return c
    if cfg.gemv and m == 1 and a.stride(1) == 1 and w.stride(1) == 1:
        grid = (triton.cdiv(n, cfg.block_n), cfg.split_k)
        _fp8_gemv_kernel[grid](
            a, w, c, sa, sw, *_split_buffers(a.device, cfg.split_k, n, grid[0]), n, k, w.stride(0),
            BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, SPLIT_K=cfg.split_k,
            EVEN_K=(k % (cfg.block_k * cfg.split_k) == 0), W_ROWWISE=w_rows,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        return c
    split = 1 if cfg.tma else cfg.split_k
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n), split)
    _fp8_kernel[grid](
        a, w, c, sa, sw, *_split_buffers(a.device, split, m * n, grid[0]), m, n, k,
        a.stride(0), a.stride(1), w.stride(0), w.stride(1), c.stride(0), c.stride(1),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, SPLIT_K=split,
        EVEN_K=(k % (cfg.block_k * split) == 0), A_ROWWISE=a_rows, W_ROWWISE=w_rows, UPCAST=_upcast(),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return c


_SPLIT_BUFFERS: dict = {}  # device -> [(fp32 workspace, int32 counters)]; old ones kept for captured graphs.
# One workspace per device: split-K calls on one stream run one after another (not for concurrent streams).


def _split_buffers(device, split: int, elems: int, tiles: int):
    """(fp32 partials of `split` x `elems`, zeroed int32 arrival counters for `tiles` tiles) on `device`, reused
    across calls; the kernel leaves the counters zero."""
    import torch

    held = _SPLIT_BUFFERS.setdefault(str(device), [])
    need = (split * elems if split > 1 else 1, tiles)
    if not held or held[-1][0].numel() < need[0] or held[-1][1].numel() < need[1]:
        size = [max(need[0], held[-1][0].numel() if held else 0), max(need[1], 4096)]
        held.append((torch.empty(size[0], dtype=torch.float32, device=device),
                     torch.zeros(size[1], dtype=torch.int32, device=device)))
    return held[-1]


def _sm_count(a) -> int:
    from kernels.gemm import sm_count

    return sm_count(a.device)


def _tma_ok(a, w, n: int) -> bool:
    """TMA needs contiguous rows, 16-byte aligned bases and row strides, and bf16 output rows of 16 bytes."""
    return (a.stride(1) == 1 and w.stride(1) == 1 and n % 8 == 0
            and all(x.data_ptr() % 16 == 0 and x.stride(0) % 16 == 0 for x in (a, w)))


def quantize_fp8(x, rowwise: bool = False):
    """(x as float8_e4m3fn, its scale): per tensor, or per row with rowwise=True; x ≈ q · scale."""
    import torch

    amax = (x.abs().amax(dim=1, keepdim=True) if rowwise else x.abs().amax()).float().clamp(min=1e-12)
    scale = amax / torch.finfo(torch.float8_e4m3fn).max
    q = (x.float() / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q, scale.reshape(-1)


def matmul_fp8_ref(a, w, scale_a, scale_w):
    """Torch reference of `matmul_fp8` in float32 (float64 on the CPU)."""
    import torch

    acc = torch.float64 if a.device.type == "cpu" else torch.float32
    sa = torch.as_tensor(scale_a, dtype=acc, device=a.device).reshape(-1)
    sw = torch.as_tensor(scale_w, dtype=acc, device=a.device).reshape(-1)
    out = a.to(acc) @ w.to(acc).t()
    return out * (sa[:, None] if sa.numel() > 1 else sa) * (sw[None, :] if sw.numel() > 1 else sw)
