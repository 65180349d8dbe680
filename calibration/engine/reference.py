"""A plain forward of the engine's weights, written independently of model.py, to check its logits.

Float32, whole sequence at once, no cache, no custom kernels, a Python loop over experts: slow and
obviously right. It reads a t=1 state dict (model.Transformer's parameter names).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from simulator.arch import ArchSpec


def _norm(arch: ArchSpec, sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    w = sd[prefix + ".w"]
    if arch.norm == "rmsnorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    return F.layer_norm(x, x.shape[-1:], w, sd[prefix + ".b"], eps=1e-5)


def _act(arch: ArchSpec, up: torch.Tensor) -> torch.Tensor:
    if arch.ffn_kind == "swiglu":
        f = up.shape[-1] // 2
        return F.silu(up[..., :f]) * up[..., f:]
    return F.gelu(up, approximate="tanh")


def _mlp(arch: ArchSpec, sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    if not arch.is_moe:
        return _act(arch, x @ sd[prefix + ".w_up"].T) @ sd[prefix + ".w2"].T
    probs = torch.softmax(x @ sd[prefix + ".wr"].T, dim=-1)  # (B, S, E)
    top, idx = probs.topk(arch.experts_per_token, dim=-1)
    top = top / top.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for e in range(arch.n_experts):
        gate = (top * (idx == e)).sum(-1, keepdim=True)  # (B, S, 1), 0 where e is not chosen
        out += gate * (_act(arch, x @ sd[prefix + ".w_up"][e].T) @ sd[prefix + ".w2"][e].T)
    if prefix + ".shared.w_up" in sd:
        out += _mlp(arch.with_(n_experts=0, experts_per_token=0, ffn_hidden=1), sd, prefix + ".shared", x)
    return out


def _rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, h, S, D) rotated by position: pairs (i, i + D/2) turn by pos / 10000^(2i/D)."""
    d = x.shape[-1]
    ang = positions[:, None].float() * 10000.0 ** (-torch.arange(0, d, 2, device=x.device).float() / d)
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., :d // 2], x[..., d // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


@torch.no_grad()
def reference_logits(arch: ArchSpec, state_dict: dict, tokens: torch.Tensor) -> torch.Tensor:
    """tokens (B, S) -> float32 logits (B, S, vocab) of a causal forward from position 0."""
    sd = {k: v.float() for k, v in state_dict.items()}
    b, s = tokens.shape
    d, hq, hkv = arch.head_dim, arch.n_heads, arch.n_kv_heads
    positions = torch.arange(s, device=tokens.device)
    x = sd["tok_emb"][tokens]  # (B, S, H)
    if "pos_emb" in sd:
        x = x + sd["pos_emb"][:s]
    causal = torch.ones(s, s, dtype=torch.bool, device=tokens.device).tril()
    for i in range(arch.n_layers):
        p = f"layers.{i}"
        h = _norm(arch, sd, p + ".norm1", x)
        qkv = h @ sd[p + ".wqkv"].T
        q, k, v = qkv.split([hq * d, hkv * d, hkv * d], dim=-1)
        q, k, v = (z.view(b, s, -1, d).transpose(1, 2) for z in (q, k, v))  # (B, h, S, D)
        if arch.positions == "rotary":
            q, k = _rotate(q, positions), _rotate(k, positions)
        k, v = (z.repeat_interleave(hq // hkv, dim=1) for z in (k, v))
        scores = (q @ k.transpose(-1, -2)) / d ** 0.5  # (B, hq, S, S)
        att = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v
        a = att.transpose(1, 2).reshape(b, s, hq * d) @ sd[p + ".wo"].T
        if arch.parallel_block:
            x = x + a + _mlp(arch, sd, p + ".mlp", h)
        else:
            x = x + a
            x = x + _mlp(arch, sd, p + ".mlp", _norm(arch, sd, p + ".norm2", x))
    return _norm(arch, sd, "norm", x) @ sd["lm_head"][:arch.vocab].T
