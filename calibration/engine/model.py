"""The reference decoder, built from an ArchSpec: one flat file in the manner of gpt-fast.

Covers dense and MoE FFNs, MHA/GQA/MQA, GELU and SwiGLU, sequential and parallel blocks, RMSNorm and
LayerNorm, rotary and learned (or sinusoidal, as a table) positions. Approximations, each a fraction
of a percent of the work: no linear biases; rotary on the whole head; parallel blocks share one norm;
ALiBi models run without the bias (our flash kernels take none). MoE: the triton stack runs the routed
experts as grouped GEMMs (kernels.moe: each touched expert read once a step, one graph-safe path for
every token count); the torch stack gathers or buckets them and is not ideal at small batch: see MoE.
Activations are 2-D (T, hidden) with T = B x S tokens. Each block returns the residual stream and its
output not yet added, so every residual add is done by the next norm's kernel (Backend.add_norm).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from calibration.engine.backends import Backend
from calibration.engine.kvcache import KVCache
from calibration.engine.tp import LocalShape
from simulator.arch import ArchSpec


@dataclass
class Ctx:
    """What one forward needs besides the tokens: batch, length, rotary rows, and for decode the position."""

    b: int
    s: int
    cos: torch.Tensor | None  # (S, D) rotary rows of this forward, or None without rotary
    sin: torch.Tensor | None
    pos: torch.Tensor | None = None  # decode: (1,) int64 position of the new token
    lengths: torch.Tensor | None = None  # decode: (B,) int32 tokens in the cache after this step
    c: int = 0  # decode: cache positions the step reads (its context bucket)


class Block(nn.Module):
    """One decoder layer; its `reduce` is the all-reduce after row-parallel outputs (identity at t=1)."""

    def __init__(self, arch: ArchSpec, sh: LocalShape, be: Backend, reduce, mk):
        super().__init__()
        self.arch, self.sh, self.be, self.reduce = arch, sh, be, reduce
        d, h = arch.head_dim, arch.hidden
        self.norm1 = Norm(arch, be, mk)
        self.norm2 = None if arch.parallel_block else Norm(arch, be, mk)
        self.wqkv = mk((sh.n_heads + 2 * sh.n_kv_heads) * d, h)
        self.wo = mk(h, sh.n_heads * d)
        self.mlp = MoE(arch, sh, be, mk) if arch.is_moe else MLP(arch, sh.ffn_hidden, be, mk)
        self.cache: KVCache | None = None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, ctx: Ctx) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual x, previous block's output y not yet added; None before the first) -> the same pair."""
        x, h = self.norm1(x, y)
        if self.norm2 is None:  # parallel: both branches read h; one all-reduce for their sum
            return x, self.reduce(self.attention(h, ctx) + self.mlp(h))
        x, h = self.norm2(x, self.reduce(self.attention(h, ctx)))
        return x, self.reduce(self.mlp(h))

    def attention(self, h: torch.Tensor, ctx: Ctx) -> torch.Tensor:
        hq, d = self.sh.n_heads, self.arch.head_dim
        qkv = self.be.linear(h, self.wqkv).view(ctx.b, ctx.s, -1, d)  # (B, S, hq + 2 hkv, D)
        q = self.be.rope_write(qkv, ctx.cos, ctx.sin, self.cache, ctx.pos)  # (B, S, hq, D); k, v into the cache
        if ctx.pos is None:
            k, v = self.cache.window(ctx.s)
            o = self.be.prefill_attn(q.transpose(1, 2), k, v).transpose(1, 2)  # (B, S, hq, D)
        else:
            k, v = self.cache.window(ctx.c)
            o = self.be.decode_attn(q[:, 0], k, v, ctx.lengths)  # (B, hq, D)
        return self.be.linear(o.reshape(ctx.b * ctx.s, hq * d), self.wo)  # (T, hq*D) -> (T, H)


