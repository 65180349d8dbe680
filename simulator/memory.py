"""Memory per GPU of serving one batch (weights, static KV cache, activations) and the rules that pick the
tensor-parallel degree t and the pipeline stages pp.

Rule for t (the paper's, on one node): t is a power of two, t <= 8, dividing both n_heads and n_kv_heads
(heads are split, never replicated); the GPU count is t. Auto picks the smallest valid t whose memory per GPU
fits the GPU's whole capacity (no reserve held back). Beyond one node: t up to MAX_TP_NODES across nodes, and
pp pipeline stages of ceil(n_layers / pp) layers each (the most loaded stage is the one whose memory counts; it
is taken to hold the embedding and the LM head too, an upper bound); the GPU count is t · pp. When no t fits on
one stage, auto picks the layout of fewest GPUs that fits, t within a node before t across nodes, then fewest
stages (`smallest_fitting_layout`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GIB, GPUSpec
from simulator.ops import ACT_BYTES, shard

MAX_TP = 8  # GPUs of one node
MAX_TP_NODES = 64  # t across nodes
PIPELINE_STAGES = (1, 2, 4, 8, 16)  # stages the auto layout tries


def valid_tps(arch: ArchSpec, max_t: int = MAX_TP) -> list[int]:
    """Tensor-parallel degrees the rule allows for this architecture up to max_t (default: one node), ascending."""
    pows = [2**i for i in range(max_t.bit_length()) if 2**i <= max_t]
    return [t for t in pows if arch.n_heads % t == 0 and arch.n_kv_heads % t == 0]


def check_tp(arch: ArchSpec, t: int) -> int:
    """t itself if the rule allows it (across nodes too), else a UserError naming the valid choices."""
    if t not in valid_tps(arch, MAX_TP_NODES):
        raise UserError(f"tp={t}: must be a power of two <= {MAX_TP_NODES} dividing n_heads={arch.n_heads} and "
                        f"n_kv_heads={arch.n_kv_heads} for {arch.name}; use one of {valid_tps(arch, MAX_TP_NODES)}")
    return t


def check_pp(arch: ArchSpec, pp: int) -> int:
    """pp itself if it is a whole number of stages 1..n_layers, else a UserError."""
    if isinstance(pp, bool) or not isinstance(pp, (int, np.integer)) or not 1 <= pp <= arch.n_layers:
        raise UserError(f"pp={pp}: give pipeline stages, a whole number from 1 to n_layers={arch.n_layers} "
                        f"of {arch.name}")
    return int(pp)


def stage_arch(arch: ArchSpec, pp: int) -> ArchSpec:
    """The most loaded of pp pipeline stages as an architecture of its own: ceil(n_layers / pp) layers."""
    return arch if pp == 1 else arch.with_(n_layers=-(-arch.n_layers // pp))


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU; arrays broadcast over b, p, o."""

    weights_bytes: float
    kv_cache_bytes: np.ndarray
    activation_bytes: np.ndarray

    @property
    def total_bytes(self) -> np.ndarray:
        """Weights + KV cache + activations."""
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes


def weight_bytes_per_gpu(arch: ArchSpec, t: int) -> float:
    """Layer weights split over t, at the precision's bytes (scales included); router and embedding lookup table
    replicated, untied LM head split, all three at the checkpoint's bytes_per_weight."""
    router = arch.hidden * arch.n_experts  # per layer, replicated
    linear = arch.n_layers * (arch.attn_params_per_layer() + arch.ffn_params_per_layer() - router)
    lookup = arch.vocab * arch.hidden + (arch.max_positions * arch.hidden if arch.positions == "learned" else 0)
    head = 0 if arch.tied_embeddings else arch.vocab * arch.hidden
    other = head / t + arch.n_layers * router + lookup
    return linear / t * arch.precision.layer_weight_bytes(arch.hidden) + other * arch.bytes_per_weight


def activation_bytes_per_gpu(arch: ArchSpec, b: ArrayLike, p: ArrayLike, t: int) -> np.ndarray:
    """Peak live buffers in prefill (flash attention: no score matrix): residual stream and normed input,
    plus the larger of the attention block's (QKV, output) and the FFN's (up/gate, activated) buffers,
    plus the gathered logits of the last tokens in fp32."""
    tokens = b * p
    hq, hkv, d = arch.n_heads // t, arch.n_kv_heads // t, arch.head_dim
    attn_width = (2 * hq + 2 * hkv) * d
    up = 3 if arch.ffn_kind == "swiglu" else 2  # (gate,) up and activated output
    if arch.is_moe:
        ffn_width = up * (arch.experts_per_token + arch.n_shared_experts) * shard(arch.expert_ffn_hidden, t)
    else:
        ffn_width = up * shard(arch.ffn_hidden, t)
    per_token = 2 * arch.hidden + max(attn_width, ffn_width)
    return np.asarray(ACT_BYTES * tokens * per_token + 4.0 * b * arch.vocab, dtype=float)


