"""Engine variant `fp8_kv`: the `fp8` variant (FP8 weights and activations) with an FP8 (e4m3) KV cache.

Each layer's cache holds K / K_SCALE and V / V_SCALE as float8_e4m3fn, one static per-tensor scale each (1.0, as
engines use where a checkpoint carries no calibrated KV scales: the random weights keep K and V of order one).
The rotary + KV-cache write is kernels.decode_attention_fp8.rope_write_fp8 (for a prefill it also hands the
rotated bf16 K and V to prefill attention, which runs on them, not on the cache) and decode attention is
kernels.decode_attention_fp8.decode_attention_fp8, reading one byte a cached element. Rows carry the architecture
at `PRECISION` (kv fp8), predicted with the `decode_attn_fp8` class.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from calibration.engine.backends import Backend
from calibration.engine.kvcache import KVCache
from calibration.engine.runner import Engine
from calibration.engine_variants import fp8
from simulator.arch import ArchSpec

FUSED = True
PRECISION = replace(fp8.PRECISION, kv="fp8")
K_SCALE = V_SCALE = 1.0  # static per-tensor scales of every layer's K and V cache


class Fp8KVCache(KVCache):
    """A layer's K and V cache in float8_e4m3fn; `pending` holds a prefill's bf16 K and V until attention reads
    them (`window`)."""

    def __init__(self, b: int, n_kv_heads: int, s_max: int, head_dim: int, dtype, device):
        super().__init__(b, n_kv_heads, s_max, head_dim, torch.float8_e4m3fn, device)
        self.pending: tuple | None = None

    def window(self, c: int):
        """A prefill's bf16 K and V (B, Hkv, S, D) right after its write; else the first c cached positions."""
        if self.pending is not None:
            out, self.pending = self.pending, None
            return out
        return super().window(c)


def fp8_kv_backend(base: Backend) -> Backend:
    """`base` (the fp8 variant's backend) with the FP8 cache's write and decode attention."""
    from kernels.decode_attention_fp8 import decode_attention_fp8, rope_write_fp8

    def rope_write(qkv, cos, sin, cache, pos):
        q, k16, v16 = rope_write_fp8(qkv, cos, sin, cache.k, cache.v, K_SCALE, V_SCALE, pos)
        cache.pending = None if pos is not None else (k16, v16)
        return q

    def decode_attn(q, k_cache, v_cache, lengths):
        return decode_attention_fp8(q, k_cache, v_cache, lengths, K_SCALE, V_SCALE)
    return replace(base, name="fp8_kv", rope_write=rope_write, decode_attn=decode_attn)


def make_engine(arch: ArchSpec, t: int = 1, rank: int = 0, group=None, device: str = "cuda",
                dtype=torch.bfloat16, **engine_args) -> Engine:
    """The fp8 variant's engine of `arch` with FP8 KV caches (see the module docstring)."""
    engine = fp8.make_engine(arch, t=t, rank=rank, group=group, device=device, dtype=dtype, **engine_args)
    be = fp8_kv_backend(engine.model.be)
    for module in engine.model.modules():
        if hasattr(module, "be"):
            module.be = be
    model = engine.model

    def setup_caches(b: int, s_max: int) -> None:
        for layer in model.layers:
            layer.cache = None
        for layer in model.layers:
            layer.cache = Fp8KVCache(b, model.sh.n_kv_heads, s_max, model.arch.head_dim, model.dtype, model.device)
    model.setup_caches = setup_caches
    return engine


def served_arch(arch: ArchSpec) -> ArchSpec:
    """The architecture as this engine serves it: at PRECISION (weights and KV cache fp8)."""
    return replace(arch, precision=PRECISION)
