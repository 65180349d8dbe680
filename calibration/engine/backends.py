"""The software-stack switch: the three kernels the engine calls, from our Triton kernels or from torch.

`triton`: kernels.gemm.matmul, kernels.prefill_attention, kernels.decode_attention (CONTRACTS.md).
`torch`: cuBLAS through F.linear and torch's SDPA (flash on the GPU). Everything else (norms,
activations, rotary, MoE routing) is plain torch in both stacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from simulator.errors import UserError

BACKENDS = ("triton", "torch")


@dataclass(frozen=True)
class Backend:
    """The kernels of one stack: linear(x, w), prefill_attn(q, k, v), decode_attn(q, k, v, lengths)."""

    name: str
    linear: Callable  # x (T, K), w (N, K) -> (T, N)
    prefill_attn: Callable  # q (B, Hq, S, D), k/v (B, Hkv, S, D) -> (B, Hq, S, D), causal
    decode_attn: Callable  # q (B, Hq, D), caches (B, Hkv, C, D), lengths (B,) int32 -> (B, Hq, D)


def _torch_backend() -> Backend:
    import torch
    import torch.nn.functional as F

    def prefill_attn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])

    def decode_attn(q, k_cache, v_cache, lengths):
        # valid[b, c] = c < lengths[b]; broadcast over heads and the one query: (B, 1, 1, C)
        pos = torch.arange(k_cache.shape[2], device=q.device)
        valid = (pos[None, :] < lengths[:, None])[:, None, None, :]
        o = F.scaled_dot_product_attention(q[:, :, None, :], k_cache, v_cache, attn_mask=valid,
                                           enable_gqa=q.shape[1] != k_cache.shape[1])
        return o[:, :, 0, :]  # (B, Hq, D)

    return Backend("torch", F.linear, prefill_attn, decode_attn)


def _triton_backend() -> Backend:
    from kernels.decode_attention import decode_attention
    from kernels.gemm import matmul
    from kernels.prefill_attention import prefill_attention

    def linear(x, w):
        return matmul(x, w, w_layout="nk")

    def prefill_attn(q, k, v):
        return prefill_attention(q, k, v, causal=True)

    return Backend("triton", linear, prefill_attn, decode_attention)


def get_backend(name: str) -> Backend:
    """The kernels of stack `name` (one of BACKENDS); torch and triton are imported here, lazily."""
    if name == "torch":
        return _torch_backend()
    if name == "triton":
        return _triton_backend()
    raise UserError(f"backend '{name}' is unknown; use one of {', '.join(BACKENDS)}")
