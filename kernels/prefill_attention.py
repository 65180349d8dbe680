"""Flash-style attention forward for prefill, in Triton: causal or not, grouped-query, any head dim.

q (B, Hq, Sq, D), k/v (B, Hkv, Sk, D) with Hq % Hkv == 0 and Sk >= Sq: when Sk > Sq the first
Sk - Sq keys are a cached prefix (the prompt continues after it) and causal query i sees keys
0 .. i + Sk - Sq.  Head dims that are not powers of two (80, 96) run in the next power-of-two block
with the extra columns masked.  Softmax runs online in base 2 (scale folded with log2 e), in fp32.
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from kernels.configs import AttentionConfig, prefill_attention_config
from kernels.gemm import dot_upcast

_LOG2E = 1.4426950408889634


@triton.jit
def online_softmax_step(acc, l_i, m_i, qk, v, UPCAST: tl.constexpr):
    """Fold one block of base-2 scores qk (rows, keys; masked = -inf) and its values v (keys, D) into the
    running max m_i, denominator l_i and unnormalised output acc (rows, D); shared with decode."""
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    p = tl.math.exp2(qk - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    p = p.to(v.dtype)
    if UPCAST:
        p = p.to(tl.float32)
        v = v.to(tl.float32)
    return tl.dot(p, v, acc * alpha[:, None]), l_i, m_new


@triton.jit
def _attend_blocks(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                   lo, hi, prefix, S_k, qk_scale,
                   HEAD_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                   MASKED: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr):
    """Online-softmax update over key blocks [lo, hi); MASKED adds the causal and key-end masks."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        n = start_n + offs_n
        k_ptrs = k_base + n[:, None] * stride_kn + offs_d[None, :]          # (BLOCK_N, BLOCK_D)
        v_ptrs = v_base + n[:, None] * stride_vn + offs_d[None, :]
        if MASKED:
            kv_mask = (n[:, None] < S_k) & (offs_d[None, :] < HEAD_D)
            k = tl.load(k_ptrs, mask=kv_mask, other=0.0)
            v = tl.load(v_ptrs, mask=kv_mask, other=0.0)
        elif HEAD_D < BLOCK_D:                     # padded head dim (80, 96): mask the extra columns
            k = tl.load(k_ptrs, mask=offs_d[None, :] < HEAD_D, other=0.0)
            v = tl.load(v_ptrs, mask=offs_d[None, :] < HEAD_D, other=0.0)
        else:                                      # interior blocks: no masks at all
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        if UPCAST:
            k = k.to(tl.float32)
        qk = tl.dot(q, tl.trans(k)) * qk_scale                              # (BLOCK_M, BLOCK_N)
        if MASKED:
            keep = n[None, :] < S_k
            if CAUSAL:
                keep = keep & (n[None, :] <= offs_m[:, None] + prefix)
            qk = tl.where(keep, qk, float("-inf"))
        acc, l_i, m_i = online_softmax_step(acc, l_i, m_i, qk, v, UPCAST)  # acc: (BLOCK_M, BLOCK_D)
    return acc, l_i, m_i


@triton.jit
def _prefill_kernel(
    # pointers
    q_ptr, k_ptr, v_ptr, o_ptr,
    # sizes and scale
    S_q, S_k, H_q, GROUP, qk_scale,
    # strides (the last dim of every tensor is contiguous)
    stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_os,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, UPCAST: tl.constexpr,
):
    # heaviest (last, for causal) query blocks first: they finish with the rest
    start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)  # 64-bit offsets: b*h*s*d may pass 2^31 elements
    b = bh // H_q
    h = bh % H_q
    hk = h // GROUP
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q_ptrs = q_ptr + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :]
    q_mask = (offs_m[:, None] < S_q) & (offs_d[None, :] < HEAD_D)
    q = tl.load(q_ptrs, mask=q_mask, other=0.0)                             # (BLOCK_M, BLOCK_D)
    if UPCAST:
        q = q.to(tl.float32)
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    prefix = S_k - S_q
    if CAUSAL:
        # keys every row of this block sees, then the diagonal blocks
        n_full = (start_m * BLOCK_M + prefix + 1) // BLOCK_N * BLOCK_N
        hi = tl.minimum((start_m + 1) * BLOCK_M + prefix, S_k)
    else:
        n_full = S_k // BLOCK_N * BLOCK_N
        hi = S_k
    acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_vs, offs_m,
                                   offs_d, 0, n_full, prefix, S_k, qk_scale,
                                   HEAD_D, BLOCK_N, BLOCK_D, False, CAUSAL, UPCAST)
    acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_vs, offs_m,
                                   offs_d, n_full, hi, prefix, S_k, qk_scale,
                                   HEAD_D, BLOCK_N, BLOCK_D, True, CAUSAL, UPCAST)
    out = acc / l_i[:, None]
    o_ptrs = o_ptr + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :]
    tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=q_mask)


