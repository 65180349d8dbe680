"""One record per op class: what a throughput table knows about it, in one place.

Each `OpClass` says how a shape of the class costs (FLOPs, bytes), which of its dimensions are categorical
(separate grids) and which are interpolated, how a kernel tiles and pads it, along which axes a shape may not
run as a larger one, how its time is interpolated between nodes, and on which stacks its critical work
(simulator.quanta) is divided out before interpolation. A new op class is one entry of `OP_CLASS`.
The reasons behind each tile, padding and interpolation choice are in docs/decisions.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simulator.errors import UserError
from simulator.fp8_launch import fp8_k_in_blocks
from simulator.sdpa_launch import sdpa_even

ACT_BYTES = 2  # bf16 activations, weights and KV cache
# Bytes per element of a GEMM's (A, W, C) by op class: fp8 is w8a8 with a bf16 output; int4 weight-only reads half a
# byte a weight plus a fp16 scale per group of 128 (the group the calibration measures); fp32 weights are read whole
GEMM_BYTES = {"gemm": (2.0, 2.0, 2.0), "gemm_fp8": (1.0, 1.0, 2.0), "gemm_int4": (2.0, 0.5 + 2.0 / 128, 2.0),
              "gemm_fp32": (2.0, 4.0, 2.0)}

Num = Any  # int, float or numpy array broadcasting over b, p, c


# -- cost of one run from its shape: shared by the op list, the roofline and the tables ----------------
def gemm_cost(m: Num, n: Num, k: Num, op: str = "gemm") -> tuple[Num, Num]:
    """C[m,n] = A[m,k]·W[n,k]ᵀ: 2mnk FLOPs; A and W read, C written, at the bytes of the class's dtypes."""
    a, w, c = GEMM_BYTES[op]
    return 2.0 * m * n * k, a * m * k + w * n * k + c * m * n


def prefill_attn_cost(b: Num, h: Num, kv_h: Num, s: Num, d: Num, causal: Num = 1) -> tuple[Num, Num]:
    """Flash attention over s tokens: QKᵀ and PV at 2d FLOPs per query-key pair each."""
    pairs = np.where(causal, s * (s + 1) / 2.0, s * s)
    flops = 4.0 * b * h * d * pairs
    nbytes = ACT_BYTES * b * s * d * (2 * h + 2 * kv_h)  # Q read, O written; K, V read
    return flops, nbytes


def decode_attn_cost(b: Num, h: Num, kv_h: Num, c: Num, d: Num, kv_bytes: float = ACT_BYTES) -> tuple[Num, Num]:
    """One query token per sequence against a KV cache of c tokens (kv_bytes an element): the cache read dominates."""
    flops = 4.0 * b * h * c * d
    nbytes = b * d * (ACT_BYTES * 2 * h + kv_bytes * 2 * kv_h * c)
    return flops, nbytes


def quant_fp8_bytes(rows: Num, k: Num) -> Num:
    """Bytes of quantizing rows x k bf16 values to e4m3 with a fp32 scale per row: read 2, write 1 a value, 4 a row."""
    return (ACT_BYTES + 1.0) * rows * k + 4.0 * rows


def _f(shape: dict, key: str) -> np.ndarray:
    return np.asarray(shape[key], dtype=float)


