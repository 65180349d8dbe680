"""Routed experts of a MoE layer as grouped GEMMs (fused-MoE style), in Triton, beside a torch reference.

An ideal engine reads each touched expert's weights once per step and runs all tokens of an expert
together. Here the (token, slot) pairs are sorted by expert and padded to whole blocks of rows
(`moe_align`, Triton: one launch at decode sizes, a zeroing and two above; static sizes, no host sync;
`moe_align_ref` is the torch version); one launch per projection then runs every
(row block, N tile) against the one expert that owns the block (`grouped_matmul`): the first projection
gathers token rows of x, the second reads its input in flat-slot order and can scale each row by its
routing weight, so the combine is a plain `.view(T, k, H).sum(1)` (deterministic, no atomics).
`moe_ffn` is the whole routed FFN; `moe_ffn_ref` loops over experts in torch. Launch configurations are a
pure function of the shape (`kernels.configs.moe_config`): the path is dropless and CUDA-graph capturable
after one compiling call, for any token count. The routing before it is kernels/routing.py.

Flat slot: s = token * k + j for the j-th expert of a token; T*k slots in all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import triton
import triton.language as tl

from kernels.configs import MOE_CONFIGS, MoeConfig, moe_config
from kernels.gemm import dot_upcast

if TYPE_CHECKING:
    import torch

KINDS = ("swiglu", "gelu")


def padded_rows(n_slots: int, n_experts: int, block_m: int) -> int:
    """Static upper bound P of the aligned rows: each of at most min(E, T*k) touched experts pads its
    slots by < block_m rows, rounded up to whole blocks (so no count is read back to the host)."""
    rows = n_slots + min(n_experts, n_slots) * (block_m - 1)
    return -(-rows // block_m) * block_m


def _check_align(idx, n_experts: int, block_m: int) -> None:
    import torch

    if idx.dim() != 2 or idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"moe_align: idx {tuple(idx.shape)} {idx.dtype}: pass (T, k) int32/int64 expert ids")
    if n_experts < 1 or block_m < 1:
        raise ValueError(f"moe_align: n_experts={n_experts}, block_m={block_m}: both must be >= 1")


# moe_align's kernels. ws (2E + 1,) int32: per-expert counts (then cursors), first rows, arrival ticket.
ALIGN_BLOCK = 1024  # slots (and sorted rows) per program and loop step
ALIGN_ONE_PROGRAM = 2048  # up to this many slots (T*k) one program aligns alone: one launch, no zeroing


@triton.jit
def _align_count(idx_ptr, counts_ptr, sorted_ptr, lo, n_slots, n_rows, n_experts, BLOCK: tl.constexpr):
    """Slots [lo, lo + BLOCK): count each one's expert (atomics); fill sorted rows [lo, lo + BLOCK) with the
    sentinel n_slots (the scatter overwrites the real ones). Ids outside [0, n_experts) are skipped."""
    s = lo + tl.arange(0, BLOCK)
    e = tl.load(idx_ptr + s, mask=s < n_slots, other=-1)
    tl.atomic_add(counts_ptr + e, 1, mask=(e >= 0) & (e < n_experts), sem="relaxed")
    tl.store(sorted_ptr + s, tl.zeros((BLOCK,), tl.int32) + n_slots, mask=s < n_rows)


@triton.jit
def _align_plan(counts_ptr, start_ptr, block_expert_ptr, n_experts, n_blocks,
                BLOCK_M: tl.constexpr, E_PAD: tl.constexpr, BLOCK: tl.constexpr):
    """Whole blocks per expert -> its first aligned row (exclusive cumsum) into start; -1 for every block
    past the used ones (the scatter writes the used blocks' experts: each starts with a real slot)."""
    e = tl.arange(0, E_PAD)
    count = tl.load(counts_ptr + e, mask=e < n_experts, other=0, cache_modifier=".cg")  # (E_PAD,) other SMs' atomics
    blocks = (count + BLOCK_M - 1) // BLOCK_M
    ends = tl.cumsum(blocks, 0)  # (E_PAD,) one past each expert's last block
    tl.store(start_ptr + e, (ends - blocks) * BLOCK_M, mask=e < n_experts)
    used = tl.sum(blocks, 0)
    for b0 in range(0, n_blocks, BLOCK):
        b = b0 + tl.arange(0, BLOCK)
        tl.store(block_expert_ptr + b, tl.zeros((BLOCK,), tl.int32) - 1, mask=(b >= used) & (b < n_blocks))


@triton.jit
def _align_scatter(idx_ptr, counts_ptr, start_ptr, sorted_ptr, block_expert_ptr, lo, n_slots, n_experts,
                   BLOCK_M: tl.constexpr, BLOCK: tl.constexpr):
    """Slots [lo, lo + BLOCK) to their rows: start[e] + (slots of e not yet placed, counted down by atomics);
    the row's block gets expert e. The order within an expert is whatever the atomics make it."""
    s = lo + tl.arange(0, BLOCK)
    e = tl.load(idx_ptr + s, mask=s < n_slots, other=-1)
    ok = (e >= 0) & (e < n_experts)
    left = tl.atomic_add(counts_ptr + e, -1, mask=ok, sem="relaxed")  # this slot included: >= 1
    row = tl.load(start_ptr + e, mask=ok, other=0, cache_modifier=".cg") + left - 1
    tl.store(sorted_ptr + row, s, mask=ok)
    tl.store(block_expert_ptr + row // BLOCK_M, e.to(tl.int32), mask=ok)


@triton.jit
def _moe_align_kernel(
    # pointers: idx (T*k,) expert ids; ws (2E + 1,) int32; outputs (P,), (P / BLOCK_M,) int32
    idx_ptr, ws_ptr, sorted_ptr, block_expert_ptr,
    # sizes: T*k slots (the sentinel), P rows, E experts, P / BLOCK_M blocks
    n_slots, n_rows, n_experts, n_blocks,
    # meta-parameters
    BLOCK_M: tl.constexpr, E_PAD: tl.constexpr, BLOCK: tl.constexpr, ONE_PROGRAM: tl.constexpr,
):
    counts_ptr = ws_ptr
    start_ptr = ws_ptr + n_experts
    if ONE_PROGRAM:  # zero, count, plan, scatter; each barrier orders one phase's global writes before the next
        e = tl.arange(0, E_PAD)
        tl.store(counts_ptr + e, tl.zeros((E_PAD,), tl.int32), mask=e < n_experts)
        tl.debug_barrier()
        for lo in range(0, n_rows, BLOCK):
            _align_count(idx_ptr, counts_ptr, sorted_ptr, lo, n_slots, n_rows, n_experts, BLOCK)
        tl.debug_barrier()
        _align_plan(counts_ptr, start_ptr, block_expert_ptr, n_experts, n_blocks, BLOCK_M, E_PAD, BLOCK)
        tl.debug_barrier()
        for lo in range(0, n_slots, BLOCK):
            _align_scatter(idx_ptr, counts_ptr, start_ptr, sorted_ptr, block_expert_ptr, lo, n_slots, n_experts,
                           BLOCK_M, BLOCK)
    else:  # counts zeroed by the caller; the last program to finish counting plans, a second launch scatters
        _align_count(idx_ptr, counts_ptr, sorted_ptr, tl.program_id(0) * BLOCK, n_slots, n_rows, n_experts, BLOCK)
        tl.debug_barrier()  # every thread's count atomics precede the release of the ticket
        if tl.atomic_add(ws_ptr + 2 * n_experts, 1, sem="acq_rel") == tl.num_programs(0) - 1:
            _align_plan(counts_ptr, start_ptr, block_expert_ptr, n_experts, n_blocks, BLOCK_M, E_PAD, BLOCK)


@triton.jit
def _moe_align_scatter_kernel(idx_ptr, ws_ptr, sorted_ptr, block_expert_ptr, n_slots, n_experts,
                              BLOCK_M: tl.constexpr, BLOCK: tl.constexpr):
    _align_scatter(idx_ptr, ws_ptr, ws_ptr + n_experts, sorted_ptr, block_expert_ptr, tl.program_id(0) * BLOCK,
                   n_slots, n_experts, BLOCK_M, BLOCK)


def moe_align(idx: "torch.Tensor", n_experts: int, block_m: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Sort flat slots by expert into blocks of block_m rows -> sorted_slots (P,), block_expert (P/block_m,), int32.

    Each expert's slots are contiguous and padded with the sentinel T*k to whole blocks, experts in
    id order; block_expert is the expert of each block, -1 past the used blocks. Static sizes
    (`padded_rows`), no host sync, graph-capturable. Triton: up to ALIGN_ONE_PROGRAM slots one program
    does it all (one launch); above, a zeroed workspace, a counting launch (its last program turns the
    counts into each expert's first row) and a scattering launch. Expert ids outside [0, n_experts) are
    skipped (their rows are never written).

    The order of slots within an expert is not deterministic (atomics); no result depends on it:
    grouped_matmul computes each row from its own slot's input and its block's expert alone (the same
    K loop for every row of a tile) and stores it at its flat slot, and the combine sums a token's k rows
    in slot order, so moe_ffn is bitwise the same for any order (`moe_align_ref` keeps token order).
    """
    import torch

    _check_align(idx, n_experts, block_m)
    n = idx.numel()
    p = padded_rows(n, n_experts, block_m)
    sorted_slots = torch.empty((p,), dtype=torch.int32, device=idx.device)  # (P,)
    block_expert = torch.empty((p // block_m,), dtype=torch.int32, device=idx.device)  # (P / block_m,)
    if n == 0:
        return sorted_slots, block_expert
    flat = idx.reshape(-1)  # (T*k,) a view when idx is contiguous
    one = n <= ALIGN_ONE_PROGRAM
    ws = (torch.empty if one else torch.zeros)((2 * n_experts + 1,), dtype=torch.int32, device=idx.device)
    meta = dict(BLOCK_M=block_m, BLOCK=ALIGN_BLOCK)
    _moe_align_kernel[(1 if one else triton.cdiv(p, ALIGN_BLOCK),)](
        flat, ws, sorted_slots, block_expert, n, p, n_experts, p // block_m,
        E_PAD=triton.next_power_of_2(n_experts), ONE_PROGRAM=one, **meta)
    if not one:
        _moe_align_scatter_kernel[(triton.cdiv(n, ALIGN_BLOCK),)](flat, ws, sorted_slots, block_expert, n,
                                                                  n_experts, **meta)
    return sorted_slots, block_expert


def moe_align_ref(idx: "torch.Tensor", n_experts: int, block_m: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Plain torch reference of `moe_align` (its implementation before the Triton kernels): the same outputs,
    with each expert's slots in token order. One stable sort and 15 small ops (21 GPU kernels on the H100,
    benchmarks/results/moe_sweep_h100.json), no host sync. Expert ids must lie in [0, n_experts)."""
    import torch

    _check_align(idx, n_experts, block_m)
    n = idx.numel()
    p = padded_rows(n, n_experts, block_m)
    expert, order = torch.sort(idx.reshape(-1).long(), stable=True)  # (T*k,) flat slots sorted by expert
    pos = torch.arange(-1, max(n, p // block_m, n_experts + 1), device=idx.device)  # one arange, three views
    start = torch.searchsorted(expert, pos[:n_experts + 2])  # (E+2,) [0, s_0, .., s_E]: s_e slots before expert e
    blocks = (start[1:] + (block_m - 1)).sub_(start[:-1]) // block_m  # (E+1,) [0, blocks of each expert]
    block_start = torch.cumsum(blocks, 0)  # (E+1,) first block of each expert, then one past the last used
    back = torch.sub(start[1:-1], block_start[:-1], alpha=block_m)  # (E,) s_e - first aligned row of e
    dest = pos[1:n + 1] - back[expert]  # (T*k,) aligned row of each sorted slot (its rank within e kept)
    sorted_slots = torch.full((p,), n, dtype=torch.int32, device=idx.device).scatter_(0, dest, order.to(torch.int32))
    owner = torch.searchsorted(block_start[1:], pos[1:p // block_m + 1], right=True, out_int32=True)  # E = unused
    return sorted_slots, owner.masked_fill_(owner >= n_experts, -1)  # (P,), (P / block_m,)


@triton.jit
def _grouped_matmul_kernel(
    # pointers
    x_ptr, w_ptr, out_ptr, slots_ptr, block_expert_ptr, scale_ptr,
    # sizes (n_slots = T*k: the flat slots, and the padding sentinel)
    N, K, n_slots,
    # strides (x (rows, K); w (E, N, K), addressed per expert as (K, N); out (n_slots, N))
    stride_xm, stride_xk, stride_we, stride_wn, stride_wk, stride_om, stride_on,
    # meta-parameters
    GATHER_K: tl.constexpr, HAS_SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0)  # row block: one expert's (adjacent blocks share its weight tiles in L2)
    pid_n = tl.program_id(1)
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if expert < 0:  # past the used blocks
        return
    slots = tl.load(slots_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))  # (BLOCK_M,) flat slot or sentinel
    valid = slots < n_slots
    rows = tl.where(valid, slots // GATHER_K, 0).to(tl.int64)  # row of x: the token (gather) or the slot
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    rbn = rn % N  # columns past the edge wrap onto valid ones (read, never stored)
    a_ptrs = x_ptr + rows[:, None] * stride_xm + rk[None, :] * stride_xk  # (BLOCK_M, BLOCK_K)
    b_ptrs = w_ptr + expert * stride_we + rk[:, None] * stride_wk + rbn[None, :] * stride_wn  # (BLOCK_K, BLOCK_N)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs, mask=valid[:, None], other=0.0)
            b = tl.load(b_ptrs)
        else:
            k_left = K - kk * BLOCK_K
            a = tl.load(a_ptrs, mask=valid[:, None] & (rk[None, :] < k_left), other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0.0)
        if UPCAST:  # CPU interpreter only: see kernels.gemm.dot_upcast
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K * stride_xk
        b_ptrs += BLOCK_K * stride_wk

    if HAS_SCALE:  # routing weight of each slot
        acc = acc * tl.load(scale_ptr + slots, mask=valid, other=0.0).to(tl.float32)[:, None]
    out_ptrs = out_ptr + slots.to(tl.int64)[:, None] * stride_om + rn[None, :] * stride_on
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=valid[:, None] & (rn[None, :] < N))


def _check_grouped(x, w, sorted_slots, block_expert, gather_k, row_scale) -> tuple[int, int]:
    """Validate grouped_matmul's operands; return (n_slots, block_m)."""
    import torch

    if x.dim() != 2 or w.dim() != 3:
        raise ValueError(f"grouped_matmul: x {tuple(x.shape)}, w {tuple(w.shape)}: pass x (rows, K) and w (E, N, K)")
    if x.dtype not in (torch.bfloat16, torch.float16) or w.dtype != x.dtype:
        raise ValueError(f"grouped_matmul: dtypes x={x.dtype}, w={w.dtype}: both torch.bfloat16 or both torch.float16")
    if w.shape[2] != x.shape[1]:
        raise ValueError(f"grouped_matmul: x has K={x.shape[1]}, w (E, N, K) has K={w.shape[2]}; pass matching weights")
    if gather_k is not None and gather_k < 1:
        raise ValueError(f"grouped_matmul: gather_k={gather_k}; use k >= 1 (gather token rows) or None (slot order)")
    for name, t in (("sorted_slots", sorted_slots), ("block_expert", block_expert)):
        if t.dim() != 1 or t.dtype != torch.int32:
            raise ValueError(f"grouped_matmul: {name} {tuple(t.shape)} {t.dtype}: pass moe_align's 1-D int32 output")
    nb, p = block_expert.shape[0], sorted_slots.shape[0]
    block_m = p // nb if nb else 16
    if nb and (p % nb or block_m < 16 or block_m & (block_m - 1)):
        raise ValueError(f"grouped_matmul: {p} sorted slots in {nb} blocks: moe_align's block_m must be a power of "
                        "two >= 16")
    n_slots = x.shape[0] * (gather_k or 1)
    if row_scale is not None and row_scale.shape != (n_slots,):
        raise ValueError(f"grouped_matmul: row_scale {tuple(row_scale.shape)}: pass one weight per flat slot "
                        f"({n_slots},)")
    if any(t.device != x.device for t in (w, sorted_slots, block_expert)):
        raise ValueError("grouped_matmul: put x, w, sorted_slots and block_expert on one device")
    return n_slots, block_m


def grouped_matmul(x: "torch.Tensor", w: "torch.Tensor", sorted_slots: "torch.Tensor", block_expert: "torch.Tensor",
                   *, gather_k: int | None, row_scale: "torch.Tensor | None" = None,
                   config: MoeConfig | None = None) -> "torch.Tensor":
    """out[s] = A[s] · w[expert(s)]ᵀ for every flat slot s, one launch: (T*k, N) in x's dtype, fp32 accumulate.

    A[s] = x[s // gather_k] (x (T, K): the first projection gathers token rows) or, with gather_k None,
    x[s] (x (T*k, K) already in slot order). w (E, N, K), nn.Linear layout per expert. sorted_slots and
    block_expert come from `moe_align`; its block_m is taken from their sizes. row_scale (T*k,) multiplies
    each output row (the routing weights). `config` overrides the table's tiles (its block_m must match).
    """
    import torch

    n_slots, block_m = _check_grouped(x, w, sorted_slots, block_expert, gather_k, row_scale)
    n, k = w.shape[1], w.shape[2]
    cfg = config or MOE_CONFIGS.get(block_m) or MoeConfig(block_m, 64, 64)
    if cfg.block_m != block_m:
        raise ValueError(f"grouped_matmul: config.block_m={cfg.block_m} but moe_align used {block_m}; align with the "
                        "config's block_m")
    out = torch.empty((n_slots, n), dtype=x.dtype, device=x.device)
    if n_slots == 0 or n == 0 or block_expert.shape[0] == 0:
        return out
    if k == 0:
        return out.zero_()
    scale = row_scale.contiguous() if row_scale is not None else out
    grid = (block_expert.shape[0], triton.cdiv(n, cfg.block_n))
    _grouped_matmul_kernel[grid](
        x, w, out, sorted_slots.contiguous(), block_expert.contiguous(), scale,
        n, k, n_slots,
        x.stride(0), x.stride(1), w.stride(0), w.stride(1), w.stride(2), out.stride(0), out.stride(1),
        GATHER_K=gather_k or 1, HAS_SCALE=row_scale is not None,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, EVEN_K=(k % cfg.block_k == 0),
        UPCAST=dot_upcast(x.dtype), num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out


def _check_ffn(x, w_up, w2, weights, idx, kind) -> None:
    """Validate moe_ffn's operands (shapes and kind; dtypes are checked by grouped_matmul)."""
    if kind not in KINDS:
        raise ValueError(f"moe_ffn: kind={kind!r}; use 'swiglu' or 'gelu'")
    if x.dim() != 2 or w_up.dim() != 3 or w2.dim() != 3:
        raise ValueError(f"moe_ffn: x {tuple(x.shape)}, w_up {tuple(w_up.shape)}, w2 {tuple(w2.shape)}: pass x (T, H), "
                        "w_up (E, U, H), w2 (E, H, F)")
    e, u, h = w_up.shape
    f = w2.shape[2]
    if w2.shape[:2] != (e, h) or u != (2 if kind == "swiglu" else 1) * f:
        raise ValueError(f"moe_ffn: w_up {tuple(w_up.shape)}, w2 {tuple(w2.shape)} ({kind}): w2 must be (E, H, F) with "
                        "U = 2F for swiglu ([gate; up] rows), U = F for gelu")
    if idx.dim() != 2 or idx.shape[0] != x.shape[0] or weights.shape != idx.shape:
        raise ValueError(f"moe_ffn: idx {tuple(idx.shape)}, weights {tuple(weights.shape)} for x {tuple(x.shape)}: "
                        "pass (T, k) expert ids and routing weights")


def moe_ffn(x: "torch.Tensor", w_up: "torch.Tensor", w2: "torch.Tensor", weights: "torch.Tensor",
            idx: "torch.Tensor", kind: str, act: Callable | None = None, *,
            config: MoeConfig | None = None) -> "torch.Tensor":
    """Routed FFN of a MoE layer: sum_j weights[t, j] · w2[e] act(w_up[e] x[t]), e = idx[t, j] -> (T, H).

    x (T, H); w_up (E, U, H) ([gate; up] rows for swiglu); w2 (E, H, F); weights, idx (T, k).
    Two grouped launches (each touched expert's weights read once), `act` between them (default
    kernels.fused.act: up (.., 2F) swiglu -> (.., F)), routing weights applied in the second launch.
    """
    _check_ffn(x, w_up, w2, weights, idx, kind)
    if act is None:
        from kernels import fused
        act = fused.act
    t, k = idx.shape
    cfg = config or moe_config(t * k, w_up.shape[0])
    slots, block_expert = moe_align(idx, w_up.shape[0], cfg.block_m)  # (P,), (P / block_m,)
    up = grouped_matmul(x, w_up, slots, block_expert, gather_k=k, config=cfg)  # (T*k, U), by flat slot
    a = act(up, kind)  # (T*k, F)
    y = grouped_matmul(a, w2, slots, block_expert, gather_k=None, row_scale=weights.reshape(-1),
                       config=cfg)  # (T*k, H), weighted
    return y.view(t, k, -1).sum(1)  # (T, H)


def moe_ffn_ref(x: "torch.Tensor", w_up: "torch.Tensor", w2: "torch.Tensor", weights: "torch.Tensor",
                idx: "torch.Tensor", kind: str) -> "torch.Tensor":
    """Plain torch reference of `moe_ffn`, a loop over experts: float64 on the CPU, float32 on a GPU."""
    import torch

    from kernels.fused import act_ref

    acc = torch.float64 if x.device.type == "cpu" else torch.float32
    xf = x.to(acc)
    out = torch.zeros(x.shape, dtype=acc, device=x.device)  # (T, H)
    for e in range(w_up.shape[0]):
        tok, j = (idx == e).nonzero(as_tuple=True)  # the (token, slot) pairs routed to e
        if tok.numel():
            a = act_ref(xf[tok] @ w_up[e].to(acc).t(), kind).to(acc)  # (n_e, F)
            out.index_add_(0, tok, (a @ w2[e].to(acc).t()) * weights[tok, j].to(acc)[:, None])
    return out


def moe_flops(n_slots: int, h: int, u: int, f: int) -> int:
    """Floating-point operations of the routed FFN's two projections over n_slots = T*k rows."""
    return 2 * n_slots * (u * h + h * f)


def moe_weight_bytes(n_touched: int, h: int, u: int, f: int, itemsize: int = 2) -> int:
    """Weight bytes an ideal step reads: each of the n_touched experts' w_up and w2 once."""
    return n_touched * (u * h + h * f) * itemsize
