"""Sweep grids as data: which shapes of each op class the calibration measures, full and quick.

Axes are geometric: factor 2 where the time steps with kernel tiles and configurations (GEMM M, in
1.5x steps from 256 on, since every model's GEMMs are asked for at every M; attention sequence, decode batch
and context), factor 4 where the time is smooth in the dimension (N and K, which models take from a short
list of widths; bytes of a copy). Nodes are tile multiples (simulator.opclasses, `tiles`). Points above a work
cap are skipped: there the efficiency has plateaued and the simulator extends it (marked as such).
The grid covers the catalog models' prefill and decode shapes under t = 1, 2, 4, 8.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from calibration.timing import BATCH_S, MAX_INNER, REPS
from simulator.opclasses import NORM_FNS, STRIDED_FNS, op_cost

# The causal prefill axes besides b*h (two sub-grids share them; the comment in FULL says why these values).
_CAUSAL = {"s": [1, 64, 128, 129, 256, 257, 384, 385, 512, 513, 768, 769, 1024, 1025, 1536, 2048, 3072, 4096,
                 6144, 8192, 16384, 32768],
           "d": [64, 96, 128, 160, 256], "causal": [1], "max_flops": 2.0e12}

# SDPA prefill (torch stack): even s (multiples of 128, a bounds-check-free template) and uneven s (one past each
# even node) are separate grids (simulator.sdpa_launch.sdpa_even; docs/decisions.md).
_SDPA_BH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
_SDPA_EVEN_S = [128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 16384, 32768]
_SDPA_UNEVEN_S = [1, 64, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 16385, 32769]

# g up to 128 and d up to 256 cover the catalog's largest query heads per KV head (falcon-7b: 71) and head dim.
_DECODE = {"g": [1, 8, 64, 128], "c": [16, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072],
           "d": [64, 96, 128, 256], "max_bytes": 4.0e9}
_SDPA_DECODE = dict(_DECODE, g=[1, 16, 64, 128])
_DECODE_BKV = [1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024]

# GEMM N, K: per-GPU projection widths (hidden/t ... fused FFN, vocab/t); M = tokens in the batch.
_GEMM = {"m": [1, 4, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 384, 385, 512, 513, 768, 769, 1024, 1025, 1536, 2048,
               3072, 4096, 8192, 16384],
         "n": [256, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 32768, 65536, 131072],
         "k": [256, 1024, 2048, 4096, 8192, 16384, 65536],
         "max_flops": 2.0e12, "max_bytes": 4.4e9}

# Low-precision GEMMs (FP8 w8a8: ours and torch._scaled_mm; int4 weight-only: ours), coarser than the bf16 grid:
# 305 nodes a stack under the work cap, 915 in all: ~10 s of GPU time at the H200 table's 11 ms a point.
_LOWP_GEMM = {"m": [1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384],
              "n": [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072], "k": [1024, 4096, 16384, 32768],
              "max_flops": 2.0e12, "max_bytes": 4.4e9}

# Our FP8 GEMM (kernels/gemm_fp8.py `fp8_config`) on the nodes where its launch steps: m = 1 runs the GEMV kernel
# and m = 2 ... 16 one 16-row tile, so m = 2 is measured (the 1 ... 16 line crossed a kernel change); the node just
# past each row-tile step (16, 32, 64, and 256, where the TMA kernel takes over), as the bf16 grid has them; N and K
# also at the bf16 grid's per-GPU projection widths (3072, 6144, 12288; 2048, 8192).
_FP8_OURS = {"m": sorted(_LOWP_GEMM["m"] + [2, 8192, 17, 33, 65, 129, 257]),
             "n": sorted(_LOWP_GEMM["n"] + [3072, 6144, 12288]), "k": sorted(_LOWP_GEMM["k"] + [2048, 8192]),
             "max_flops": 2.0e13, "max_bytes": 4.4e9}
# ... and with K cut inside a K block (simulator.fp8_launch.fp8_k_in_blocks: its own table category), at the
# kernels without TMA (m <= 256): each K node + 64, the smallest cut every block size sees (256, 512)
_FP8_OURS_CUT_K = {**_FP8_OURS, "m": [m for m in _FP8_OURS["m"] if m <= 256], "k": [k + 64 for k in _FP8_OURS["k"]]}

# Axis values.
FULL = {
    # m: the node just past each tile boundary up to 1024, where our kernel steps; cuBLAS without our kernel's
    # boundary nodes (docs/decisions.md, "Grid nodes").
    "gemm": [{**_GEMM, "stacks": ["triton"]},
             {**_GEMM, "m": [m for m in _GEMM["m"] if m not in (17, 33, 65, 384, 385, 768, 769, 1536, 3072)],
              "stacks": ["torch"]}],
    # bh = batch x query heads per GPU, by factors of 2; s = sequence (query = key), dense with the node past each
    # 128-row block up to 1025; d = head dim (Triton: its block widths 64, 128, 256; SDPA: its compiled head dims,
    # even and uneven s apart). Causal on a dense grid, non-causal on a coarse one (docs/decisions.md). SDPA's nodes
    # of one token a sequence are MHA (g = 1): flash runs a GQA one as an MHA of its KV heads (simulator/ops.py).
    "prefill_attn": [{"bh": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], **_CAUSAL, "d": [64, 128, 256],
                      "stacks": ["triton"]},
                     {"bh": _SDPA_BH, **dict(_CAUSAL, s=_SDPA_EVEN_S, d=[64, 96, 128]), "stacks": ["torch"]},
                     {"bh": _SDPA_BH, **dict(_CAUSAL, s=_SDPA_UNEVEN_S), "g_at_one_token": 1, "stacks": ["torch"]},
                     {"bh": [1, 16, 256], "s": [1, 128, 1024, 8192, 32768], "d": [64, 128, 256], "causal": [0],
                      "max_flops": 1.0e12, "stacks": ["triton"]},
                     {"bh": [1, 16, 256], "s": [128, 1024, 8192, 32768], "d": [64, 128], "causal": [0],
                      "max_flops": 1.0e12, "stacks": ["torch"]},
                     {"bh": [1, 16, 256], "s": [1, 129, 1025, 8193, 32769], "d": [64, 128, 256], "causal": [0],
                      "g_at_one_token": 1, "max_flops": 1.0e12, "stacks": ["torch"]}],
    # bkv = batch x KV heads per GPU; g = query heads per KV head; c = context; d = head dim. Triton also on both
    # sides of each drop in its split count (bkv 33/34, 44/45, 66/67, 132/133 on 132 SMs); SDPA (cuDNN) at its key-
    # split and tile boundaries (bkv 66, 67, 133; g 1, 16) (docs/decisions.md).
    "decode_attn": [{"bkv": _DECODE_BKV, **_DECODE, "stacks": ["triton"]},
                    {"bkv": _DECODE_BKV, **_SDPA_DECODE, "stacks": ["torch"]},
                    {"bkv": [33, 34, 44, 45, 66, 67, 132, 133], **_DECODE, "stacks": ["triton"]},
                    {"bkv": [66, 67, 133], **_SDPA_DECODE, "stacks": ["torch"]}],
    # 4 KiB .. 4 GiB read + written; the element-wise classes also with one input set read again and again ("hot":
    # in L2 where it fits, the L2 of an H100/H200 holds 50 MiB; docs/decisions.md, "element-wise inputs in L2")
    "elementwise": [{"l2": ["cold", "hot"], "bytes": [2**i for i in range(12, 33, 2)]}],
    # The engine's element-wise kernels, over the shapes its layers give them (rows: tokens; hidden: model
    # widths; rope rows: tokens x heads, 6 or 48 heads a token; vocabularies of the catalog).
    "add_norm": {"rows": [1, 8, 32, 128, 512, 2048, 8192, 32768], "hidden": [1024, 2048, 4096, 8192, 16384]},
    "rope_kv_write": {"rows": [6, 48, 384, 3072, 24576, 196608, 786432], "d": [64, 128, 256]},
    "act": {"bytes": [2**i for i in range(12, 33, 2)]},
    # quant_fp8: tokens by in-features of the layers' GEMMs (hidden sizes, FFN and attention widths per GPU)
    "quant_fp8": {"rows": [1, 8, 32, 128, 512, 2048, 8192, 32768], "k": [1024, 2048, 4096, 8192, 16384, 32768]},
    # sample: the catalog's vocabularies (torch's argmax picks its reduction by the exact length: 65536 took
    # longer than 131072 on the H200)
    "sample": {"rows": [1, 4, 16, 64, 256, 1024], "vocab": [32000, 32064, 50257, 50272, 50304, 50400, 50432, 65024,
                                                             65536, 128000, 128256, 151936, 152064, 250880, 256000]},
    "embed": {"bytes": [2**i for i in range(14, 31, 2)]},
    "transpose": {"l2": ["cold", "hot"], "bytes": [2**i for i in range(15, 33, 2)]},  # from 2 tokens (one needs none)
    # the torch stack's functions on strided operands and its norms: bytes by factors of 4 from below the smallest
    # shape of the catalog's architectures at t = 1..8 (a decode step's K of one MQA head of 64: 256 bytes; its
    # rotary at t = 8: ~2 KiB) to 4 GiB; the decode cache write up to 64 MiB (b = 256 x 32 heads x 256: 8 MiB);
    # norms on add_norm's nodes
    "strided": [{"fn": [f for f in STRIDED_FNS if f != "index_copy"], "l2": ["cold", "hot"],
                 "bytes": [2**i for i in range(8, 33, 2)]},
                {"fn": ["index_copy"], "l2": ["cold", "hot"], "bytes": [2**i for i in range(8, 27, 2)]}],
    "norm": {"fn": list(NORM_FNS.values()), "l2": ["cold", "hot"], "rows": [1, 8, 32, 128, 512, 2048, 8192, 32768],
             "hidden": [1024, 2048, 4096, 8192, 16384]},
    "launch": {"mode": ["eager", "graph", "graph_launch"]},
    # ours also at m = 8192 and above _LOWP_GEMM's work cap up to 2e13 FLOPs: the prefill GEMMs of 7-8B models at
    # 16k tokens sit there, and the nearest measured node (a K = 1024 one) gave them 25% too little efficiency;
    # and at _FP8_OURS's nodes (the kernel's launch steps in m, the bf16 grid's N and K)
    "gemm_fp8": [{**_LOWP_GEMM, "stacks": ["torch"]},
                 {**_LOWP_GEMM, "m": sorted(_LOWP_GEMM["m"] + [8192]), "max_flops": 2.0e13, "stacks": ["triton"]},
                 {**_FP8_OURS, "stacks": ["triton"]}, {**_FP8_OURS_CUT_K, "stacks": ["triton"]}],
    "gemm_int4": _LOWP_GEMM,
    # decode attention over an FP8 KV cache (kernels/decode_attention_fp8.py): coarser than decode_attn's
    "decode_attn_fp8": {"bkv": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], "g": [1, 4, 8, 64],
                        "c": [128, 512, 2048, 8192, 32768, 131072], "d": [64, 128, 256], "max_bytes": 4.0e9},
}

QUICK = {
    "gemm": {"m": [1, 16, 64, 256, 1024, 4096, 16384], "n": [1024, 4096, 16384, 131072],
             "k": [1024, 4096, 16384], "max_flops": 1.0e12, "max_bytes": 4.4e9},
    "prefill_attn": [{"bh": [4, 64, 1024], "s": [128, 129, 512, 513, 2048, 2049, 8192, 8193], "d": [128],
                      "causal": [1],
                      "max_flops": 1.0e12}],
    "decode_attn": {"bkv": [1, 16, 256], "g": [1, 8], "c": [512, 4096, 32768], "d": [128], "max_bytes": 2.0e9},
    "elementwise": {"bytes": [2**i for i in range(12, 33, 4)]},
    "add_norm": {"rows": [1, 512, 8192], "hidden": [2048, 8192]},
    "rope_kv_write": {"rows": [48, 24576], "d": [128]},
    "act": {"bytes": [2**i for i in range(12, 33, 10)]},
    "quant_fp8": {"rows": [1, 512], "k": [4096]},
    "sample": {"rows": [1, 64], "vocab": [32000, 131072]},
    "embed": {"bytes": [2**14, 2**24]},
    "transpose": {"bytes": [2**15, 2**25]},
    "strided": {"fn": list(STRIDED_FNS), "bytes": [2**12, 2**22]},
    "norm": {"fn": ["rms_norm"], "rows": [1, 512], "hidden": [4096]},
    "launch": {"mode": ["eager", "graph", "graph_launch"]},
    "gemm_fp8": {"m": [1, 64, 1024, 8192], "n": [4096, 16384], "k": [4096], "max_flops": 1.0e12},
    "gemm_int4": {"m": [1, 64, 1024, 8192], "n": [4096, 16384], "k": [4096], "max_flops": 1.0e12},
    "decode_attn_fp8": {"bkv": [1, 16], "g": [1, 8], "c": [512, 4096], "d": [128]},
}

GRIDS = {"full": FULL, "quick": QUICK}
# Classes measured on one stack only: torch's add, argmax and gather; our fused Triton kernels.
ONE_STACK = {"elementwise": "torch", "sample": "torch", "embed": "torch", "transpose": "torch", "strided": "torch",
             "norm": "torch",
             "add_norm": "triton", "rope_kv_write": "triton", "act": "triton", "gemm_int4": "triton",
             "quant_fp8": "triton", "decode_attn_fp8": "triton"}

# Message sizes of the all-reduce sweep (bytes): 4 KiB .. 512 MiB, factor 2.
ALLREDUCE_BYTES = [2**i for i in range(12, 30)]
ALLREDUCE_BYTES_QUICK = [2**i for i in range(12, 30, 3)]


@dataclass(frozen=True)
class GridPoint:
    """One shape to measure, in the contract's shape keys (docs/CONTRACTS.md)."""

    op: str
    stack: str
    shape: tuple[tuple[str, int | str], ...]  # sorted (key, value) pairs: hashable, JSON-friendly via dict()

    @property
    def shape_dict(self) -> dict:
        return dict(self.shape)