# Values of the categorical keys: shape (as the stack's kernel runs it) -> array of category values
CATEGORY = {
    "causal": lambda shape: np.asarray(shape["causal"]).astype(bool).astype(int),
    "even": lambda shape: sdpa_even(shape["s"], shape["d"]).astype(int),  # simulator.sdpa_launch
    "t": lambda shape: np.asarray(shape["t"]).astype(int),
    "mode": lambda shape: np.asarray(shape["mode"]),
    "k_blocks": lambda shape: fp8_k_in_blocks(shape["m"], shape["k"]).astype(int),  # simulator.fp8_launch
    "fn": lambda shape: np.asarray(shape.get("fn", CATEGORY_DEFAULT["fn"])),
    "l2": lambda shape: np.asarray(shape.get("l2", CATEGORY_DEFAULT["l2"])),
}
# Values of categorical keys a shape (or a table point) may leave out. fn: which torch function of the class's family
# runs (STRIDED_FNS, NORM_FNS); strided points measured before the key existed timed the product of the two halves
# of [gate | up]: `mul`. l2: where an element-wise op's inputs are when it starts, "cold" (in HBM: the table's
# inputs rotate over copies larger than the L2 cache) or "hot" (in L2: one input set, read again and again)
CATEGORY_DEFAULT = {"fn": "mul", "l2": "cold"}
# The torch stack's element-wise functions on strided or broadcast operands (calibration/engine/backends.py, torch):
# the SwiGLU activation's silu of the gate half and its product with the up half; rotary's q and k x cos, the half
# swap (torch.cat) and the addcmul with sin; a decode step's K and V written into the cache (index_copy_)
STRIDED_FNS = ("silu", "mul", "rotary_mul", "rotary_cat", "rotary_addcmul", "index_copy")
NORM_FNS = {"rmsnorm": "rms_norm", "layernorm": "layer_norm"}  # ArchSpec.norm -> the torch function
# Categories a shape can be padded into: (shape key, multiple) rounded up makes the category hold where the kernel
# allows it (SDPA's template without bounds checks: s a multiple of 128); any shape may also run the general variant
PADS_INTO = {"even": ("s", 128)}


@dataclass(frozen=True)
class OpClass:
    """What the tables know about one op class (see the module docstring)."""

    name: str
    axes: tuple[str, ...]  # interpolated table coordinates, as `extent` names them
    to_axes: Callable[[dict], list]  # shape -> values on `axes` (arrays)
    from_axes: Callable[[dict, list], dict]  # (category values, axis values) -> a shape with those coordinates
    cost: Callable[[dict], tuple[Num, Num]]  # shape -> (FLOPs, bytes) of one run on one GPU
    categories: tuple[str, ...] = ()  # keys of CATEGORY: one grid per value
    stack_categories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra keys on one stack
    stand_in: dict[str, int] = field(default_factory=dict)  # category -> value whose grid times a value without points
    per_stack: bool = False  # measured separately for each software stack
    tiles: dict[str, int] = field(default_factory=dict)  # shape key -> tile it is rounded up to (0: power of 2)
    head_dim_step: dict[str, int] = field(default_factory=dict)  # stack -> step d is padded to (0: power of 2)
    group_step: dict[str, int] = field(default_factory=dict)  # stack -> step h/kv_h is padded to (0: power of 2)
    floor_axes: tuple[int, ...] = ()  # axes along which a shape below the first node takes its time (not extrapolated)
    not_padded: tuple[int, ...] = ()  # axes along which a shape never runs as a larger one
    # the axis the batch grows (GEMM rows, sequences x heads, rows or bytes): its work divides into independent
    # parts, so on the `ideal` envelope time per unit of it never rises (simulator.grid; None: no such axis)
    rate_axis: int | None = 0
    work_interpolated: bool = False  # time linear in the axes between nodes; else log efficiency over log axes
    work_stacks: tuple[str, ...] = ()  # stacks whose critical work (simulator.quanta) is divided out
    fit_group: str = ""  # the fit's coefficient that scales this class (default: its own name)
    fallback: str = ""  # class whose points time it, at its bytes, in a table that has none of its own
    derived_from: str = ""  # class whose time x the roofline ratio times it in a table with none of its points
    peak: str = "bf16"  # the tensor-core peak its FLOPs run at (GPUSpec.peak_flops)
    unmeasured: bool = False  # no microbenchmark measures it yet (a derived class that stays derived)
    when_used: bool = False  # runs at one precision only: breakdowns list it where a prediction has it

    @property
    def coefficient(self) -> str:
        """The name of the fit coefficient that scales this class."""
        return self.fit_group or self.name

    def category_names(self, stack: str) -> tuple[str, ...]:
        """The categorical keys of this class on `stack`."""
        return self.categories + self.stack_categories.get(stack, ())

    def tiled(self, shape: dict, stack: str, ideal: bool = False) -> dict:
        """The shape as the stack's kernel runs it: tiled dimensions rounded up to whole tiles, head dim padded,
        query group padded (not for the `ideal` envelope, whose kernel holds exactly its heads)."""
        out = dict(shape)
        for key, tile in self.tiles.items():
            out[key] = round_up(shape[key], tile)
        if stack in self.head_dim_step:
            out["d"] = round_up(shape["d"], self.head_dim_step[stack])
        if stack in self.group_step and not ideal:
            out["h"] = shape["kv_h"] * round_up(np.asarray(shape["h"]) / shape["kv_h"], self.group_step[stack])
        return out

    def coords(self, shape: dict, stack: str) -> tuple[tuple, list[np.ndarray]]:
        """Categorical values and interpolation axes of a shape (arrays broadcast)."""
        return tuple(CATEGORY[c](shape) for c in self.category_names(stack)), self.to_axes(shape)