class Norm(nn.Module):
    """The residual add folded into RMSNorm or LayerNorm over the hidden size (gain, plus bias for LayerNorm)."""

    def __init__(self, arch: ArchSpec, be: Backend, mk):
        super().__init__()
        self.be = be
        self.w = mk(arch.hidden)
        self.b = None if arch.norm == "rmsnorm" else mk(arch.hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y (T, H) -> (x + y, norm(x + y)); y None: (x, norm(x))."""
        return self.be.add_norm(x, y, self.w, self.b)


class MLP(nn.Module):
    """Dense FFN: w_up = [gate; up] rows (SwiGLU) or up rows (GELU), then w2; columns split t ways."""

    def __init__(self, arch: ArchSpec, f: int, be: Backend, mk):
        super().__init__()
        self.kind, self.be = arch.ffn_kind, be
        self.w_up = mk((2 if self.kind == "swiglu" else 1) * f, arch.hidden)
        self.w2 = mk(arch.hidden, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.be.linear(self.be.act(self.be.linear(x, self.w_up), self.kind), self.w2)


class MoE(nn.Module):
    """Routed experts (top-k of a replicated router, weights renormalised) plus fused shared experts.

    Dropless. When the backend has a grouped MoE (`Backend.moe`: the triton stack's kernels.moe.moe_ffn)
    it runs every token count, decode and prefill: (token, slot) pairs sorted by expert on the device,
    one grouped-GEMM launch per projection reading each touched expert's weights once, no host sync
    (CUDA graphs capture it). Otherwise (the torch stack) two schedules: at few tokens (3*T*k <= E,
    decode at batch 1) the chosen experts' weights are gathered (read ~3 times); else tokens are sorted
    into per-expert buckets and every expert runs one batched GEMM (torch.bmm) over its bucket. A bucket
    holds T rows up to SYNC_FREE_TOKENS tokens (no host sync), else the largest expert load rounded up
    to 16 (one host sync a layer: eager).
    """

    SYNC_FREE_TOKENS = 128

    def __init__(self, arch: ArchSpec, sh: LocalShape, be: Backend, mk):
        super().__init__()
        self.kind, self.be, self.k, self.e = arch.ffn_kind, be, arch.experts_per_token, arch.n_experts
        up = (2 if self.kind == "swiglu" else 1) * sh.expert_ffn_hidden
        self.wr = mk(arch.n_experts, arch.hidden)
        self.w_up = mk(arch.n_experts, up, arch.hidden)
        self.w2 = mk(arch.n_experts, arch.hidden, sh.expert_ffn_hidden)
        self.shared = MLP(arch, sh.shared_ffn_hidden, be, mk) if sh.shared_ffn_hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.be.linear(x, self.wr)  # (T, E)
        if self.be.router_topk is not None:  # softmax, top-k, renormalise, cast: one launch
            weights, idx = self.be.router_topk(logits, self.k, out_dtype=x.dtype)  # (T, k), int32 ids
        else:
            weights, idx = torch.topk(F.softmax(logits.float(), dim=-1), self.k)  # (T, k)
            weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        if self.be.moe is not None:
            out = self.be.moe(x, self.w_up, self.w2, weights, idx, self.kind, self.be.act)  # (T, H)
        elif 3 * x.shape[0] * self.k <= self.e:
            out = self._gathered(x, weights, idx)
        else:
            out = self._bucketed(x, weights, idx)
        return out if self.shared is None else out + self.shared(x)

    def _gathered(self, x, weights, idx):
        w_up, w2 = self.w_up[idx], self.w2[idx]  # (T, k, U, H), (T, k, H, F)
        a = self.be.act(torch.einsum("th,tkuh->tku", x, w_up), self.kind)  # (T, k, F)
        return torch.einsum("tkf,tkhf,tk->th", a, w2, weights)

    def _bucketed(self, x, weights, idx):
        t, h = x.shape
        flat = idx.flatten()  # (T*k,) expert of each (token, slot)
        order = torch.argsort(flat, stable=True)
        expert = flat[order]
        counts = torch.zeros(self.e, dtype=torch.long, device=x.device).scatter_add_(0, flat, torch.ones_like(flat))
        cap = t if t <= self.SYNC_FREE_TOKENS else -(-int(counts.max()) // 16) * 16  # rows per bucket
        rank = torch.arange(flat.numel(), device=x.device) - (torch.cumsum(counts, 0) - counts)[expert]
        slot = expert * cap + rank  # (T*k,) row of each sorted (token, slot) in the buckets
        tok = order // self.k
        buf = x.new_zeros(self.e * cap, h).index_copy_(0, slot, x[tok])  # (E*cap, H)
        a = self.be.act(torch.bmm(buf.view(self.e, cap, h), self.w_up.transpose(1, 2)), self.kind)  # (E, cap, F)
        y = torch.bmm(a, self.w2.transpose(1, 2)).view(self.e * cap, h)
        return torch.zeros_like(x).index_add_(0, tok, y[slot] * weights.flatten()[order, None])


def rope_table(head_dim: int, n_pos: int, dtype, device, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin ([-sin, sin]) of every position, each frequency twice: (n_pos, D) each, in `dtype`.

    Rotary on halves of the head is then x' = x * cos + swap_halves(x) * sin (Backend.rope_write).
    """
    inv = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    ang = torch.outer(torch.arange(n_pos, device=device, dtype=torch.float32), inv)  # (n_pos, D/2)
    cos, sin = ang.cos(), ang.sin()
    return torch.cat([cos, cos], -1).to(dtype), torch.cat([-sin, sin], -1).to(dtype)


class Transformer(nn.Module):
    """The whole decoder on one rank: embeddings, blocks, final norm, vocabulary-split LM head."""

    def __init__(self, arch: ArchSpec, sh: LocalShape, be: Backend, dtype=torch.bfloat16,
                 device="cuda", group=None):
        super().__init__()
        self.arch, self.sh, self.be, self.group = arch, sh, be, group
        self.dtype, self.device = dtype, torch.device(device)

        def mk(*shape):
            return nn.Parameter(torch.empty(*shape, dtype=dtype, device=device), requires_grad=False)

        reduce = self._all_reduce if group is not None else (lambda y: y)
        self.tok_emb = mk(arch.vocab, arch.hidden)
        self.pos_emb = mk(arch.max_positions, arch.hidden) if arch.positions in ("learned", "sinusoidal") else None
        self.layers = nn.ModuleList(Block(arch, sh, be, reduce, mk) for _ in range(arch.n_layers))
        self.norm = Norm(arch, be, mk)
        self.lm_head = self.tok_emb if arch.tied_embeddings and sh.t == 1 else mk(sh.vocab, arch.hidden)
        self.rope = rope_table(arch.head_dim, arch.max_positions, dtype, device) if arch.positions == "rotary" else None

    def _all_reduce(self, y: torch.Tensor) -> torch.Tensor:
        torch.distributed.all_reduce(y, group=self.group)
        return y

    def setup_caches(self, b: int, s_max: int) -> None:
        """Allocate each layer's static KV cache for b sequences of up to s_max tokens (frees the old)."""
        for layer in self.layers:
            layer.cache = None
        for layer in self.layers:
            layer.cache = KVCache(b, self.sh.n_kv_heads, s_max, self.arch.head_dim, self.dtype, self.device)

    def graph_safe(self, n_tokens: int) -> bool:
        """Whether a forward of n_tokens can be captured in a CUDA graph (the torch stack's large MoE buckets sync
        the host; the grouped MoE of Backend.moe never does)."""
        return not self.arch.is_moe or self.be.moe is not None or n_tokens <= MoE.SYNC_FREE_TOKENS

    def prefill(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, S) at positions 0..S-1 -> logits (B, vocab) of the last position; fills the caches."""
        b, s = tokens.shape
        x = self.tok_emb[tokens.flatten()]  # (T, H)
        if self.pos_emb is not None:
            x = (x.view(b, s, -1) + self.pos_emb[:s]).view(b * s, -1)
        cos, sin = (None, None) if self.rope is None else (t[:s] for t in self.rope)  # (S, D)
        ctx, y = Ctx(b, s, cos, sin), None
        for layer in self.layers:
            x, y = layer(x, y, ctx)
        return self._logits(x.view(b, s, -1)[:, -1], y.view(b, s, -1)[:, -1])  # the last position's rows

    def decode(self, tokens: torch.Tensor, pos: torch.Tensor, c: int) -> torch.Tensor:
        """tokens (B,) at position pos ((1,) int64, same for all) -> logits (B, vocab); reads c cache rows."""
        b = tokens.shape[0]
        x = self.tok_emb[tokens]  # (B, H)
        if self.pos_emb is not None:
            x = x + self.pos_emb[pos]
        cos, sin = (None, None) if self.rope is None else (t[pos] for t in self.rope)  # (1, D)
        lengths = (pos + 1).to(torch.int32).repeat(b)  # (B,) contiguous: the kernel reads it densely
        ctx, y = Ctx(b, 1, cos, sin, pos=pos, lengths=lengths, c=c), None
        for layer in self.layers:
            x, y = layer(x, y, ctx)
        return self._logits(x, y)

    def _logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (B, H): the last block's residual and output -> (B, vocab): final add and norm, this rank's
        vocabulary rows, gathered over ranks."""
        logits = self.be.linear(self.norm(x, y)[1], self.lm_head)  # (B, V/t padded: tp.LocalShape.vocab)
        if self.group is None:
            return logits[:, :self.arch.vocab]
        dist = torch.distributed
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.13
        parts = logits.new_empty(self.sh.t * logits.shape[0], logits.shape[1])  # (t*B, V/t), rank-major
        gather(parts, logits.contiguous(), group=self.group)
        return parts.view(self.sh.t, *logits.shape).permute(1, 0, 2).reshape(x.shape[0], -1)[:, :self.arch.vocab]


@torch.no_grad()
def init_random_(model: Transformer, seed: int = 0) -> None:
    """Random weights in place, scaled so activations stay finite: matrices N(0, 1/fan_in), gains 1."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    for name, p in model.named_parameters():  # a tied LM head is listed once, as tok_emb
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("w", "b"):  # norm gain and bias
            p.fill_(1.0 if leaf == "w" else 0.0)
        elif leaf in ("tok_emb", "pos_emb"):
            p.normal_(0.0, 1.0, generator=g)
        else:
            p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