def check_qkv(q, k, v) -> None:
    """Validate attention operands shared by prefill and decode: dtype, device, head counts, dims."""
    import torch

    if q.dtype not in (torch.bfloat16, torch.float16) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"dtypes q={q.dtype}, k={k.dtype}, v={v.dtype}: all must be bf16 or all fp16")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v on {q.device}, {k.device}, {v.device}: put them on one device")
    if k.shape != v.shape:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ: pass equal shapes")
    hq, hkv, d = q.shape[1], k.shape[1], q.shape[-1]
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads {hq} not a multiple of KV heads {hkv}: use Hkv dividing Hq")
    if k.shape[0] != q.shape[0] or k.shape[-1] != d:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in batch or head dim")
    if not 16 <= d <= 256:
        raise ValueError(f"head dim {d}: supported from 16 to 256")


def prefill_attention(q, k, v, *, causal: bool = True, scale: float | None = None,
                      config: AttentionConfig | None = None):
    """Attention output (B, Hq, Sq, D) in q's dtype; `config` overrides the head-dim table."""
    import torch

    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}: expected (B, H, S, D) tensors")
    check_qkv(q, k, v)
    bsz, hq, s_q, d = q.shape
    s_k = k.shape[2]
    if s_k < s_q:
        raise ValueError(f"keys {s_k} < queries {s_q}: k/v hold the prefix then the queries' own keys")
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    o = torch.empty_like(q, memory_format=torch.contiguous_format)
    if s_q == 0 or bsz == 0:
        return o
    block_d = max(16, triton.next_power_of_2(d))
    cfg = config or prefill_attention_config(d)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    grid = (triton.cdiv(s_q, cfg.block_m), bsz * hq)
    _prefill_kernel[grid](
        q, k, v, o, s_q, s_k, hq, hq // k.shape[1], scale * _LOG2E,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), o.stride(0), o.stride(1), o.stride(2),
        HEAD_D=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=block_d,
        CAUSAL=causal, UPCAST=dot_upcast(q.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return o


def prefill_attention_ref(q, k, v, *, causal: bool = True, scale: float | None = None):
    """Plain torch reference (float64 on CPU, float32 on GPU), same prefix rule as the kernel."""
    import torch

    acc = torch.float64 if q.device.type == "cpu" else torch.float32
    group = q.shape[1] // k.shape[1]
    qf = q.to(acc)
    kf = k.to(acc).repeat_interleave(group, dim=1)                       # (B, Hq, Sk, D)
    vf = v.to(acc).repeat_interleave(group, dim=1)
    s_q, s_k = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (qf @ kf.transpose(-1, -2)) * scale                          # (B, Hq, Sq, Sk)
    if causal:
        i = torch.arange(s_q, device=q.device)[:, None]
        j = torch.arange(s_k, device=q.device)[None, :]
        scores = scores.masked_fill(j > i + (s_k - s_q), float("-inf"))
    return torch.softmax(scores, dim=-1) @ vf


def prefill_attention_flops(b: int, hq: int, s_q: int, s_k: int, d: int, causal: bool) -> float:
    """Matrix FLOPs of the forward (QKᵀ and PV), counting only the unmasked half when causal."""
    pairs = s_q * s_k - (s_q * (s_q - 1) / 2 if causal else 0)
    return 4.0 * b * hq * pairs * d