def round_up(x, tile):
    """x rounded up to a multiple of `tile` (0: to the next power of two); below one tile, to the next power of two."""
    x = np.maximum(np.asarray(x, dtype=float), 1.0)
    pow2 = 2.0 ** np.ceil(np.log2(x))
    return pow2 if tile == 0 else np.ceil(x / np.minimum(tile, pow2)) * np.minimum(tile, pow2)


def _bytes_shape(cat: dict, axes: list) -> dict:
    return {**{k: v for k, v in cat.items() if k in CATEGORY_DEFAULT}, "bytes": axes[0], "t": cat.get("t", 1)}


OP_CLASS: dict[str, OpClass] = {c.name: c for c in (
    OpClass("gemm", ("m", "n", "k"), lambda s: [_f(s, "m"), _f(s, "n"), _f(s, "k")],
            lambda cat, ax: dict(zip("mnk", ax)), lambda s: gemm_cost(s["m"], s["n"], s["k"]),
            per_stack=True, tiles={"n": 128}, not_padded=(0,), work_interpolated=True, work_stacks=("triton",)),
    # Low-precision GEMMs (simulator/precision.py): FP8 w8a8 (kernels/gemm_fp8.py, torch._scaled_mm), int4
    # weight-only (kernels/gemm_int4.py), fp32 weights (no kernel: always derived). Scaled by the fit's `gemm`.
    *(OpClass(name, ("m", "n", "k"), lambda s: [_f(s, "m"), _f(s, "n"), _f(s, "k")],
              lambda cat, ax: dict(zip("mnk", ax)), lambda s, name=name: gemm_cost(s["m"], s["n"], s["k"], name),
              per_stack=True, tiles={"n": 128}, not_padded=(0,), work_interpolated=True, fit_group="gemm",
              derived_from="gemm", peak=peak, unmeasured=name == "gemm_fp32",
              work_stacks=("triton",) if name == "gemm_fp8" else (),
              stack_categories={"triton": ("k_blocks",)} if name == "gemm_fp8" else {},
              stand_in={"k_blocks": 1})
      for name, peak in (("gemm_fp8", "fp8"), ("gemm_int4", "bf16"), ("gemm_fp32", "bf16"))),
    OpClass("prefill_attn", ("b*h", "s", "d"), lambda s: [_f(s, "b") * _f(s, "h"), _f(s, "s"), _f(s, "d")],
            lambda cat, ax: {"b": ax[0], "h": 1, "kv_h": 1, "s": ax[1], "d": ax[2], "causal": cat["causal"]},
            lambda s: prefill_attn_cost(s["b"], s["h"], s["kv_h"], s["s"], s["d"], s["causal"]),
            categories=("causal",), stack_categories={"torch": ("even",)}, per_stack=True,
            head_dim_step={"triton": 0, "torch": 32}, not_padded=(0, 1, 2), work_interpolated=True,
            work_stacks=("triton", "torch")),
    OpClass("decode_attn", ("b*kv_h", "h/kv_h", "c", "d"),
            lambda s: [_f(s, "b") * _f(s, "kv_h"), _f(s, "h") / _f(s, "kv_h"), _f(s, "c"), _f(s, "d")],
            lambda cat, ax: {"b": ax[0], "h": ax[1], "kv_h": 1, "c": ax[2], "d": ax[3]},
            lambda s: decode_attn_cost(s["b"], s["h"], s["kv_h"], s["c"], s["d"]),
            per_stack=True, tiles={"c": 128}, group_step={"triton": 0}, not_padded=(3,), floor_axes=(2,),
            work_interpolated=True),
    # decode attention over an FP8 KV cache (one byte an element; kernels/decode_attention_fp8.py): derived from
    # decode_attn where a table has no points of it
    OpClass("decode_attn_fp8", ("b*kv_h", "h/kv_h", "c", "d"),
            lambda s: [_f(s, "b") * _f(s, "kv_h"), _f(s, "h") / _f(s, "kv_h"), _f(s, "c"), _f(s, "d")],
            lambda cat, ax: {"b": ax[0], "h": ax[1], "kv_h": 1, "c": ax[2], "d": ax[3]},
            lambda s: decode_attn_cost(s["b"], s["h"], s["kv_h"], s["c"], s["d"], kv_bytes=1.0),
            per_stack=True, tiles={"c": 128}, head_dim_step={"triton": 0}, group_step={"triton": 0}, not_padded=(3,),
            floor_axes=(2,), work_interpolated=True, fit_group="decode_attn", derived_from="decode_attn"),
    OpClass("elementwise", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            categories=("l2",)),
    # per-token FP8 quantization of a w8a8 GEMM's input (kernels/quant_fp8.py): `rows` rows of k bf16 values read,
    # written as e4m3 with a fp32 scale a row
    OpClass("quant_fp8", ("rows", "k"), lambda s: [_f(s, "rows"), _f(s, "k")],
            lambda cat, ax: {"rows": ax[0], "k": ax[1]}, lambda s: (0.0, quant_fp8_bytes(s["rows"], s["k"])),
            fit_group="elementwise", fallback="elementwise", when_used=True),
    # The engine's own element-wise kernels (kernels/fused.py; torch's argmax and embedding gather), each timed
    # over its shapes: residual add + norm over rows of `hidden`; rotary + KV-cache write over rows (token x
    # head) of head dim d; the FFN activation (SwiGLU or GELU); greedy sampling (argmax over the vocabulary); embedding lookup.
    OpClass("add_norm", ("rows", "hidden"), lambda s: [_f(s, "rows"), _f(s, "hidden")],
            lambda cat, ax: {"rows": ax[0], "hidden": ax[1]}, lambda s: (0.0, 4 * ACT_BYTES * s["rows"] * s["hidden"]),
            fit_group="elementwise", fallback="elementwise"),
    OpClass("rope_kv_write", ("rows", "d"), lambda s: [_f(s, "rows"), _f(s, "d")],
            lambda cat, ax: {"rows": ax[0], "d": ax[1]}, lambda s: (0.0, 2 * ACT_BYTES * s["rows"] * s["d"]),
            fit_group="elementwise", fallback="elementwise"),
    OpClass("act", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            fit_group="elementwise", fallback="elementwise"),
    # vocab not padded: the engines' argmax runs the vocabulary the model has (torch's is 3x slower at 128,256
    # than at 131,072 on the H200, and no engine pads its logits to a faster size)
    OpClass("sample", ("rows", "vocab"), lambda s: [_f(s, "rows"), _f(s, "vocab")],
            lambda cat, ax: {"rows": ax[0], "vocab": ax[1]}, lambda s: (0.0, ACT_BYTES * s["rows"] * s["vocab"]),
            not_padded=(1,), fit_group="elementwise", fallback="elementwise"),
    OpClass("embed", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            fit_group="elementwise", fallback="elementwise"),
    # torch element-wise ops on a strided or broadcast operand (a half of [gate | up], q and k inside qkv, cos and
    # sin over heads, the cache rows of a decode step): torch runs them in its non-vectorized kernels, each function
    # at its own rate a byte (`fn`, one of STRIDED_FNS)
    OpClass("strided", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            categories=("fn", "l2"), fit_group="elementwise", fallback="elementwise"),
    # the torch stack's norm alone (F.rms_norm or F.layer_norm, `fn`) over rows of `hidden`: x read, the norm written
    OpClass("norm", ("rows", "hidden"), lambda s: [_f(s, "rows"), _f(s, "hidden")],
            lambda cat, ax: {**cat, "rows": ax[0], "hidden": ax[1]},
            lambda s: (0.0, 2 * ACT_BYTES * s["rows"] * s["hidden"]), categories=("fn", "l2"), fit_group="elementwise",
            fallback="elementwise"),
    # a strided copy: the attention output from head-major to token-major before its projection (Triton stack), the
    # prompt's K and V from the QKV projection's token-major rows into the head-major cache (torch stack)
    OpClass("transpose", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            categories=("l2",), fit_group="elementwise", fallback="elementwise"),
    OpClass("allreduce", ("bytes",), lambda s: [_f(s, "bytes")], _bytes_shape, lambda s: (0.0, s["bytes"]),
            categories=("t",)),
    OpClass("launch", (), lambda s: [], lambda cat, ax: {"mode": cat["mode"]}, lambda s: (0.0, 0.0),
            categories=("mode",), per_stack=True, rate_axis=None),
    # host time the GPU waits for before a phase's first kernel (the reference engine's graphed prefill: its graph's
    # launch after a sync), counted with the GPU's work, scaled with the host's launches
    OpClass("start", (), lambda s: [], lambda cat, ax: {"mode": cat["mode"]}, lambda s: (0.0, 0.0),
            categories=("mode",), per_stack=True, rate_axis=None, fit_group="launch", unmeasured=True,
            when_used=True),
)}
OP_CLASSES = tuple(OP_CLASS)
COEFFICIENTS = tuple(dict.fromkeys(c.coefficient for c in OP_CLASS.values()))  # what a fit scales


