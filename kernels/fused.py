"""Fused element-wise kernels of the reference engine's decoder layer, in Triton, each beside its torch reference.

Under CUDA graphs a decode step at batch 1 is bound by weight reads plus ~2-3 us per launched kernel, so
the small ops between the GEMMs are fused into one launch each:
  add_norm    residual add + RMSNorm/LayerNorm: (x, y) -> (x + y, norm(x + y))
  rope_write  rotary on q and k + KV-cache write: qkv -> q; k, v land in the static cache at `pos`
  act         SwiGLU (silu(gate) * up on [gate | up] columns) or tanh-GELU
Every kernel computes in fp32 and rounds once on store; inputs are bf16, fp16 or fp32 with a contiguous
last dim. The `*_ref` functions compute the same in float64 (CPU tests) with torch ops.
"""
from __future__ import annotations

import triton
import triton.language as tl


EPS = 1e-5
ACT_BLOCK = 1024  # elements of the activation output per program


@triton.jit
def _add_norm_kernel(
    # pointers
    x_ptr, y_ptr, w_ptr, b_ptr, res_ptr, out_ptr,
    # sizes and strides (rows; the hidden dim is contiguous)
    H, stride_x, stride_y, stride_res, stride_out, eps,
    # meta-parameters
    HAS_Y: tl.constexpr, RMS: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < H
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_Y:
        y = tl.load(y_ptr + row * stride_y + cols, mask=mask, other=0.0)
        x = (x.to(tl.float32) + y.to(tl.float32)).to(res_ptr.dtype.element_ty)  # the residual, rounded
        tl.store(res_ptr + row * stride_res + cols, x, mask=mask)
    x = x.to(tl.float32)
    if RMS:
        xc = x
    else:
        xc = tl.where(mask, x - tl.sum(x, axis=0) / H, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / H + eps)
    out = xc * rstd * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    if not RMS:
        out += tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, out.to(out_ptr.dtype.element_ty), mask=mask)


