"""Layer-by-layer op list of a decoder-only Transformer: one prefill, or one decode step.

Each `Op` carries its class, the shape a throughput table is indexed by, its FLOPs and bytes per run on
ONE GPU after Megatron tensor-parallel sharding over t GPUs, and how many times it runs in the phase.
Shapes, FLOPs and bytes broadcast over numpy arrays of b, p and c, so one list serves a grid of requests.

Conventions (what the counts mean):
- Everything the engine moves is bf16 (2 bytes), as the reference engine runs, except what the architecture's
  precision (simulator/precision.py) changes: the decoder layers' GEMMs run as its weights' GEMM class (fp8, int4,
  fp32 weights: `Precision.gemm_class`), the LM head and router as the checkpoint's dtype, decode attention reads
  an fp8 KV cache as `decode_attn_fp8`; with fp8 activations (w8a8) each of those GEMMs' inputs is quantized per
  token first (`quant_fp8`, one kernel a GEMM, as the FP8 engine variant runs it); a GEMM reads A and W once and
  writes C once; attention is flash-style
  (Q, K, V read once, O written once, no score matrix).
- FLOPs are matmul FLOPs (a multiply-add is 2); elementwise ops count 0 FLOPs and are timed by bytes.
- Causal prefill attention counts the s(s+1)/2 query-key pairs it computes, not s².
- Fused QKV and fused gate+up projections (one GEMM each); norms replicated on every GPU.
- Elementwise kernels as the reference engine runs them (profiled: benchmarks/profile_engine.py): `fused`
  (the Triton stack: residual add + norm, rotary + KV-cache write and the activation one kernel each) or
  one torch kernel per op (the torch stack, and engine rows measured before the fusion). Element-wise ops are
  timed with their inputs in HBM (the tables' `l2` "cold", docs/decisions.md).
- Megatron sharding: QKV and up/gate column-parallel (heads and FFN split over t), attention output and
  down row-parallel, then one all-reduce of the hidden state (two per layer, one for parallel blocks).
  The embedding table is replicated (lookup needs no collective); the LM head is vocab-parallel and its
  logits are all-gathered. A split that does not divide evenly is rounded up (the largest shard).
- MoE (uniform routing assumption): each token picks k distinct experts uniformly at random, so b·p
  tokens touch E·(1 − (1 − k/E)^(b·p)) experts on average, each with b·p·k / touched tokens; every
  touched expert's weights are read. Experts are tensor-parallel like a dense FFN (no expert parallelism).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.dispatch import decode_bucket
from simulator.hostmodel import ENGINE as HF_EAGER
from simulator.hostmodel import (
    EAGER_PREFILL, GRAPH_START, GRAPH_START_AFTER_STEPS, MOE_SYNC_FREE_TOKENS, PREFILL_GRAPH_TOKENS, engine_mode,
    host_modes, parse_engine_host,
)
from simulator.opclasses import ACT_BYTES, NORM_FNS, Num, op_cost


@dataclass(frozen=True)
class Op:
    """One kernel of a phase: per-run cost on one GPU and how many runs the phase makes."""

    name: str
    op_class: str  # a key of simulator.opclasses.OP_CLASS
    shape: dict[str, Num]  # the keys docs/CONTRACTS.md lists for op_class
    flops: Num  # per run, one GPU
    bytes: Num  # per run, one GPU (read + written)
    count: Num  # runs per phase: usually n_layers; n_layers x expected experts touched for MoE experts


# -- op builders ---------------------------------------------------------------------------------------
def _op(name: str, op_class: str, shape: dict[str, Num], count: Num) -> Op:
    flops, nbytes = op_cost(op_class, shape)
    return Op(name, op_class, shape, flops, nbytes, count)


def _gemm(name: str, m: Num, n: int, k: int, count: Num, op_class: str = "gemm", grouped: bool = False) -> Op:
    """A GEMM; `grouped`: one grouped launch over many experts (shape key `grouped`: simulator.dispatch)."""
    return _op(name, op_class, {"m": m, "n": n, "k": k, **({"grouped": 1} if grouped else {})}, count)


def _layer_gemm(arch: ArchSpec) -> str:
    """GEMM class of the decoder layers' linear weights, at the architecture's precision."""
    return arch.precision.gemm_class


def _layer_gemm_ops(name: str, m: Num, n: int, k: int, count: Num, arch: ArchSpec, quant_rows: Num = None,
                    grouped: bool = False) -> list[Op]:
    """A decoder-layer GEMM at the architecture's precision; with fp8 activations (w8a8) its input is first
    quantized per token (`quant_fp8` over `quant_rows` rows of k, default m); `grouped` as in _gemm."""
    quant = [] if arch.precision.activations != "fp8" else [
        _op(f"{name}_quant", "quant_fp8", {"rows": m if quant_rows is None else quant_rows, "k": k}, count)]
    return quant + [_gemm(name, m, n, k, count, _layer_gemm(arch), grouped)]


def _other_gemm(arch: ArchSpec) -> str:
    """GEMM class of the weights a quantized checkpoint leaves in its own dtype (LM head, MoE router)."""
    return "gemm_fp32" if arch.bytes_per_weight == 4 else "gemm"


def _elementwise(name: str, nbytes: Num, count: Num) -> Op:
    return _op(name, "elementwise", {"bytes": nbytes}, count)


def _norm(name: str, rows: Num, hidden: int, count: Num, fused: bool, kind: str) -> Op:
    """The norm (`kind`: ArchSpec.norm) before a block on `rows` tokens. Fused: with the residual add before it, one
    kernel that reads x and y and writes x + y and the norm; unfused: torch's norm alone (F.rms_norm, F.layer_norm)."""
    if fused:
        return _op(name, "add_norm", {"rows": rows, "hidden": hidden}, count)
    return _op(name, "norm", {"rows": rows, "hidden": hidden, "fn": NORM_FNS[kind]}, count)


