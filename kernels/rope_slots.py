"""Rotary + KV-cache write at per-token slots and positions: what continuous batching needs where the engine's
`kernels.fused.rope_write` shares one position (and the batch row as the cache row) across a batch.

  rope_slots  qkv (T, Hq + 2 Hkv, D): rotate q and k of token t in place with the rotary row pos[t], and write
              its k and v into the caches at (slot[t], :, pos[t]). Slots and positions are read on the device,
              so one CUDA graph serves any slot and any mix of positions.

Computes in fp32 and rounds once on store. `rope_slots_torch` does the same with torch ops in the input dtype
(the torch stack); `rope_slots_ref` in float64 (CPU tests).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _rope_slots_kernel(
    # pointers
    qkv_ptr, cos_ptr, sin_ptr, slot_ptr, pos_ptr, k_ptr, v_ptr,
    # sizes
    HQ, HKV,
    # strides (qkv contiguous (T, heads, D); tables (P, D); caches (B, Hkv, S_max, D), D contiguous)
    stride_qkv_t, stride_cos, stride_slot, stride_pos, stride_cb, stride_ch, stride_cs,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, ROPE: tl.constexpr,
):
    tok = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)  # among the heads this launch handles: q and k (rotated), then k, v written
    if not ROPE:
        head += HQ  # without rotary only the k and v heads are written
    d = tl.arange(0, BLOCK_D)
    mask = d < HEAD_D
    p = tl.load(pos_ptr + tok * stride_pos).to(tl.int64)
    src = qkv_ptr + tok * stride_qkv_t + head * HEAD_D
    x = tl.load(src + d, mask=mask, other=0.0).to(tl.float32)
    if ROPE:  # noqa: SIM102 (a constexpr test, kept apart from the runtime one)
        if head < HQ + HKV:  # x * cos + swap_halves(x) * sin (sin signed), written back in place
            xs = tl.load(src + (d + HEAD_D // 2) % HEAD_D, mask=mask, other=0.0).to(tl.float32)
            c = tl.load(cos_ptr + p * stride_cos + d, mask=mask, other=0.0).to(tl.float32)
            s = tl.load(sin_ptr + p * stride_cos + d, mask=mask, other=0.0).to(tl.float32)
            x = x * c + xs * s
            tl.debug_barrier()  # every lane has read the head before any writes it
            tl.store(src + d, x.to(qkv_ptr.dtype.element_ty), mask=mask)
    if head >= HQ:
        kv = head - HQ
        dst = k_ptr
        if kv >= HKV:
            kv -= HKV
            dst = v_ptr
        slot = tl.load(slot_ptr + tok * stride_slot).to(tl.int64)
        off = slot * stride_cb + kv * stride_ch + p * stride_cs
        tl.store(dst + off + d, x.to(dst.dtype.element_ty), mask=mask)


def _check(qkv, k_cache, v_cache, slot, pos) -> int:
    """Hq, after checking the shapes (a ValueError naming them)."""
    t, heads, d = qkv.shape
    hkv = k_cache.shape[1]
    if (not qkv.is_contiguous() or heads <= 2 * hkv or k_cache.shape != v_cache.shape or k_cache.shape[-1] != d
            or slot.shape != (t,) or pos.shape != (t,)):
        raise ValueError(f"rope_slots: qkv {tuple(qkv.shape)}, caches {tuple(k_cache.shape)}, slot "
                         f"{tuple(slot.shape)}, pos {tuple(pos.shape)}: pass a contiguous (T, Hq + 2 Hkv, D) qkv, "
                         "(B, Hkv, S_max, D) caches and (T,) slots and positions")
    return heads - 2 * hkv


def rope_slots(qkv, cos, sin, k_cache, v_cache, slot, pos) -> None:
    """Rotate q, k of qkv in place at positions pos; write k, v into the caches at (slot, pos).

    qkv (T, Hq + 2 Hkv, D) contiguous; cos, sin (P, D) rotary tables indexed by position (None: no rotary);
    caches (B, Hkv, S_max, D); slot, pos (T,) integer tensors on the device (a stride-0 expand is fine).
    """
    hq = _check(qkv, k_cache, v_cache, slot, pos)
    t, heads, d = qkv.shape
    hkv = k_cache.shape[1]
    rope = cos is not None
    if t:
        _rope_slots_kernel[(t, heads if rope else 2 * hkv)](
            qkv, cos if rope else qkv, sin if rope else qkv, slot, pos, k_cache, v_cache,
            hq, hkv,
            qkv.stride(0), cos.stride(0) if rope else 0, slot.stride(0), pos.stride(0),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            HEAD_D=d, BLOCK_D=triton.next_power_of_2(d), ROPE=rope, num_warps=1 if d <= 128 else 2,
        )


def rope_slots_torch(qkv, cos, sin, k_cache, v_cache, slot, pos) -> None:
    """rope_slots with torch ops in qkv's dtype (graph-safe: index_put, no host sync)."""
    import torch

    hq = _check(qkv, k_cache, v_cache, slot, pos)
    hkv, half = k_cache.shape[1], qkv.shape[-1] // 2
    if cos is not None:
        qk = qkv[:, :hq + hkv]  # (T, hq + hkv, D)
        c, s = cos[pos][:, None], sin[pos][:, None]  # (T, 1, D)
        qkv[:, :hq + hkv] = torch.addcmul(qk * c, torch.cat([qk[..., half:], qk[..., :half]], dim=-1), s)
    k_cache[slot, :, pos] = qkv[:, hq:hq + hkv].to(k_cache.dtype)  # (T, Hkv, D) rows
    v_cache[slot, :, pos] = qkv[:, hq + hkv:].to(v_cache.dtype)


def rope_slots_ref(qkv, cos, sin, k_cache, v_cache, slot, pos):
    """float64 rotated qkv (T, heads, D) with torch ops, token by token; writes k and v into the caches."""
    import torch

    hkv, d = k_cache.shape[1], qkv.shape[-1]
    hq = qkv.shape[1] - 2 * hkv
    x = qkv.double().clone()
    for t, (b, p) in enumerate(zip(slot.tolist(), pos.tolist())):
        if cos is not None:
            rot = torch.cat([x[t, :, d // 2:], x[t, :, :d // 2]], -1)
            x[t, :hq + hkv] = x[t, :hq + hkv] * cos[p].double() + rot[:hq + hkv] * sin[p].double()
        k_cache[b, :, p] = x[t, hq:hq + hkv].to(k_cache.dtype)
        v_cache[b, :, p] = x[t, hq + hkv:].to(v_cache.dtype)
    return x