def add_norm(x, y, w, b=None, eps: float = EPS):
    """(x + y, norm(x + y)) over the last dim, one read of each; y None: (x, norm(x)).

    x, y (T, H) (row-strided views allowed); w, b (H,); b None selects RMSNorm, else LayerNorm.
    """
    import torch

    if x.dim() != 2 or x.stride(-1) != 1 or (y is not None and (y.shape != x.shape or y.stride(-1) != 1)):
        raise ValueError(f"add_norm: x {tuple(x.shape)}, y {None if y is None else tuple(y.shape)}: "
                        "pass equal 2-D (T, H) tensors with a contiguous last dim")
    t, h = x.shape
    res = x if y is None else torch.empty((t, h), dtype=x.dtype, device=x.device)
    out = torch.empty((t, h), dtype=x.dtype, device=x.device)
    block = triton.next_power_of_2(h)
    if t:
        _add_norm_kernel[(t,)](
            x, x if y is None else y, w, w if b is None else b, res, out,
            h, x.stride(0), 0 if y is None else y.stride(0), res.stride(0), out.stride(0), eps,
            HAS_Y=y is not None, RMS=b is None, BLOCK=block, num_warps=min(16, max(4, block // 512)),
        )
    return res, out


def add_norm_ref(x, y, w, b=None, eps: float = EPS):
    """float64 (x + y, norm(x + y)) with torch ops."""
    import torch.nn.functional as F

    r = x.double() if y is None else x.double() + y.double()
    if b is None:
        return r, F.rms_norm(r, r.shape[-1:], w.double(), eps=eps)
    return r, F.layer_norm(r, r.shape[-1:], w.double(), b.double(), eps=eps)


@triton.jit
def _rope_write_kernel(
    # pointers
    qkv_ptr, cos_ptr, sin_ptr, pos_ptr, q_ptr, k_ptr, v_ptr,
    # sizes
    S, HQ, HKV,
    # strides (qkv and q are contiguous (B, S, heads, D); caches (B, Hkv, S_max, D), D contiguous)
    stride_qkv_t, stride_cos, stride_q_t, stride_cb, stride_ch, stride_cs,
    # meta-parameters
    HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, ROPE: tl.constexpr, HAS_POS: tl.constexpr,
):
    tok = tl.program_id(0)  # b * S + s
    head = tl.program_id(1)  # among the heads this launch writes: q (with rotary), k, v
    if not ROPE:
        head += HQ  # without rotary q stays in qkv: only k and v heads
    bi = tok // S
    si = tok % S
    d = tl.arange(0, BLOCK_D)
    mask = d < HEAD_D
    src = qkv_ptr + tok.to(tl.int64) * stride_qkv_t + head * HEAD_D
    x = tl.load(src + d, mask=mask, other=0.0).to(tl.float32)
    if ROPE:
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
        if kv >= HKV:
            kv -= HKV
            dst = v_ptr
        off = bi.to(tl.int64) * stride_cb + kv * stride_ch + p.to(tl.int64) * stride_cs
        tl.store(dst + off + d, x.to(dst.dtype.element_ty), mask=mask)


def rope_write(qkv, cos, sin, k_cache, v_cache, pos=None):
    """Rotate q, k of qkv and write k, v into the caches at positions pos.. (0.. when pos is None).

    qkv (B, S, Hq + 2 Hkv, D) contiguous; cos, sin (S, D) rows of this step (None: no rotary);
    caches (B, Hkv, S_max, D); pos (1,) int64 on the device (read by the kernel: graph-safe).
    Returns q (B, S, Hq, D): a new tensor with rotary, else a view of qkv.
    """
    import torch

    bsz, s, heads, d = qkv.shape
    hkv = k_cache.shape[1]
    hq = heads - 2 * hkv
    if not qkv.is_contiguous() or hq <= 0 or k_cache.shape != v_cache.shape or k_cache.shape[-1] != d:
        raise ValueError(f"rope_write: qkv {tuple(qkv.shape)}, caches {tuple(k_cache.shape)}: pass a contiguous "
                        "(B, S, Hq + 2 Hkv, D) qkv and (B, Hkv, S_max, D) caches")
    rope = cos is not None
    q = torch.empty((bsz, s, hq, d), dtype=qkv.dtype, device=qkv.device) if rope else qkv[:, :, :hq]
    if bsz * s:
        _rope_write_kernel[(bsz * s, heads if rope else 2 * hkv)](
            qkv, cos if rope else qkv, sin if rope else qkv, qkv if pos is None else pos, q, k_cache, v_cache,
            s, hq, hkv,
            qkv.stride(1), cos.stride(0) if rope else 0, q.stride(1),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            HEAD_D=d, BLOCK_D=triton.next_power_of_2(d), ROPE=rope, HAS_POS=pos is not None,
            num_warps=1 if d <= 128 else 2,
        )
    return q


def rope_write_ref(qkv, cos, sin, k_cache, v_cache, pos=None):
    """float64 q (B, S, Hq, D) with torch ops; writes the rotated k and v into the caches (their dtype)."""
    import torch

    hkv, s, d = k_cache.shape[1], qkv.shape[1], qkv.shape[-1]
    x = qkv.double()
    hq = x.shape[2] - 2 * hkv
    if cos is not None:
        rot = torch.cat([x[..., d // 2:], x[..., :d // 2]], -1)
        x = torch.cat([x[:, :, :hq + hkv] * cos.double()[:, None] + rot[:, :, :hq + hkv] * sin.double()[:, None],
                       x[:, :, hq + hkv:]], 2)
    p0 = 0 if pos is None else int(pos)
    k_cache[:, :, p0:p0 + s] = x[:, :, hq:hq + hkv].transpose(1, 2).to(k_cache.dtype)
    v_cache[:, :, p0:p0 + s] = x[:, :, hq + hkv:].transpose(1, 2).to(v_cache.dtype)
    return x[:, :, :hq]


@triton.jit
def _act_kernel(
    # pointers
    up_ptr, out_ptr,
    # sizes (up and out contiguous: rows of 2F (SwiGLU) or F (GELU) and F)
    N, F,
    # meta-parameters
    SWIGLU: tl.constexpr, BLOCK: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # flat output index
    mask = i < N
    if SWIGLU:
        src = (i // F) * (2 * F) + i % F
        g = tl.load(up_ptr + src, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(up_ptr + src + F, mask=mask, other=0.0).to(tl.float32)
        out = g * tl.sigmoid(g) * u
    else:  # 0.5 x (1 + tanh(z)) = x sigmoid(2 z)
        x = tl.load(up_ptr + i, mask=mask, other=0.0).to(tl.float32)
        out = x * tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))  # 2 sqrt(2 / pi)
    tl.store(out_ptr + i, out.to(out_ptr.dtype.element_ty), mask=mask)


def act(up, kind: str):
    """The FFN activation over the last dim: "swiglu" (.., 2F) -> (.., F) or "gelu" (tanh) (.., F) -> (.., F)."""
    import torch

    if kind not in ("swiglu", "gelu"):
        raise ValueError(f"act: kind={kind!r}; use 'swiglu' or 'gelu'")
    up = up.contiguous()
    f = up.shape[-1] // 2 if kind == "swiglu" else up.shape[-1]
    out = torch.empty((*up.shape[:-1], f), dtype=up.dtype, device=up.device)
    if out.numel():
        _act_kernel[(triton.cdiv(out.numel(), ACT_BLOCK),)](up, out, out.numel(), f, SWIGLU=kind == "swiglu",
                                                             BLOCK=ACT_BLOCK, num_warps=4)
    return out


def act_ref(up, kind: str):
    """float64 activation with torch ops."""
    import torch.nn.functional as F

    x = up.double()
    if kind == "swiglu":
        g, u = x.chunk(2, dim=-1)
        return F.silu(g) * u
    return F.gelu(x, approximate="tanh")

