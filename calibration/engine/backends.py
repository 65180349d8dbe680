"""The software-stack switch: the kernels the engine calls, from our Triton kernels or from torch.

`triton`: kernels.gemm.matmul, kernels.prefill_attention, kernels.decode_attention (CONTRACTS.md), and the
fused element-wise kernels of kernels.fused (residual add + norm, rotary + KV-cache write, activation), and
the grouped-GEMM routed experts of kernels.moe.
`torch`: cuBLAS through F.linear, torch's SDPA (flash on the GPU) and plain torch element-wise ops, one
kernel per op: the "torch's own kernels" stack, whose routed experts are model.MoE's torch schedules.
MoE routing: the router GEMM is `linear`; softmax + top-k is kernels.routing.router_topk (one launch) in the
triton stack, plain torch in the torch stack.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from simulator.errors import UserError

BACKENDS = ("triton", "torch")
EPS = 1e-5  # of every norm


@dataclass(frozen=True)
class Backend:
    """The kernels of one stack (shapes below; T = B x S tokens)."""

    name: str
    linear: Callable  # x (T, K), w (N, K) -> (T, N)
    prefill_attn: Callable  # q (B, Hq, S, D), k/v (B, Hkv, S, D) -> (B, Hq, S, D), causal
    decode_attn: Callable  # q (B, Hq, D), caches (B, Hkv, C, D), lengths (B,) int32 -> (B, Hq, D)
    add_norm: Callable  # x, y (T, H) or y None, w, b (H,) or b None (RMSNorm) -> (x + y, norm(x + y))
    rope_write: Callable  # qkv (B, S, Hq+2Hkv, D), cos/sin (S, D) or None, KVCache, pos (1,) or None -> q (B, S, Hq, D)
    act: Callable  # up (.., 2F) "swiglu" or (.., F) "gelu" -> (.., F)
    # routed MoE FFN: x (T, H), w_up (E, U, H), w2 (E, H, F), weights/idx (T, k), kind, act -> (T, H);
    # None: the engine's own torch schedules (model.MoE)
    moe: Callable | None = None
    # MoE routing: logits (T, E), k, out_dtype= -> weights (T, k) renormalised, idx (T, k) int32, one launch;
    # None: model.MoE's torch softmax + topk. Set only beside `moe` (the torch schedules want int64 ids)
    router_topk: Callable | None = None


def _torch_backend() -> Backend:
    import torch
    import torch.nn.functional as F

    def prefill_attn(q, k, v):
        # pinned to SDPA's flash kernel on the GPU, as the tables time it (calibration/opbench.py): left to its
        # dispatcher, torch 2.11 on an H100 runs cuDNN attention for some shapes and flash for others
        if not q.is_cuda:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])

    def decode_attn(q, k_cache, v_cache, lengths):
        # valid[b, c] = c < lengths[b]; broadcast over heads and the one query: (B, 1, 1, C)
        pos = torch.arange(k_cache.shape[2], device=q.device)
        valid = (pos[None, :] < lengths[:, None])[:, None, None, :]
        o = F.scaled_dot_product_attention(q[:, :, None, :], k_cache, v_cache, attn_mask=valid,
                                           enable_gqa=q.shape[1] != k_cache.shape[1])
        return o[:, :, 0, :]  # (B, Hq, D)

    def add_norm(x, y, w, b):
        if y is not None:
            x = x + y
        if b is None:
            return x, F.rms_norm(x, x.shape[-1:], w, eps=EPS)
        return x, F.layer_norm(x, x.shape[-1:], w, b, eps=EPS)

    def rope_write(qkv, cos, sin, cache, pos):
        hkv = cache.k.shape[1]
        hq = qkv.shape[2] - 2 * hkv
        qk, v = qkv[:, :, :hq + hkv], qkv[:, :, hq + hkv:]  # (B, S, h, D) views
        if cos is not None:  # q and k in one pass: x * cos + swap_halves(x) * sin (sin signed)
            cos, sin = cos[None, :, None], sin[None, :, None]  # (1, S, 1, D)
            half = qkv.shape[-1] // 2
            qk = torch.addcmul(qk * cos, torch.cat([qk[..., half:], qk[..., :half]], dim=-1), sin)
        k, v = qk[:, :, hq:].transpose(1, 2), v.transpose(1, 2)  # (B, Hkv, S, D)
        if pos is None:
            cache.write_prefill(k, v)
        else:
            cache.write_step(k, v, pos)
        return qk[:, :, :hq]

    def act(up, kind):
        if kind == "swiglu":
            g, u = up.chunk(2, dim=-1)
            return F.silu(g) * u
        return F.gelu(up, approximate="tanh")

    return Backend("torch", F.linear, prefill_attn, decode_attn, add_norm, rope_write, act)


def _triton_backend() -> Backend:
    from kernels import fused
    from kernels.decode_attention import decode_attention
    from kernels.gemm import matmul
    from kernels.moe import moe_ffn
    from kernels.prefill_attention import prefill_attention
    from kernels.routing import router_topk

    def linear(x, w):
        return matmul(x, w, w_layout="nk")

    def prefill_attn(q, k, v):
        return prefill_attention(q, k, v, causal=True)

    def add_norm(x, y, w, b):
        return fused.add_norm(x, y, w, b, eps=EPS)

    def rope_write(qkv, cos, sin, cache, pos):
        return fused.rope_write(qkv, cos, sin, cache.k, cache.v, pos)

    return Backend("triton", linear, prefill_attn, decode_attention, add_norm, rope_write, fused.act, moe=moe_ffn,
                   router_topk=router_topk)


def get_backend(name: str) -> Backend:
    """The kernels of stack `name` (one of BACKENDS); torch and triton are imported here, lazily."""
    if name == "torch":
        return _torch_backend()
    if name == "triton":
        return _triton_backend()
    raise UserError(f"backend '{name}' is unknown; use one of {', '.join(BACKENDS)}")