def op_class(name: str) -> OpClass:
    """The record of an op class; an unknown name is a UserError listing the known ones."""
    if name not in OP_CLASS:
        raise UserError(f"unknown op class '{name}'; use one of {', '.join(OP_CLASSES)}")
    return OP_CLASS[name]


def op_cost(name: str, shape: dict[str, Num]) -> tuple[Num, Num]:
    """(FLOPs, bytes) of one run of an op of class `name` with `shape`, on one GPU."""
    return OP_CLASS[name].cost(shape)


def coords(name: str, shape: dict, stack: str = "triton") -> tuple[tuple, list[np.ndarray]]:
    """Categorical values and interpolation axes of a shape of class `name` (arrays broadcast)."""
    return op_class(name).coords(shape, stack)


def roofline_s(name: str, shape: dict, peak_flops: float, hbm_bw: float, link_bw: float) -> np.ndarray:
    """Roofline seconds of one run: a ring all-reduce moves 2(t−1)/t of its bytes over the link; any other
    class takes max(FLOPs / peak, bytes / HBM bandwidth), `peak_flops` the class's (`OpClass.peak`)."""
    if name == "allreduce":
        t = shape["t"]
        return np.asarray(2.0 * (t - 1) / t * shape["bytes"] / link_bw)
    flops, nbytes = op_cost(name, shape)
    return np.maximum(flops / peak_flops, nbytes / hbm_bw)


def gpu_roofline_s(name: str, shape: dict, gpu) -> np.ndarray:
    """`roofline_s` on a GPUSpec's datasheet figures, at the class's tensor-core peak."""
    return roofline_s(name, shape, gpu.peak_flops(OP_CLASS[name].peak), gpu.hbm_bw_bytes_s,
                      gpu.interconnect_bw_bytes_s)
