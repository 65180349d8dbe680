"""Decode attention (one new query token per sequence) against a KV cache, flash-decoding in Triton.

q (B, Hq, D); caches (B, Hkv, S_max, D); lengths (B,) int32 on the device, tokens valid per sequence.
Each sequence's cache is split into `splits` chunks, one program per (sequence, KV head, chunk): all
Hq / Hkv query heads of the KV head are the rows of one tile, so K and V are read once.  Each program
writes its normalised partial output and log-sum-exp; then the partials are merged, loading a block of
splits per round: by the last of a (sequence, KV head)'s programs to finish (merge "fused": an atomic
arrival counter, reset by that program; one launch) or by a second small kernel ("two_pass").  With one
split the program writes the output itself.  The number of splits depends only on (B, Hkv, S_max), never
on the lengths: a captured CUDA graph replays it.  Fused: not for concurrent launches on several streams
of one device (they share the counters).
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from kernels.configs import DECODE_MERGES, DecodeConfig, decode_attention_config, decode_num_splits
from kernels.gemm import dot_upcast, sm_count
from kernels.prefill_attention import check_qkv, online_softmax_step

_LOG2E = 1.4426950408889634
# Partial-output elements one merge round holds, per warp (64 fp32 registers a thread).
_MERGE_ELEMS_PER_WARP = 2048
_SINGLE, _FUSED, _PARTIALS = 0, 1, 2          # what the split kernel does after its chunk (MODE)


@triton.jit
def _decode_split_kernel(
    # pointers
    q_ptr, k_ptr, v_ptr, len_ptr, part_o_ptr, part_lse_ptr, count_ptr, o_ptr,
    # sizes and scale
    GROUP, CHUNK, qk_scale,
    # strides (the last dim of every tensor is contiguous; partials are contiguous)
    stride_qb, stride_qh, stride_kb, stride_kh, stride_ks, stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, MODE: tl.constexpr, BLOCK_G: tl.constexpr, MERGE_BLOCK: tl.constexpr,
):
    # 64-bit offsets: a cache of b*kv_h*c*d > 2^31 elements (97 x 8 x 28192 x 128) overflowed 32-bit ones
    # (relative error 0.67 on the H100)
    b = tl.program_id(0).to(tl.int64)
    hk = tl.program_id(1).to(tl.int64)
    split = tl.program_id(2)
    seq_len = tl.load(len_ptr + b)
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, seq_len)

    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    h = hk * GROUP + offs_h                                                   # query heads
    hd_mask = (offs_h[:, None] < GROUP) & (offs_d[None, :] < HEAD_D)
    q = tl.load(q_ptr + b * stride_qb + h[:, None] * stride_qh + offs_d[None, :],
                mask=hd_mask, other=0.0)                                      # (BLOCK_H, BLOCK_D)
    if UPCAST:
        q = q.to(tl.float32)
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh

    m_i = tl.full((BLOCK_H,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_D), dtype=tl.float32)
    for start_n in range(lo, hi, BLOCK_N):
        n = start_n + offs_n
        kv_mask = (n[:, None] < hi) & (offs_d[None, :] < HEAD_D)
        k = tl.load(k_base + n[:, None] * stride_ks + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + n[:, None] * stride_vs + offs_d[None, :], mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
        qk = tl.dot(q, tl.trans(k)) * qk_scale                                # (BLOCK_H, BLOCK_N)
        qk = tl.where(n[None, :] < hi, qk, float("-inf"))
        acc, l_i, m_i = online_softmax_step(acc, l_i, m_i, qk, v, UPCAST)  # acc: (BLOCK_H, BLOCK_D)

    # an empty chunk (past this sequence's length) leaves lse = -inf: weight 0 in the merge
    has = l_i > 0
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    if MODE == 0:                                         # one split: it holds token 0, so l_i > 0
        tl.store(o_ptr + b * stride_ob + h[:, None] * stride_oh + offs_d[None, :],
                 out.to(o_ptr.dtype.element_ty), mask=hd_mask)
    else:
        lse = tl.where(has, m_i + tl.math.log2(tl.where(has, l_i, 1.0)), float("-inf"))
        row0 = (b * tl.num_programs(1) * GROUP + h) * tl.num_programs(2)       # (BLOCK_H,) split 0's row
        tl.store(part_o_ptr + (row0 + split)[:, None] * BLOCK_D + offs_d[None, :], out, mask=hd_mask)
        tl.store(part_lse_ptr + row0 + split, lse, mask=offs_h < GROUP)
        if MODE == 1:
            # The last split of this (sequence, KV head) to finish merges all of them.  Barrier: every
            # thread's partial stores precede the release of the counter increment.
            tl.debug_barrier()
            count = count_ptr + b * tl.num_programs(1) + hk
            if tl.atomic_add(count, 1, sem="acq_rel") == tl.num_programs(2) - 1:
                tl.atomic_xchg(count, 0)                           # reset for the next launch / replay
                _merge_splits(part_o_ptr, part_lse_ptr, o_ptr + b * stride_ob, b * tl.num_programs(1) * GROUP,
                              hk * GROUP, GROUP, tl.num_programs(2), stride_oh,
                              HEAD_D, BLOCK_D, BLOCK_G, MERGE_BLOCK)


@triton.jit
def _merge_kernel(part_o_ptr, part_lse_ptr, o_ptr, n_splits, stride_ob, stride_oh,
                  HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, MERGE_BLOCK: tl.constexpr):
    """Two-pass merge: one program per (sequence, query head)."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    _merge_splits(part_o_ptr, part_lse_ptr, o_ptr + b * stride_ob, b * tl.num_programs(1), h, 1, n_splits,
                  stride_oh, HEAD_D, BLOCK_D, 1, MERGE_BLOCK)


