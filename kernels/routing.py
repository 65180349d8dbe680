"""MoE routing in one Triton launch: softmax over the experts, top-k, renormalise, cast (vLLM's topk_softmax).

The router GEMM's logits (T, E) go in; the k experts of each token (ids, descending) and their weights come
out, ready for kernels.moe.moe_ffn. In CUDA-graph decode the torch version (`router_topk_ref`: softmax,
torch.topk, divide, cast) costs four or five small kernels a layer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import triton
import triton.language as tl


if TYPE_CHECKING:
    import torch


# router_topk's kernel: one program per ROUTER_BLOCK_T tokens, each token's whole row of experts in registers.
ROUTER_BLOCK_T = 16
ROUTER_MAX_EXPERTS = 256  # one (ROUTER_BLOCK_T, 256) fp32 tile: 32 registers a thread at 4 warps


@triton.jit
def _router_topk_kernel(
    # pointers: logits (T, E) any float; outputs weights (T, k) out dtype, idx (T, k) int32, both contiguous
    logits_ptr, weights_ptr, idx_ptr,
    # sizes
    n_tokens, n_experts,
    # strides of logits
    stride_t, stride_e,
    # meta-parameters
    K: tl.constexpr, RENORMALIZE: tl.constexpr, BLOCK_T: tl.constexpr, E_PAD: tl.constexpr, K_PAD: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)  # (BLOCK_T,) tokens
    cols = tl.arange(0, E_PAD)  # (E_PAD,) experts
    ptrs = logits_ptr + rows.to(tl.int64)[:, None] * stride_t + cols[None, :] * stride_e
    x = tl.load(ptrs, mask=(rows[:, None] < n_tokens) & (cols[None, :] < n_experts), other=0.0).to(tl.float32)
    avail = (cols[None, :] < n_experts) & (rows[:, None] >= 0)  # (BLOCK_T, E_PAD) experts not yet picked
    x = tl.where(avail, x, float("-inf"))
    row_max = tl.max(x, 1)  # (BLOCK_T,)
    denom = tl.sum(tl.exp(x - row_max[:, None]), 1)  # softmax's denominator (padding: exp(-inf) = 0)
    slot = tl.arange(0, K_PAD)[None, :]  # (1, K_PAD)
    top_w = tl.zeros((BLOCK_T, K_PAD), dtype=tl.float32)
    top_i = tl.zeros((BLOCK_T, K_PAD), dtype=tl.int32)
    for j in range(K):  # pick by logit (softmax is monotone): the largest left, its lowest index on ties
        left = tl.where(avail, x, float("-inf"))
        best = tl.max(left, 1)  # (BLOCK_T,)
        pick = tl.min(tl.where(avail & (left == best[:, None]), cols[None, :], E_PAD), 1)  # (BLOCK_T,)
        avail = avail & (cols[None, :] != pick[:, None])
        top_w = tl.where(slot == j, (tl.exp(best - row_max) / denom)[:, None], top_w)  # its softmax probability
        top_i = tl.where(slot == j, pick[:, None], top_i)
    if RENORMALIZE:
        top_w = top_w / tl.sum(top_w, 1)[:, None]  # slots past K hold 0
    out = rows.to(tl.int64)[:, None] * K + slot  # (BLOCK_T, K_PAD)
    ok = (rows[:, None] < n_tokens) & (slot < K)
    tl.store(weights_ptr + out, top_w.to(weights_ptr.dtype.element_ty), mask=ok)
    tl.store(idx_ptr + out, top_i, mask=ok)


def _check_router(logits, k: int, out_dtype) -> None:
    import torch

    floats = (torch.float32, torch.bfloat16, torch.float16)
    if logits.dim() != 2 or logits.dtype not in floats:
        raise ValueError(f"router_topk: logits {tuple(logits.shape)} {logits.dtype}: pass (T, E) float32, bfloat16 or "
                        "float16")
    e = logits.shape[1]
    if not 1 <= e <= ROUTER_MAX_EXPERTS:
        raise ValueError(f"router_topk: E={e} experts; the kernel takes 1..{ROUTER_MAX_EXPERTS} (use router_topk_ref)")
    if not 1 <= k <= e:
        raise ValueError(f"router_topk: k={k} with E={e} experts; use 1 <= k <= E")
    if out_dtype is not None and out_dtype not in floats:
        raise ValueError(f"router_topk: out_dtype={out_dtype}; use torch.float32, torch.bfloat16, torch.float16 or None")


def router_topk(logits: "torch.Tensor", k: int, renormalize: bool = True,
                out_dtype: "torch.dtype | None" = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Routing of a MoE layer in one launch: the k largest of p = softmax(logits) (fp32), in descending order
    -> weights (T, k) (p, or p / sum of the k when renormalize; in out_dtype, default logits.dtype), idx (T, k)
    int32.

    logits (T, E), E <= ROUTER_MAX_EXPERTS, any row stride. Experts are picked by fp32 logit, which orders
    them as the probabilities do, so an approximate exp never changes the choice; equal logits go lowest
    index first (torch.topk leaves the order of ties unspecified). Matches `router_topk_ref` to fp32
    rounding, with the same indices except among exactly tied probabilities. Static sizes, no host sync.
    """
    import torch

    _check_router(logits, k, out_dtype)
    t, e = logits.shape
    weights = torch.empty((t, k), dtype=out_dtype or logits.dtype, device=logits.device)  # (T, k)
    idx = torch.empty((t, k), dtype=torch.int32, device=logits.device)  # (T, k)
    if t == 0:
        return weights, idx
    _router_topk_kernel[(triton.cdiv(t, ROUTER_BLOCK_T),)](
        logits, weights, idx, t, e, logits.stride(0), logits.stride(1),
        K=k, RENORMALIZE=renormalize, BLOCK_T=ROUTER_BLOCK_T, E_PAD=triton.next_power_of_2(e),
        K_PAD=triton.next_power_of_2(k), num_warps=4,
    )
    return weights, idx


def router_topk_ref(logits: "torch.Tensor", k: int, renormalize: bool = True,
                    out_dtype: "torch.dtype | None" = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The engine's torch routing (model.MoE without `Backend.router_topk`): softmax in float32, torch.topk,
    divided by the sum of the k when renormalize, cast to out_dtype (default logits.dtype) -> weights (T, k),
    idx (T, k) int64 (torch.topk's). About five GPU kernels."""
    import torch
    import torch.nn.functional as F

    weights, idx = torch.topk(F.softmax(logits.float(), dim=-1), k)  # (T, k) fp32, int64
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights.to(out_dtype or logits.dtype), idx