def memory_per_gpu(arch: ArchSpec, b: ArrayLike, p: ArrayLike, o: ArrayLike, t: int, pp: int = 1) -> Memory:
    """Weights, a static KV cache of b × (p + o) tokens (KV heads split over t, at the precision's KV bytes),
    activations; per GPU of the most loaded of pp stages."""
    arch = stage_arch(arch, pp)
    kv = np.asarray(b * (p + o) * arch.kv_bytes_per_token() / t, dtype=float)
    return Memory(weight_bytes_per_gpu(arch, t), kv, activation_bytes_per_gpu(arch, b, p, t))


def kv_capacity_tokens(arch: ArchSpec, gpu: GPUSpec, t: int, activation_tokens: int, pp: int = 1) -> int:
    """Tokens of KV cache that fit on each GPU of t (of the most loaded of pp stages) beside the weights and the
    activations of an iteration of `activation_tokens` tokens (whole capacity, no reserve, as `memory_per_gpu`);
    0 when nothing fits."""
    arch = stage_arch(arch, pp)
    free = gpu.mem_bytes - weight_bytes_per_gpu(arch, t) - float(activation_bytes_per_gpu(arch, 1, activation_tokens, t))
    return max(int(free // (arch.kv_bytes_per_token(ACT_BYTES) / t)), 0)


def tp_per_request(arch: ArchSpec, gpu: GPUSpec, b: ArrayLike, p: ArrayLike, o: ArrayLike) -> np.ndarray:
    """Smallest valid t whose memory fits, per element of the broadcast b, p, o; 0 where none does."""
    b, p, o = np.broadcast_arrays(b, p, o)
    best = np.zeros(b.shape, dtype=int)
    for t in reversed(valid_tps(arch)):
        best[memory_per_gpu(arch, b, p, o, t).total_bytes <= gpu.mem_bytes] = t
    return best


def smallest_fitting_tp(arch: ArchSpec, gpu: GPUSpec, b: ArrayLike, p: ArrayLike, o: ArrayLike) -> int:
    """Smallest valid t that fits every request in the arrays; a UserError saying what is needed if none."""
    per_request = tp_per_request(arch, gpu, b, p, o)
    if np.all(per_request > 0):
        return int(per_request.max())
    t_max = valid_tps(arch)[-1]
    need = memory_per_gpu(arch, *np.broadcast_arrays(b, p, o), t_max).total_bytes.max()
    raise UserError(f"{arch.name} does not fit on {t_max} x {gpu.name}: it needs {need / GIB:.1f} GiB per GPU "
                    f"at tp={t_max} against {gpu.mem_gib:.0f} GiB; use --pp (pipeline stages) or a larger GPU")


def smallest_fitting_layout(arch: ArchSpec, gpu: GPUSpec, b: ArrayLike, p: ArrayLike, o: ArrayLike,
                            t: int | None = None, pp: int | None = None) -> tuple[int, int]:
    """(t, pp) of the fewest GPUs that fit every request (module docstring); t or pp fixed when given. A
    UserError saying what is needed if none does."""
    b, p, o = np.broadcast_arrays(b, p, o)
    tps = [check_tp(arch, t)] if t is not None else valid_tps(arch, MAX_TP_NODES)
    pps = [check_pp(arch, pp)] if pp is not None else [s for s in PIPELINE_STAGES if s <= arch.n_layers]
    layouts = sorted(((tv, sv) for tv in tps for sv in pps), key=lambda ts: (ts[0] * ts[1], ts[0] > gpu.gpus_per_node,
                                                                              ts[1]))
    for tv, sv in layouts:
        if np.all(memory_per_gpu(arch, b, p, o, tv, sv).total_bytes <= gpu.mem_bytes):
            return tv, sv
    tv, sv = max(layouts, key=lambda ts: ts[0] * ts[1])
    need = memory_per_gpu(arch, b, p, o, tv, sv).total_bytes.max()
    raise UserError(f"{arch.name} does not fit on {tv * sv} x {gpu.name} (tp={tv}, pp={sv}): it needs "
                    f"{need / GIB:.1f} GiB per GPU against {gpu.mem_gib:.0f} GiB; use more --pp stages, a larger "
                    "GPU, or shorter --prompt, --output or --batch")
