"""Decode attention over an FP8 (e4m3) KV cache with per-tensor scales, and the rotary + KV-cache write that fills
it: kernels/decode_attention.py and kernels/fused.py's rope_write with one byte a cached element.

A cached value is code · scale (k_scale for K, v_scale for V, one fp32 number each). The attention kernel is
flash-decoding as in kernels/decode_attention.py (same splits, same merge, which it reuses): it loads the codes,
widens them to bf16 (exact: e4m3 is a subset of bf16), folds k_scale into the softmax scale and v_scale into the
output. The write kernel rotates q and k as rope_write does, stores k / k_scale and v / v_scale as e4m3 (rounded
to nearest, saturating at ±448) and, for a prefill, also the rotated bf16 K and V that prefill attention reads
(attention over the prompt runs on the projections' K and V, not on the cache).
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from kernels.configs import (
    DECODE_MERGES,
    DecodeConfig,
    decode_attention_config,
    decode_num_splits,
)
from kernels.decode_attention import (
    _LOG2E,
    _counters,
    _merge_block,
    _merge_kernel,
    _merge_splits,
)
from kernels.gemm import dot_upcast, sm_count
from kernels.prefill_attention import online_softmax_step

E4M3_MAX = 448.0
_SINGLE, _FUSED, _PARTIALS = 0, 1, 2  # as kernels/decode_attention.py


@triton.jit
def _decode_fp8_kernel(
    # pointers
    q_ptr, k_ptr, v_ptr, len_ptr, part_o_ptr, part_lse_ptr, count_ptr, o_ptr,
    # sizes and scales (qk_scale holds k_scale and log2 e)
    GROUP, CHUNK, qk_scale, v_scale,
    # strides (the last dim of every tensor is contiguous; partials are contiguous)
    stride_qb, stride_qh, stride_kb, stride_kh, stride_ks, stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, MODE: tl.constexpr, BLOCK_G: tl.constexpr, MERGE_BLOCK: tl.constexpr,
):
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
        k = tl.load(k_base + n[:, None] * stride_ks + offs_d[None, :], mask=kv_mask, other=0.0).to(q.dtype)
        v = tl.load(v_base + n[:, None] * stride_vs + offs_d[None, :], mask=kv_mask, other=0.0).to(q.dtype)
        qk = tl.dot(q, tl.trans(k)) * qk_scale                                # (BLOCK_H, BLOCK_N)
        qk = tl.where(n[None, :] < hi, qk, float("-inf"))
        acc, l_i, m_i = online_softmax_step(acc, l_i, m_i, qk, v, UPCAST)  # acc: (BLOCK_H, BLOCK_D)

    has = l_i > 0
    out = acc * v_scale / tl.where(has, l_i, 1.0)[:, None]
    if MODE == 0:
        tl.store(o_ptr + b * stride_ob + h[:, None] * stride_oh + offs_d[None, :],
                 out.to(o_ptr.dtype.element_ty), mask=hd_mask)
    else:
        lse = tl.where(has, m_i + tl.math.log2(tl.where(has, l_i, 1.0)), float("-inf"))
        row0 = (b * tl.num_programs(1) * GROUP + h) * tl.num_programs(2)
        tl.store(part_o_ptr + (row0 + split)[:, None] * BLOCK_D + offs_d[None, :], out, mask=hd_mask)
        tl.store(part_lse_ptr + row0 + split, lse, mask=offs_h < GROUP)
        if MODE == 1:
            tl.debug_barrier()
            count = count_ptr + b * tl.num_programs(1) + hk
            if tl.atomic_add(count, 1, sem="acq_rel") == tl.num_programs(2) - 1:
                tl.atomic_xchg(count, 0)
                _merge_splits(part_o_ptr, part_lse_ptr, o_ptr + b * stride_ob, b * tl.num_programs(1) * GROUP,
                              hk * GROUP, GROUP, tl.num_programs(2), stride_oh,
                              HEAD_D, BLOCK_D, BLOCK_G, MERGE_BLOCK)


def decode_attention_fp8(q, k_cache, v_cache, lengths, k_scale: float, v_scale: float, *,
                         scale: float | None = None, config: DecodeConfig | None = None):
    """Attention output (B, Hq, D) in q's dtype (bf16) over float8_e4m3fn caches (B, Hkv, S_max, D) holding
    K / k_scale and V / v_scale; lengths (B,) int32 on the device, each in 1..S_max."""
    import torch

    if q.dim() != 3 or k_cache.dim() != 4 or k_cache.shape != v_cache.shape or k_cache.shape[-1] != q.shape[-1] \
            or q.shape[1] % k_cache.shape[1]:
        raise ValueError(f"q {tuple(q.shape)}, caches {tuple(k_cache.shape)}, {tuple(v_cache.shape)}: expected "
                         "(B, Hq, D) and equal (B, Hkv, S, D) caches with Hq a multiple of Hkv")
    if k_cache.dtype != torch.float8_e4m3fn or v_cache.dtype != torch.float8_e4m3fn:
        raise ValueError(f"caches {k_cache.dtype}, {v_cache.dtype}: both must be torch.float8_e4m3fn")
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
    splits, chunk = decode_num_splits(bsz, hkv, s_max, sm_count(q.device), cfg)
    mode = _SINGLE if splits == 1 else (_FUSED if cfg.merge == "fused" else _PARTIALS)
    part_o = torch.empty((bsz, hq, splits, block_d), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((bsz, hq, splits), dtype=torch.float32, device=q.device)
    o = torch.empty((bsz, hq, d), dtype=q.dtype, device=q.device)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    block_g = triton.next_power_of_2(group)
    _decode_fp8_kernel[(bsz, hkv, splits)](
        q, k_cache, v_cache, lengths, part_o, part_lse, _counters(q.device, bsz * hkv), o,
        group, chunk, scale * k_scale * _LOG2E, v_scale,
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


def decode_attention_fp8_ref(q, k_cache, v_cache, lengths, k_scale: float, v_scale: float, *,
                             scale: float | None = None):
    """Torch reference: the caches dequantized (code · scale), then kernels.decode_attention's reference."""
    from kernels.decode_attention import decode_attention_ref

    return decode_attention_ref(q, k_cache.float() * k_scale, v_cache.float() * v_scale, lengths, scale=scale)


