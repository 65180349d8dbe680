"""The kernels transformers' eager forward launches (engine `hf-eager`), from the torch stack's unfused op list:
each op HF runs differently is replaced by the kernels its modeling code launches (transformers 5, modeling_llama,
modeling_opt, activations.py, cache_utils.py), in order, timed by the same table classes by bytes or GEMM shape.

- RMSNorm (Llama family) in fp32: to(float32), pow(2), mean, + eps, rsqrt, ×, to(bf16), × weight: eight kernels.
- gelu_new (the OPT family as the engine builds it): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), eight kernels.
- Separate q, k, v projections (Llama and OPT families) and gate, up projections (Llama); OPT scales q after its
  projection (one kernel).
- Rotary (Llama family) on q and k each: x·cos, −x₂, cat, ·sin, + (the first three on a strided operand).
- SwiGLU's silu and product (Llama) on the separate gate and up projections' contiguous outputs.
- The KV cache (a DynamicCache): each step concatenates a layer's cache with the new tokens (torch.cat), so a
  decode step copies the whole cache, a torch.cat (the prefill's concatenation to an empty cache is the torch
  stack's write).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from simulator.arch import ArchSpec
from simulator.hostmodel import hf_family
from simulator.opclasses import ACT_BYTES, op_cost

Op = Any  # simulator.ops.Op (which builds these lists and imports this module); new ops are copies of old ones

F32 = 4  # bytes of a float32 value
NORMS = ("norm_attn", "norm_mlp", "norm_final")


def _op(like: Op, name: str, op_class: str, shape: dict, count) -> Op:
    """An op of the given class and shape, made as a copy of `like` (an op of the same list)."""
    flops, nbytes = op_cost(op_class, shape)
    return replace(like, name=name, op_class=op_class, shape=shape, flops=flops, bytes=nbytes, count=count)


def _bytes(like: Op, name: str, op_class: str, nbytes, count, fn: str | None = None) -> Op:
    """An op timed by bytes; `fn`: the torch function of a `strided` op (simulator.opclasses.STRIDED_FNS)."""
    return _op(like, name, op_class, {"bytes": nbytes} | ({"fn": fn} if fn else {}), count)


def rms_norm(op: Op, hidden: int) -> list[Op]:
    """HF's fp32 RMSNorm on the rows of an unfused norm op (which reads and writes bf16 once)."""
    if "rows" in op.shape:  # the torch stack's norm class: rows of `hidden`
        rows = np.asarray(op.shape["rows"], dtype=float)
        n = rows * hidden  # elements
    else:
        n = np.asarray(op.shape["bytes"], dtype=float) / (2 * ACT_BYTES)
        rows = n / hidden
    parts = [("to_f32", (ACT_BYTES + F32) * n), ("pow", 2 * F32 * n), ("mean", F32 * (n + rows)),
             ("add_eps", 2 * F32 * rows), ("rsqrt", 2 * F32 * rows), ("mul", F32 * (2 * n + rows)),
             ("to_bf16", (F32 + ACT_BYTES) * n), ("mul_weight", ACT_BYTES * (2 * n + hidden))]
    return [_bytes(op, f"{op.name}_{p}", "elementwise", b, op.count) for p, b in parts]


def gelu_new(op: Op) -> list[Op]:
    """HF's gelu_new on the elements of an unfused GELU op (which reads and writes bf16 once)."""
    e = np.asarray(op.shape["bytes"], dtype=float) / (2 * ACT_BYTES)
    reads = [1, 1, 2, 1, 1, 1, 1, 2]  # pow, ×c, +, ×c, tanh, 1+, 0.5·x, ×
    return [_bytes(op, f"{op.name}_{i}", "elementwise", ACT_BYTES * e * (r + 1), op.count) for i, r in enumerate(reads)]


def rotary(like: Op, q_cols: int, kv_cols: int, rows, count) -> list[Op]:
    """HF's rotary on q (`q_cols` columns) and k (`kv_cols`) of `rows` tokens."""
    out = []
    for part, cols in (("q", q_cols), ("k", kv_cols)):
        e = ACT_BYTES * np.asarray(rows, dtype=float) * cols  # bytes of the tensor
        out += [_bytes(like, f"rotary_{part}_cos", "strided", 2 * e, count, "rotary_mul"),
                _bytes(like, f"rotary_{part}_neg", "strided", e, count, "mul"),
                _bytes(like, f"rotary_{part}_cat", "strided", 2 * e, count, "rotary_cat"),
                _bytes(like, f"rotary_{part}_sin", "elementwise", 2 * e, count),
                _bytes(like, f"rotary_{part}_add", "elementwise", 3 * e, count)]
    return out


def _qkv_cols(arch: ArchSpec, qkv: Op) -> tuple[int, int]:
    """Columns of q and of each of k and v in a fused QKV projection."""
    n = int(qkv.shape["n"])
    q = n * arch.n_heads // (arch.n_heads + 2 * arch.n_kv_heads)
    return q, (n - q) // 2


def _split_gemm(op: Op, parts: list[tuple[str, int]]) -> list[Op]:
    return [_op(op, name, op.op_class, {**op.shape, "n": n}, op.count) for name, n in parts]


def hf_kernels(arch: ArchSpec, ops: list[Op]) -> list[Op]:
    """The op list of transformers' eager forward from the torch stack's unfused one (module docstring); an
    architecture without an HF family keeps its list."""
    family = hf_family(arch)
    if family is None:
        return ops
    attn = next((op for op in ops if op.name == "attn"), None)
    decode = attn is not None and "c" in attn.shape
    out: list[Op] = []
    for op in ops:
        if op.name in NORMS and family == "llama":
            out += rms_norm(op, arch.hidden)
        elif op.name == "ffn_act" and family == "opt":
            out += gelu_new(op)
        elif op.name == "qkv" and family in ("llama", "opt"):
            q, kv = _qkv_cols(arch, op)
            out += _split_gemm(op, [("q_proj", q), ("k_proj", kv), ("v_proj", kv)])
            if family == "opt":
                out.append(_bytes(op, "q_scale", "elementwise", 2 * ACT_BYTES * np.asarray(op.shape["m"]) * q, op.count))
        elif op.name == "ffn_gate_up" and family == "llama":
            f = op.shape["n"] // 2
            out += _split_gemm(op, [("ffn_gate", f), ("ffn_up", f)])
        elif op.name.startswith("rotary_") and family == "llama":
            if op.name == "rotary_mul":
                qkv = next(o for o in ops if o.name == "qkv")
                out += rotary(op, *_qkv_cols(arch, qkv), qkv.shape["m"], op.count)
        elif op.name in ("ffn_silu", "ffn_mul") and family == "llama":  # on separate gate and up: contiguous
            out.append(_bytes(op, op.name, "elementwise", op.shape["bytes"], op.count))
        elif op.name == "kv_cache_write" and decode:  # the layer's cache and the new token concatenated
            cache = np.asarray(op.shape["bytes"], dtype=float) / 2 * np.asarray(attn.shape["c"], dtype=float)
            out.append(_bytes(op, "kv_cache_cat", "strided", 2 * cache, op.count, "rotary_cat"))
        else:
            out.append(op)
    return out
