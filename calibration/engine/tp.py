"""Megatron-style tensor parallelism: what each of t ranks holds, how full weights are cut, process groups.

Column-parallel: the fused QKV and gate/up projections (split by heads and by FFN columns);
row-parallel: the attention output and FFN down projections, followed by one all-reduce (one per
parallel block). KV heads fewer than t (MQA) are replicated: rank r keeps the KV head its query
heads read. The LM head is split by vocabulary and its logits all-gathered; the embedding is
replicated (a lookup touches only a few rows).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.ops import vocab_shard


@dataclass(frozen=True)
class LocalShape:
    """Sizes on one rank of t: heads, KV heads, FFN columns, expert FFN columns, vocabulary rows."""

    t: int
    rank: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    expert_ffn_hidden: int
    shared_ffn_hidden: int  # the always-on experts, fused into one MLP
    vocab: int  # simulator.ops.vocab_shard: vocab / t padded to 64 rows; padding rows are sliced off the logits
    kv_head_start: int  # first global KV head this rank keeps


def _split(total: int, t: int, field: str, arch: ArchSpec) -> int:
    if total % t:
        raise UserError(f"{arch.name}: {field}={total} is not divisible by t={t}; choose t among its divisors")
    return total // t


def local_shape(arch: ArchSpec, t: int = 1, rank: int = 0) -> LocalShape:
    """What rank `rank` of `t` holds; raises UserError when the arch cannot be split t ways."""
    if t < 1 or not 0 <= rank < t:
        raise UserError(f"t={t}, rank={rank}: t must be >= 1 and rank in 0..t-1")
    n_heads = _split(arch.n_heads, t, "n_heads", arch)
    if arch.n_kv_heads >= t:
        n_kv = _split(arch.n_kv_heads, t, "n_kv_heads", arch)
        kv_start = rank * n_kv
    else:  # replicate: the KV head of this rank's first query head serves all of them
        if t % arch.n_kv_heads:
            raise UserError(f"{arch.name}: t={t} is not a multiple of n_kv_heads={arch.n_kv_heads}")
        n_kv = 1
        kv_start = rank * n_heads // (arch.n_heads // arch.n_kv_heads)
    ffn = _split(arch.ffn_hidden, t, "ffn_hidden", arch) if arch.ffn_hidden and not arch.is_moe else 0
    expert = _split(arch.expert_ffn_hidden, t, "expert_ffn_hidden", arch) if arch.is_moe else 0
    return LocalShape(t=t, rank=rank, n_heads=n_heads, n_kv_heads=n_kv, ffn_hidden=ffn,
                      expert_ffn_hidden=expert, shared_ffn_hidden=expert * arch.n_shared_experts,
                      vocab=vocab_shard(arch.vocab, t), kv_head_start=kv_start)


def _cols(w, parts: list[tuple[int, int, int]]):
    """Concatenate row blocks of w: each part (start, stop, unit) selects rows start*unit:stop*unit."""
    import torch

    return torch.cat([w[a * u:b * u] for a, b, u in parts], 0)


def shard_state_dict(full: dict, arch: ArchSpec, shape: LocalShape) -> dict:
    """Cut a t=1 state dict (model.Transformer's names) into rank `shape.rank`'s shard of `shape.t`.

    Fused weights are cut part by part: wqkv into its q, k and v heads, a SwiGLU w_up into gate and up.
    """
    import torch

    r, d = shape.rank, arch.head_dim
    hq, hkv = shape.n_heads, shape.n_kv_heads
    out = {}
    for name, w in full.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "wqkv":  # rows: q heads, then k heads, then v heads
            nq, nk = arch.n_heads, arch.n_kv_heads
            k0 = nq + shape.kv_head_start
            out[name] = _cols(w, [(r * hq, (r + 1) * hq, d), (k0, k0 + hkv, d), (k0 + nk, k0 + nk + hkv, d)])
        elif leaf == "wo":  # (hidden, q_dim): split the input columns by heads
            out[name] = w[:, r * hq * d:(r + 1) * hq * d]
        elif leaf in ("w_up", "w2"):
            out[name] = _shard_ffn(leaf, w, r, shape.t, fused=arch.ffn_kind == "swiglu")
        elif leaf == "lm_head":
            rows = w[r * shape.vocab:(r + 1) * shape.vocab]
            pad = shape.vocab - rows.shape[0]
            out[name] = torch.cat([rows, rows.new_zeros(pad, w.shape[1])]) if pad else rows
        else:  # embeddings, norms, router: replicated
            out[name] = w
    return {k: v.contiguous() for k, v in out.items()}


def _shard_ffn(leaf: str, w, r: int, t: int, fused: bool):
    """FFN weights, dense (.., H) or experts (E, .., H): w_up rows ([gate; up] blocks when fused), w2 columns."""
    import torch

    if leaf == "w2":  # (.., hidden, F): split F
        f = w.shape[-1] // t
        return w[..., r * f:(r + 1) * f]
    blocks = w.chunk(2, dim=-2) if fused else (w,)
    f = blocks[0].shape[-2] // t
    return torch.cat([blk[..., r * f:(r + 1) * f, :] for blk in blocks], dim=-2)


def init_distributed() -> tuple[int, int, object]:
    """(rank, t, group) from torchrun's environment; (0, 1, None) when not started by torchrun."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo")
    return rank, world, dist.group.WORLD