def point(op: str, stack: str, **shape) -> GridPoint:
    """A GridPoint from keyword shape values."""
    return GridPoint(op, stack, tuple(sorted(shape.items())))


def prefill_shape(bh: int, s: int, d: int, causal: int, g: int = 4) -> dict:
    """Contract shape of a prefill-attention grid node: up to 32 query heads (a divisor of bh), the rest in the
    batch, g query heads a KV head (GQA 4 unless the sub-grid says otherwise)."""
    h = math.gcd(bh, 32)
    return {"b": bh // h, "h": h, "kv_h": max(1, h // g), "s": s, "d": d, "causal": causal}


def decode_shape(bkv: int, g: int, c: int, d: int) -> dict:
    """Contract shape of a decode-attention grid node: up to 8 KV heads (a divisor of bkv), the rest in the batch."""
    kv_h = math.gcd(bkv, 8)
    return {"b": bkv // kv_h, "h": kv_h * g, "kv_h": kv_h, "c": c, "d": d}


def work(op: str, shape: dict) -> tuple[float, float]:
    """(FLOPs, bytes moved) of one run, by the simulator's own count (simulator.ops.op_cost)."""
    flops, nbytes = op_cost(op, shape)
    return float(flops), float(nbytes)


def specs(op_spec: dict | list[dict]) -> list[dict]:
    """The sub-grids of an op's grid spec (one dict, or a list of them, e.g. dense causal + coarse non-causal)."""
    return op_spec if isinstance(op_spec, list) else [op_spec]


def _grid_shapes(op: str, op_spec: dict | list[dict], stack: str) -> list[dict]:
    """The shapes of an op's sub-grids that `stack` measures (a sub-grid's optional "stacks" limits it)."""
    shapes = []
    for spec in specs(op_spec):
        if stack in spec.get("stacks", (stack,)):
            shapes += [s for s in _spec_shapes(op, spec) if s not in shapes]
    return shapes


def _spec_shapes(op: str, spec: dict) -> list[dict]:
    if op in ("gemm", "gemm_fp8", "gemm_int4"):
        shapes = [dict(m=m, n=n, k=k) for m, n, k in itertools.product(spec["m"], spec["n"], spec["k"])]
    elif op == "prefill_attn":
        shapes = [prefill_shape(bh, s, d, c, spec.get("g_at_one_token", 4) if s == 1 else 4)
                  for bh, s, d, c in itertools.product(spec["bh"], spec["s"], spec["d"], spec["causal"])]
    elif op in ("decode_attn", "decode_attn_fp8"):
        shapes = [decode_shape(*v) for v in itertools.product(spec["bkv"], spec["g"], spec["c"], spec["d"])]
    elif op == "launch":
        shapes = [dict(mode=m) for m in spec["mode"]]
    else:  # the element-wise classes: every combination of their axes
        keys = [k for k in spec if k not in ("max_flops", "max_bytes", "stacks")]
        shapes = [dict(zip(keys, v)) for v in itertools.product(*(spec[k] for k in keys))]
    flops_cap, bytes_cap = spec.get("max_flops", float("inf")), spec.get("max_bytes", float("inf"))
    return [s for s in shapes if work(op, s)[0] <= flops_cap and work(op, s)[1] <= bytes_cap]


def grid_points(grid: str = "full", stacks: tuple[str, ...] = ("triton", "torch"),
                ops: tuple[str, ...] | None = None) -> list[GridPoint]:
    """Every point of a named grid, for the given stacks. Element-wise ops are measured once, whichever stacks
    are asked for, on the stack whose kernel the engine runs (ONE_STACK)."""
    out = []
    for op, op_spec in GRIDS[grid].items():
        if ops is not None and op not in ops:
            continue
        for stack in ((ONE_STACK[op],) if op in ONE_STACK else stacks):
            out.extend(point(op, stack, **s) for s in _grid_shapes(op, op_spec, stack))
    return out


SETUP_S = 0.0072  # per point: inputs, warm-up, graph capture (H100 table of 2026-11-23, shuffled order: 122.5 s over
# 9745 points, 52.1 s of it in timed batches of 8; 11.8 ms a point before the one-fill inputs and shorter warm-up)


def estimate_s(p: GridPoint, flops_s: float = 6e14, bw_bytes_s: float = 2.5e12, op_s: float | None = None) -> float:
    """Seconds of GPU time to measure a point (progress bar ETA, sizing grids): setup + `reps` timed batches of
    `inner` calls, as calibration.timing picks them. `op_s`: the op's time if known (e.g. from a table), else
    a roofline guess."""
    if op_s is None:
        flops, nbytes = work(p.op, p.shape_dict)
        op_s = max(flops / flops_s, nbytes / bw_bytes_s, 4e-6)
    inner = min(MAX_INNER, max(1, math.ceil(BATCH_S / op_s)))
    return SETUP_S + REPS * inner * op_s