def _strided(name: str, fn: str, nbytes: Num, count: Num) -> Op:
    """One of the torch stack's functions on strided operands (simulator.opclasses.STRIDED_FNS) over `nbytes`."""
    return _op(name, "strided", {"bytes": nbytes, "fn": fn}, count)


def _allreduce(name: str, nbytes: Num, t: int, count: Num) -> list[Op]:
    """An all-reduce of `nbytes` over t GPUs (none at t = 1): its measured time holds its fixed cost too."""
    return [] if t == 1 else [_op(name, "allreduce", {"bytes": nbytes, "t": t}, count)]


SHARD_ALIGN = 8  # columns per GPU of a split FFN, padded to a multiple: 16 bytes of bf16, the alignment TMA and
# cuBLAS's tensor-core paths need (YaLM's 27308 / 8 = 3414 columns put K = 3414 on the Triton pointer kernel,
# 30-60x slower, and cuBLAS 30% slower; the engine refuses widths t does not divide)


def shard(n: int, t: int) -> int:
    """Columns on one GPU of t: n split t ways (ceil division), padded to SHARD_ALIGN."""
    return -(-n // (t * SHARD_ALIGN)) * SHARD_ALIGN


VOCAB_ALIGN = 64  # vocabulary rows per GPU, padded to a multiple (vLLM pads the vocabulary to 64, Megatron to 128·t)


def vocab_shard(vocab: int, t: int) -> int:
    """LM-head rows on one GPU of t: the vocabulary split t ways and padded to VOCAB_ALIGN rows, so the GEMM's
    rows stay 16-byte aligned (GPT-3's 50257 / 8 = 6283 rows took cuBLAS 3-8x its aligned time on the H100)."""
    return -(-vocab // (t * VOCAB_ALIGN)) * VOCAB_ALIGN


def expected_experts_touched(n_experts: int, k: int, tokens: Num) -> Num:
    """Expected distinct experts that `tokens` tokens touch, each picking k of n_experts uniformly."""
    return n_experts * (1.0 - (1.0 - k / n_experts) ** tokens)


def _act_ops(prefix: str, m: Num, f: int, arch: ArchSpec, count: Num, fused: bool) -> list[Op]:
    """The activation between up and down projections on m tokens of f (sharded) columns. Fused: one
    kernel reads [gate | up] (or up) and writes f. Unfused: SwiGLU is silu(g) then silu(g)·u, two torch kernels on
    the halves of [gate | up], strided (class `strided`) except on one row, where each half is contiguous and torch
    runs its vectorized kernels (`elementwise`; the op of the other class runs 0 times); GELU one kernel on the
    contiguous output (`elementwise`)."""
    f_bytes = ACT_BYTES * m * f  # one (m, f) tensor
    swiglu = arch.ffn_kind == "swiglu"
    if fused:
        return [_op(f"{prefix}_act", "act", {"bytes": (3 if swiglu else 2) * f_bytes}, count)]
    if not swiglu:
        return [_elementwise(f"{prefix}_act", 2 * f_bytes, count)]
    one_row = np.asarray(m) == 1
    return [_strided(f"{prefix}_silu", "silu", 2 * f_bytes, count * ~one_row),
            _strided(f"{prefix}_mul", "mul", 3 * f_bytes, count * ~one_row),
            _elementwise(f"{prefix}_silu_row", 2 * f_bytes, count * one_row),
            _elementwise(f"{prefix}_mul_row", 3 * f_bytes, count * one_row)]


def _mlp(prefix: str, m: Num, f: int, arch: ArchSpec, count: Num, fused: bool) -> list[Op]:
    """Dense FFN of intermediate size f (already sharded) on m tokens: up (+gate), activation, down."""
    up_n = 2 * f if arch.ffn_kind == "swiglu" else f
    return (_layer_gemm_ops(f"{prefix}_gate_up" if up_n > f else f"{prefix}_up", m, up_n, arch.hidden, count, arch)
            + _act_ops(prefix, m, f, arch, count, fused) + _layer_gemm_ops(f"{prefix}_down", m, arch.hidden, f, count, arch))


def _grouped_mlp(prefix: str, rows: Num, groups: Num, f: int, arch: ArchSpec, count: Num, fused: bool) -> list[Op]:
    """Routed experts as a grouped-GEMM kernel runs them (kernels/moe.py): one launch per projection over
    `groups` touched experts of `rows` tokens each, each expert's weights read once. Its time is looked up as
    one GEMM of `rows` rows, `groups` times as wide: the same tiles, FLOPs and weight bytes."""
    up_n = 2 * f if arch.ffn_kind == "swiglu" else f
    return (_layer_gemm_ops(f"{prefix}_gate_up" if up_n > f else f"{prefix}_up", rows, groups * up_n, arch.hidden,
                            count, arch, rows * groups, grouped=True)
            + _act_ops(prefix, rows * groups, f, arch, count, fused)
            + _layer_gemm_ops(f"{prefix}_down", rows, groups * arch.hidden, f, count, arch, rows * groups,
                              grouped=True))


def _ffn_ops(arch: ArchSpec, tokens: Num, t: int, fused: bool) -> list[Op]:
    """The FFN of one layer on `tokens` tokens: dense, or router + shared + expected routed experts."""
    L, h = arch.n_layers, arch.hidden
    if not arch.is_moe:
        return _mlp("ffn", tokens, shard(arch.ffn_hidden, t), arch, L, fused)
    E, k = arch.n_experts, arch.experts_per_token
    ops = [_gemm("router", tokens, E, h, L, _other_gemm(arch)),  # replicated: every GPU routes every token
           _elementwise("router_topk", ACT_BYTES * tokens * E * 2, L)]
    if arch.n_shared_experts:
        ops += _mlp("shared_expert", tokens, shard(arch.n_shared_experts * arch.expert_ffn_hidden, t),
                    arch, L, fused)
    touched = expected_experts_touched(E, k, tokens)
    ops += _grouped_mlp("expert", tokens * k / touched, touched, shard(arch.expert_ffn_hidden, t), arch, L, fused)
    # tokens gathered into expert order and the k outputs scattered back, weighted and summed
    ops.append(_elementwise("expert_permute", ACT_BYTES * tokens * h * (4 * k + 1), L))
    return ops


def _qkv_ops(arch: ArchSpec, tokens: Num, hq: int, hkv: int, fused: bool, decode: bool) -> list[Op]:
    """Rotary and the KV-cache write after the QKV projection. Fused: one kernel reads q, k, v and writes
    rotated q and (rotated) k, v into the cache. Unfused: rotary as x·cos, a half swap and an addcmul over
    q and k together; K and V written into the cache in two kernels: a prompt's copied from token-major rows into
    the head-major cache (a strided copy, `transpose`), a decode step's into one cache row (index_copy_)."""
    L, d = arch.n_layers, arch.head_dim
    if fused:  # without rotary q is left in place: only k and v move
        heads = hq + 2 * hkv if arch.positions == "rotary" else 2 * hkv
        return [_op("rope_kv_write", "rope_kv_write", {"rows": tokens * heads, "d": d}, L)]
    qk = ACT_BYTES * tokens * (hq + hkv) * d  # bytes of q and k
    ops = []
    if arch.positions == "rotary":
        ops += [_strided("rotary_mul", "rotary_mul", 2 * qk, L), _strided("rotary_swap", "rotary_cat", 2 * qk, L),
                _strided("rotary_addcmul", "rotary_addcmul", 3 * qk, L)]
    kv = 2 * ACT_BYTES * tokens * hkv * d  # one of K and V, read and written
    if decode:
        return ops + [_strided("kv_cache_write", "index_copy", kv, 2 * L)]
    return ops + [_op("kv_cache_write", "transpose", {"bytes": kv}, 2 * L)]


def _attn_transpose(arch: ArchSpec, tokens: Num, s: Num, hq: int) -> Op:
    """The copy of a prefill's attention output from head-major to token-major, on `tokens` tokens of sequences
    of s; one token a sequence is already token-major: no copy runs (count 0, at the shape of two tokens)."""
    copies = np.asarray(s) > 1
    nbytes = 2 * ACT_BYTES * tokens * hq * arch.head_dim
    return _op("attn_transpose", "transpose", {"bytes": np.where(copies, nbytes, 2 * nbytes)},
               arch.n_layers * copies)


def _layer_ops(arch: ArchSpec, tokens: Num, t: int, attn: Op | None, fused: bool) -> list[Op]:
    """One Transformer layer on `tokens` tokens under tensor-parallel degree t, around `attn` (None: without
    attention, which the caller times on its own).

    fused: the elementwise kernels of the reference engine's Triton stack (each residual add folded into
    the norm after it, rotary with the cache write, one activation kernel); its prefill also copies the attention
    output from head-major to token-major. Otherwise one torch kernel per op, as the torch stack runs; its SDPA
    prefill returns the output token-major already (no copy).
    """
    L, h, d = arch.n_layers, arch.hidden, arch.head_dim
    hq, hkv = arch.n_heads // t, arch.n_kv_heads // t
    x = ACT_BYTES * tokens * h  # bytes of one hidden-state tensor
    prefill = attn is not None and attn.op_class == "prefill_attn"
    decode = attn is not None and not prefill
    # fused: residual add + norm reads x and y and writes both x + y and the norm; unfused: the norm alone
    add = [] if fused else [_elementwise("residual", 3 * x, L)]  # unfused: its own kernel
    ops = [_norm("norm_attn", tokens, h, L, fused, arch.norm),
           *_layer_gemm_ops("qkv", tokens, (hq + 2 * hkv) * d, h, L, arch)]
    ops += _qkv_ops(arch, tokens, hq, hkv, fused, decode) + ([] if attn is None else [attn])
    if prefill and fused:
        ops.append(_attn_transpose(arch, tokens, attn.shape["s"], hq))
    ops += _layer_gemm_ops("attn_out", tokens, h, hq * d, L, arch)
    if arch.parallel_block:  # attention and MLP share the normed input; their partial sums add up locally
        ops += _ffn_ops(arch, tokens, t, fused)
        ops.append(_elementwise("attn_plus_mlp", 3 * x, L))
        ops += _allreduce("allreduce_block", x, t, L)
        return ops + add
    ops += _allreduce("allreduce_attn", x, t, L)
    ops += add + [_norm("norm_mlp", tokens, h, L, fused, arch.norm)]
    ops += _ffn_ops(arch, tokens, t, fused)
    ops += _allreduce("allreduce_mlp", x, t, L)
    return ops + add


EMBED_OPS = ("embed", "pos_embed")  # the ops before the layers (their names)
HEAD_OPS = ("norm_final", "lm_head", "logits_gather", "sample")  # the ops after the layers


def _embed_ops(arch: ArchSpec, tokens: Num) -> list[Op]:
    """Embedding lookup (gather rows, write hidden states) and, for absolute positions, their add."""
    x = ACT_BYTES * tokens * arch.hidden
    ops = [_op("embed", "embed", {"bytes": 2 * x}, 1)]
    if arch.positions in ("learned", "sinusoidal"):
        ops.append(_elementwise("pos_embed", 3 * x, 1))
    return ops


def _head_ops(arch: ArchSpec, m: Num, t: int, fused: bool) -> list[Op]:
    """Final norm (fused: with the last residual add), vocab-parallel LM head on m tokens, logits
    all-gather, greedy sampling."""
    logits = ACT_BYTES * m * arch.vocab  # all logits of the m tokens, bytes
    ops = [_norm("norm_final", m, arch.hidden, 1, fused, arch.norm),
           _gemm("lm_head", m, vocab_shard(arch.vocab, t), arch.hidden, 1, _other_gemm(arch))]
    # a ring all-gather of N bytes moves (t-1)/t · N per GPU: what an all-reduce of N/2 moves
    ops += _allreduce("logits_gather", logits / 2, t, 1)
    return ops + [_op("sample", "sample", {"rows": m, "vocab": arch.vocab}, 1)]


HOST_MODES = ("graph", "eager", HF_EAGER)


def kernel_count(ops: list[Op]) -> np.ndarray:
    """Kernels a phase of these ops launches: the sum of their runs."""
    return sum((np.asarray(op.count, dtype=float) for op in ops), np.zeros(()))


def _engine_prefill(ops: list[Op], host: str, arch: ArchSpec, tokens: Num) -> list[Op]:
    """The reference engine's prefill of `tokens` tokens (simulator.hostmodel engine_host): graphed up to
    PREFILL_GRAPH_TOKENS (and a torch-stack MoE's up to MOE_SYNC_FREE_TOKENS), its graph's launch a `start` the GPU
    waits for, per call and per kernel; else eager, the host's launches per call and per kernel."""
    stack, after_steps = parse_engine_host(host)
    kernels = kernel_count(ops)
    tokens = np.asarray(tokens)
    graphed = tokens <= (MOE_SYNC_FREE_TOKENS if arch.is_moe and stack == "torch" else PREFILL_GRAPH_TOKENS)
    g, e = graphed.astype(float), (~graphed).astype(float)
    start = GRAPH_START_AFTER_STEPS if after_steps else GRAPH_START
    return ops + [Op("start", "start", {"mode": engine_mode(start, "call", stack)}, 0.0, 0.0, g),
                  Op("start", "start", {"mode": engine_mode(start, "kernel", stack)}, 0.0, 0.0, g * kernels),
                  Op("launch", "launch", {"mode": engine_mode(EAGER_PREFILL, "call", stack)}, 0.0, 0.0, e),
                  Op("launch", "launch", {"mode": engine_mode(EAGER_PREFILL, "kernel", stack)}, 0.0, 0.0, e * kernels)]


def with_launches(ops: list[Op], mode: str, arch: ArchSpec | None = None, phase: str = "decode",
                  tokens: Num = 1) -> list[Op]:
    """Append the host's work of the phase as `launch` ops: one graph launch ("graph": the kernels' launches
    are replayed by the GPU, their in-graph gaps already in the tables' times), one launch per kernel run
    ("eager"), or transformers' eager generate's measured per-call and per-layer host time of `arch`'s family
    for `phase` ("hf-eager", simulator.hostmodel), the kernels then those HF's forward launches (simulator.hf_ops).
    The phase takes the longer of the host's work and the GPU's (simulator.predict). The reference engine's host
    (simulator.hostmodel engine_host) replays its decode steps as "graph" does and starts its prefill of
    `tokens` tokens as _engine_prefill says."""
    if parse_engine_host(mode) is not None:
        if phase == "prefill":
            return _engine_prefill(ops, mode, arch, tokens)
        mode = "graph"
    if mode == "graph":
        return ops + [Op("launch", "launch", {"mode": "graph_launch"}, 0.0, 0.0, 1)]
    if mode == HF_EAGER:  # its forward's own kernels (simulator.hf_ops) and its measured host
        from simulator.hf_ops import hf_kernels

        return hf_kernels(arch, ops) + [Op("launch", "launch", {"mode": m}, 0.0, 0.0, runs)
                                        for m, runs in host_modes(arch, phase)]
    runs = sum(op.count for op in ops)
    return ops + [Op("launch", "launch", {"mode": "eager"}, 0.0, 0.0, runs)]


def prefill_ops(arch: ArchSpec, b: Num, p: Num, t: int, *, logits: str = "last", fused: bool = True,
                host: str = "graph") -> list[Op]:
    """Ops of the prefill of b sequences of p tokens; logits="all" computes logits for every token
    (the convention of the closed-form FLOP counts) instead of only the last token of each sequence;
    fused: elementwise kernels as the Triton stack fuses them (see _layer_ops); host: how the kernels are
    launched, "graph" or "eager" (with_launches)."""
    tokens = b * p
    hq, hkv = arch.n_heads // t, arch.n_kv_heads // t
    # the torch stack's SDPA (flash) runs one token a sequence over GQA as an MHA of its KV heads, a program holding
    # a KV head's g query heads as rows (FlashAttention-2's seqlenq_ngroups_swapped), as its table's nodes there are
    graph = host == "graph" or parse_engine_host(host) is not None  # the torch stack's kernels as graphs run them
    heads = np.where(np.asarray(p) == 1, hkv, hq) if not fused and graph else hq
    attn = _op("attn", "prefill_attn",
               {"b": b, "h": heads, "kv_h": hkv, "s": p, "d": arch.head_dim, "causal": 1}, arch.n_layers)
    m_head = tokens if logits == "all" else b
    ops = _embed_ops(arch, tokens) + _layer_ops(arch, tokens, t, attn, fused) + _head_ops(arch, m_head, t, fused)
    return with_launches(ops, host, arch, "prefill", tokens)


def decode_ops(arch: ArchSpec, b: Num, c: Num, t: int, *, fused: bool = True, host: str = "graph") -> list[Op]:
    """Ops of one decode step of b sequences whose new token attends to c cached tokens (itself included);
    fused and host as in prefill_ops."""
    hq, hkv = arch.n_heads // t, arch.n_kv_heads // t
    kind = "decode_attn_fp8" if arch.precision.kv == "fp8" else "decode_attn"
    # the reference engine's graphs read the context bucket's cache rows (calibration/engine/runner.py), the rows past
    # c masked: our decode kernel stops at c, the torch stack's SDPA (cuDNN) computes every row it is given
    graph = host == "graph" or parse_engine_host(host) is not None
    rows = decode_bucket(c) if not fused and graph else c
    attn = _op("attn", kind, {"b": b, "h": hq, "kv_h": hkv, "c": rows, "d": arch.head_dim}, arch.n_layers)
    ops = _embed_ops(arch, b) + _layer_ops(arch, b, t, attn, fused) + _head_ops(arch, b, t, fused)
    return with_launches(ops, host, arch, "decode")


# -- the parts of one continuous-batching iteration (simulator/stepcost.py adds them up) -----------------
def body_ops(arch: ArchSpec, tokens: Num, t: int, *, fused: bool = True) -> list[Op]:
    """Ops of an iteration on `tokens` tokens that do not depend on which sequence a token belongs to: the
    embedding and every layer without its attention."""
    return _embed_ops(arch, tokens) + _layer_ops(arch, tokens, t, None, fused)


def head_ops(arch: ArchSpec, rows: Num, t: int, *, fused: bool = True) -> list[Op]:
    """Final norm, LM head, logits all-gather and sampling on `rows` tokens (one a sequence of the iteration)."""
    return _head_ops(arch, rows, t, fused)


def prefill_attention_ops(arch: ArchSpec, b: Num, s: Num, t: int) -> list[Op]:
    """Causal attention of b sequences of s tokens over themselves, and the copy of its output to token-major."""
    hq, hkv = arch.n_heads // t, arch.n_kv_heads // t
    attn = _op("attn", "prefill_attn", {"b": b, "h": hq, "kv_h": hkv, "s": s, "d": arch.head_dim, "causal": 1},
               arch.n_layers)
    return [attn, _attn_transpose(arch, b * s, s, hq)]


def decode_attention_ops(arch: ArchSpec, b: Num, c: Num, t: int) -> list[Op]:
    """Attention of one new token of each of b sequences over c cached tokens (itself included)."""
    hq, hkv = arch.n_heads // t, arch.n_kv_heads // t
    kind = "decode_attn_fp8" if arch.precision.kv == "fp8" else "decode_attn"
    return [_op("attn", kind, {"b": b, "h": hq, "kv_h": hkv, "c": c, "d": arch.head_dim}, arch.n_layers)]


def total_flops(ops: list[Op]) -> Num:
    """FLOPs of a phase on one GPU: Σ flops × count."""
    return sum(op.flops * op.count for op in ops)
