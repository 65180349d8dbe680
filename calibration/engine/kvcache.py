"""Static KV cache: one preallocated (B, Hkv, S_max, D) pair per layer, written in place.

Static shapes let decode be captured once as a CUDA graph; a decode step reads only the first
C positions (the context bucket the graph was captured for).
"""
from __future__ import annotations


class KVCache:
    """K and V of one layer for b sequences of up to s_max tokens; all sequences share positions."""

    def __init__(self, b: int, n_kv_heads: int, s_max: int, head_dim: int, dtype, device):
        import torch

        self.k = torch.zeros(b, n_kv_heads, s_max, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)

    def write_prefill(self, k, v) -> None:
        """k, v (B, Hkv, S, D): the prompt's keys and values, at positions 0..S-1."""
        s = k.shape[2]
        self.k[:, :, :s] = k
        self.v[:, :, :s] = v

    def write_step(self, k, v, pos) -> None:
        """k, v (B, Hkv, 1, D) at position pos (a (1,) int64 tensor, so a graph can replay it)."""
        self.k.index_copy_(2, pos, k)
        self.v.index_copy_(2, pos, v)

    def window(self, c: int):
        """The first c positions of K and V: (B, Hkv, c, D) views."""
        return self.k[:, :, :c], self.v[:, :, :c]


def kv_bytes(b: int, n_layers: int, n_kv_heads: int, s_max: int, head_dim: int, elem_bytes: int = 2) -> int:
    """Bytes the caches of all layers take: K and V, b x Hkv x S_max x D each."""
    return 2 * n_layers * b * n_kv_heads * s_max * head_dim * elem_bytes