@triton.jit
def _merge_splits(part_o_ptr, part_lse_ptr, o_ptr, head_row0, h0, n_heads, n_splits, stride_oh,
                  HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_G: tl.constexpr, MERGE_BLOCK: tl.constexpr):
    """o[h0 + g] = sum_s 2^lse_s o_s / sum_s 2^lse_s for g < n_heads, loading MERGE_BLOCK splits of every
    head as one block per round (independent loads in flight); loads bypass L1 (.cg: other SMs wrote)."""
    offs_g = tl.arange(0, BLOCK_G)
    offs_s = tl.arange(0, MERGE_BLOCK)
    offs_d = tl.arange(0, BLOCK_D)
    g_mask = offs_g < n_heads
    d_mask = offs_d < HEAD_D
    rows = (head_row0 + h0 + offs_g) * n_splits                             # (BLOCK_G,) split 0's row
    m = tl.full((BLOCK_G,), float("-inf"), dtype=tl.float32)
    den = tl.zeros((BLOCK_G,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), dtype=tl.float32)
    for s0 in range(0, n_splits, MERGE_BLOCK):
        s = s0 + offs_s
        gs_mask = g_mask[:, None] & (s[None, :] < n_splits)                 # (BLOCK_G, MERGE_BLOCK)
        row = rows[:, None] + s[None, :]
        lse = tl.load(part_lse_ptr + row, mask=gs_mask, other=float("-inf"), cache_modifier=".cg")
        part = tl.load(part_o_ptr + row[:, :, None] * BLOCK_D + offs_d[None, None, :],
                       mask=gs_mask[:, :, None] & d_mask[None, None, :], other=0.0,
                       cache_modifier=".cg")                                # (BLOCK_G, MERGE_BLOCK, BLOCK_D)
        m_new = tl.maximum(m, tl.max(lse, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)              # rows with nothing yet
        alpha = tl.math.exp2(m - m_safe)
        w = tl.math.exp2(lse - m_safe[:, None])                             # (BLOCK_G, MERGE_BLOCK)
        acc = acc * alpha[:, None] + tl.sum(part * w[:, :, None], axis=1)
        den = den * alpha + tl.sum(w, axis=1)
        m = m_new
    out = acc / tl.where(den > 0, den, 1.0)[:, None]                        # split 0 is never empty
    tl.store(o_ptr + (h0 + offs_g)[:, None] * stride_oh + offs_d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=g_mask[:, None] & d_mask[None, :])


_COUNTERS: dict = {}     # device -> [int32 counters]; old ones kept alive for graphs captured with them


def _counters(device, n: int):
    """Zeroed int32 arrival counters (>= n) on `device`; the kernel leaves them zero after each launch."""
    import torch

    held = _COUNTERS.setdefault(str(device), [])
    if not held or held[-1].numel() < n:
        held.append(torch.zeros(max(n, 4096), dtype=torch.int32, device=device))
    return held[-1]


def _merge_block(cfg: DecodeConfig, splits: int, heads: int, block_d: int, num_warps: int) -> int:
    """Splits per merge round (a power of two): the config's, at most the padded split count and what
    registers hold."""
    most = max(1, min(cfg.merge_block, triton.next_power_of_2(splits),
                      _MERGE_ELEMS_PER_WARP * num_warps // (heads * block_d)))
    return 1 << (most.bit_length() - 1)


def decode_attention(q, k_cache, v_cache, lengths, *, scale: float | None = None,
                     config: DecodeConfig | None = None, num_splits: int | None = None):
    """Attention output (B, Hq, D) in q's dtype; `config`/`num_splits` override the table's choice.

    Every length must be in 1..S_max (not checked on the device: that would synchronise).
    """
    import torch

    if q.dim() != 3 or k_cache.dim() != 4:
        raise ValueError(f"q {tuple(q.shape)}, k_cache {tuple(k_cache.shape)}: expected (B, Hq, D), (B, Hkv, S, D)")
    check_qkv(q, k_cache, v_cache)
    if lengths.shape != (q.shape[0],) or lengths.dtype != torch.int32 or lengths.device != q.device:
        raise ValueError(f"lengths {tuple(lengths.shape)} {lengths.dtype} on {lengths.device}: "
                        f"pass a ({q.shape[0]},) int32 tensor on {q.device}")
    bsz, hq, d = q.shape
    hkv, s_max = k_cache.shape[1], k_cache.shape[2]
    q, k_cache, v_cache = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k_cache, v_cache))
    cfg = config or decode_attention_config(d)
    if cfg.merge not in DECODE_MERGES:
        raise ValueError(f"config.merge={cfg.merge!r}: use one of {', '.join(DECODE_MERGES)}")
    block_d = max(16, triton.next_power_of_2(d))
    group = hq // hkv
    if num_splits is not None and num_splits < 1:
        raise ValueError(f"num_splits={num_splits}: pass at least 1, or None for the table's choice")
    if num_splits is None:
        splits, chunk = decode_num_splits(bsz, hkv, s_max, sm_count(q.device), cfg)
    else:
        chunk = triton.cdiv(triton.cdiv(s_max, num_splits), cfg.block_n) * cfg.block_n
        splits = triton.cdiv(s_max, chunk)
    mode = _SINGLE if splits == 1 else (_FUSED if cfg.merge == "fused" else _PARTIALS)
    part_o = torch.empty((bsz, hq, splits, block_d), dtype=torch.float32, device=q.device)   # unused if _SINGLE
    part_lse = torch.empty((bsz, hq, splits), dtype=torch.float32, device=q.device)
    o = torch.empty((bsz, hq, d), dtype=q.dtype, device=q.device)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    block_g = triton.next_power_of_2(group)
    _decode_split_kernel[(bsz, hkv, splits)](
        q, k_cache, v_cache, lengths, part_o, part_lse, _counters(q.device, bsz * hkv), o,
        group, chunk, scale * _LOG2E,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), o.stride(0), o.stride(1),
        HEAD_D=d, BLOCK_H=max(16, block_g), BLOCK_N=cfg.block_n, BLOCK_D=block_d, UPCAST=dot_upcast(q.dtype),
        MODE=mode, BLOCK_G=block_g, MERGE_BLOCK=_merge_block(cfg, splits, block_g, block_d, cfg.num_warps),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    if mode == _PARTIALS:
        _merge_kernel[(bsz, hq)](part_o, part_lse, o, splits, o.stride(0), o.stride(1), HEAD_D=d, BLOCK_D=block_d,
                                 MERGE_BLOCK=_merge_block(cfg, splits, 1, block_d, 4), num_warps=4)
    return o


def decode_attention_ref(q, k_cache, v_cache, lengths, *, scale: float | None = None):
    """Plain torch reference (float64 on CPU, float32 on GPU): a loop over sequences."""
    import torch

    acc = torch.float64 if q.device.type == "cpu" else torch.float32
    group = q.shape[1] // k_cache.shape[1]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    outs = []
    for i, n in enumerate(lengths.tolist()):
        kf = k_cache[i, :, :n].to(acc).repeat_interleave(group, dim=0)      # (Hq, n, D)
        vf = v_cache[i, :, :n].to(acc).repeat_interleave(group, dim=0)
        scores = (kf @ q[i].to(acc)[:, :, None]).squeeze(-1) * scale           # (Hq, n)
        outs.append((torch.softmax(scores, dim=-1)[:, None, :] @ vf).squeeze(1))
    return torch.stack(outs)                                                   # (B, Hq, D)


def decode_attention_bytes(lengths: list[int], kv_heads: int, d: int, itemsize: int = 2) -> int:
    """KV-cache bytes one decode step must read: K and V of every valid token."""
    return 2 * sum(lengths) * kv_heads * d * itemsize