@triton.jit
def _rope_write_fp8_kernel(
    # pointers
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, q_ptr, k_ptr, v_ptr, k16_ptr, v16_ptr,
    # sizes and the caches' inverse scales
    S, HQ, HKV, inv_k_scale, inv_v_scale,
    # strides (qkv, q contiguous (B, S, heads, D); caches (B, Hkv, S_max, D); k16, v16 contiguous (B, Hkv, S, D))
    stride_qkv_t, stride_cos, stride_q_t, stride_cb, stride_ch, stride_cs,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, ROPE: tl.constexpr, HAS_POS: tl.constexpr,
    KEEP_BF16: tl.constexpr, FMAX: tl.constexpr,
):
    tok = tl.program_id(0)  # b * S + s
    head = tl.program_id(1)  # among the heads this launch writes: q (with rotary), k, v
    if not ROPE:
        head += HQ
    bi = tok // S
    si = tok % S
    d = tl.arange(0, BLOCK_D)
    mask = d < HEAD_D
    src = qkv_ptr + tok.to(tl.int64) * stride_qkv_t + head * HEAD_D
    x = tl.load(src + d, mask=mask, other=0.0).to(tl.float32)
    if ROPE:  # noqa: SIM102
        if head < HQ + HKV:  # x * cos + swap_halves(x) * sin (sin signed)
            xs = tl.load(src + (d + HEAD_D // 2) % HEAD_D, mask=mask, other=0.0).to(tl.float32)
            c = tl.load(cos_ptr + si * stride_cos + d, mask=mask, other=0.0).to(tl.float32)
            s = tl.load(sin_ptr + si * stride_cos + d, mask=mask, other=0.0).to(tl.float32)
            x = x * c + xs * s
    if head < HQ:
        tl.store(q_ptr + tok.to(tl.int64) * stride_q_t + head * HEAD_D + d, x.to(q_ptr.dtype.element_ty), mask=mask)
    else:
        p = si
        if HAS_POS:
            p += tl.load(pos_ptr)
        kv = head - HQ
        dst = k_ptr
        dst16 = k16_ptr
        inv = inv_k_scale
        if kv >= HKV:
            kv -= HKV
            dst = v_ptr
            dst16 = v16_ptr
            inv = inv_v_scale
        off = bi.to(tl.int64) * stride_cb + kv * stride_ch + p.to(tl.int64) * stride_cs
        code = tl.clamp(x.to(q_ptr.dtype.element_ty).to(tl.float32) * inv, -FMAX, FMAX)
        tl.store(dst + off + d, code.to(dst.dtype.element_ty), mask=mask)
        if KEEP_BF16:  # the prompt's rotated K and V for prefill attention, (B, Hkv, S, D)
            off16 = ((bi.to(tl.int64) * HKV + kv) * S + si) * HEAD_D
            tl.store(dst16 + off16 + d, x.to(dst16.dtype.element_ty), mask=mask)


def rope_write_fp8(qkv, cos, sin, k_cache, v_cache, k_scale: float, v_scale: float, pos=None):
    """Rotate q, k of qkv; write k / k_scale, v / v_scale into the float8_e4m3fn caches at positions pos.. (0..
    when pos is None). Returns q (B, S, Hq, D) and, for a prefill (pos None), the rotated K and V in qkv's
    dtype (B, Hkv, S, D) each; for a decode step (None, None)."""
    import torch

    bsz, s, heads, d = qkv.shape
    hkv = k_cache.shape[1]
    hq = heads - 2 * hkv
    if not qkv.is_contiguous() or hq <= 0 or k_cache.shape != v_cache.shape or k_cache.shape[-1] != d \
            or k_cache.dtype != torch.float8_e4m3fn or v_cache.dtype != torch.float8_e4m3fn:
        raise ValueError(f"rope_write_fp8: qkv {tuple(qkv.shape)}, caches {tuple(k_cache.shape)} {k_cache.dtype}: "
                         "pass a contiguous (B, S, Hq + 2 Hkv, D) qkv and float8_e4m3fn (B, Hkv, S_max, D) caches")
    rope = cos is not None
    q = torch.empty((bsz, s, hq, d), dtype=qkv.dtype, device=qkv.device) if rope else qkv[:, :, :hq]
    keep = pos is None
    k16, v16 = ((torch.empty((bsz, hkv, s, d), dtype=qkv.dtype, device=qkv.device) for _ in range(2)) if keep
                else (None, None))
    if bsz * s:
        _rope_write_fp8_kernel[(bsz * s, heads if rope else 2 * hkv)](
            qkv, cos if rope else qkv, sin if rope else qkv, qkv if pos is None else pos, q, k_cache, v_cache,
            k16 if keep else qkv, v16 if keep else qkv, s, hq, hkv, 1.0 / k_scale, 1.0 / v_scale,
            qkv.stride(1), cos.stride(0) if rope else 0, q.stride(1),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            HEAD_D=d, BLOCK_D=triton.next_power_of_2(d), ROPE=rope, HAS_POS=pos is not None, KEEP_BF16=keep,
            FMAX=E4M3_MAX, num_warps=1 if d <= 128 else 2,
        )
    return q, k16, v16


def rope_write_fp8_ref(qkv, cos, sin, k_cache, v_cache, k_scale: float, v_scale: float, pos=None):
    """Torch reference of `rope_write_fp8`: kernels.fused.rope_write_ref into bf16 caches, then quantized."""
    import torch

    from kernels.fused import rope_write_ref

    kb, vb = (torch.zeros(k_cache.shape, dtype=qkv.dtype, device=qkv.device) for _ in range(2))
    q = rope_write_ref(qkv, cos, sin, kb, vb, pos)
    p0, s = (0 if pos is None else int(pos)), qkv.shape[1]
    for cache, full, sc in ((k_cache, kb, k_scale), (v_cache, vb, v_scale)):
        cache[:, :, p0:p0 + s] = (full[:, :, p0:p0 + s].float() / sc).clamp(-E4M3_MAX, E4M3_MAX).to(cache.dtype)
    return q, kb[:, :, p0:p0 + s], vb[:, :, p0:p0 + s]
