"""The reference decoder's forward over cache slots: a prompt prefilled into one slot of the static KV cache, and
a decode step over slots 0..n-1 each at its own position. Same weights, norms, FFNs and kernels as
calibration/engine/model.py (its modules are called as they are); only rotary + KV write
(kernels.rope_slots: per-token slot and position) and the attention's inputs differ.

Shapes: T tokens of the forward (a prompt's p, or n decode rows); H hidden; D head dim.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from calibration.engine.model import Transformer


def _embed(model: Transformer, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """tokens, pos (T,) -> (T, H)."""
    x = model.tok_emb[tokens]
    return x if model.pos_emb is None else x + model.pos_emb[pos]


def _layers(model: Transformer, x: torch.Tensor, attention: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Every block on x (T, H) with attention(layer, h) -> (T, H); as model.Block.forward."""
    y = None
    for layer in model.layers:
        x, h = layer.norm1(x, y)
        if layer.norm2 is None:
            y = layer.reduce(attention(layer, h) + layer.mlp(h))
        else:
            x, h = layer.norm2(x, layer.reduce(attention(layer, h)))
            y = layer.reduce(layer.mlp(h))
    return x, y


def _qkv(model: Transformer, layer, h: torch.Tensor, rope_slots: Callable, slot, pos) -> torch.Tensor:
    """(T, Hq + 2 Hkv, D): the projections, q and k rotated at pos, k and v written at (slot, pos)."""
    qkv = model.be.linear(h, layer.wqkv).view(h.shape[0], -1, model.arch.head_dim)
    cos, sin = (None, None) if model.rope is None else model.rope
    rope_slots(qkv, cos, sin, layer.cache.k, layer.cache.v, slot, pos)
    return qkv


def prefill_slot(model: Transformer, rope_slots: Callable, tokens: torch.Tensor, slot: torch.Tensor,
                 pos: torch.Tensor) -> torch.Tensor:
    """A prompt tokens (p,) at positions pos = 0..p-1 into cache slot `slot` ((p,), one value) -> logits (1, vocab)
    of its last position. Attention reads the prompt's own keys and values (no earlier context)."""
    hq, hkv, d = model.sh.n_heads, model.sh.n_kv_heads, model.arch.head_dim
    p = tokens.shape[0]

    def attention(layer, h):
        qkv = _qkv(model, layer, h, rope_slots, slot, pos).transpose(0, 1)[None]  # (1, heads, p, D)
        o = model.be.prefill_attn(qkv[:, :hq], qkv[:, hq:hq + hkv], qkv[:, hq + hkv:])  # (1, hq, p, D)
        return model.be.linear(o.transpose(1, 2).reshape(p, hq * d), layer.wo)

    x, y = _layers(model, _embed(model, tokens, pos), attention)
    return model._logits(x[-1:], y[-1:])


def decode_slots(model: Transformer, rope_slots: Callable, tokens: torch.Tensor, slot: torch.Tensor,
                 pos: torch.Tensor, c: int) -> torch.Tensor:
    """One token per slot 0..n-1: tokens, pos (n,), slot = arange(n) -> logits (n, vocab); slot i reads its
    first pos[i] + 1 cache rows (every pos[i] < c, the context bucket)."""
    hq, d = model.sh.n_heads, model.arch.head_dim
    n = tokens.shape[0]
    lengths = (pos + 1).to(torch.int32)  # (n,) after this step's write

    def attention(layer, h):
        qkv = _qkv(model, layer, h, rope_slots, slot, pos)
        k, v = layer.cache.k[:n, :, :c], layer.cache.v[:n, :, :c]  # (n, Hkv, c, D) views
        o = model.be.decode_attn(qkv[:, :hq], k, v, lengths)  # (n, hq, D)
        return model.be.linear(o.reshape(n, hq * d), layer.wo)

    x, y = _layers(model, _embed(model, tokens, pos), attention)
    return model._logits(x, y)
