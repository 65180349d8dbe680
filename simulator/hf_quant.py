"""A Hugging Face config's `quantization_config` (and `torch_dtype`) -> Precision, or a refusal naming the field.

Modelled (simulator/precision.py): `quant_method` "fp8" (FP8 w8a8, per-tensor scales; `activation_scheme` dynamic or
static), "awq" and "gptq" with `bits` 4 (int4 weight-only, `group_size`, zero points), "compressed-tensors" with
one config group of FP8 weights and FP8 input activations (strategy tensor or channel), or of 4-bit integer
weights without activation quantization (w4a16), and its `kv_cache_scheme` of 8-bit floats (an FP8 KV cache).
Anything else that changes memory or time is refused by its dotted field name, never predicted as bf16.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from simulator.errors import UserError
from simulator.precision import Precision

QUANT_METHODS = ("fp8", "awq", "gptq", "compressed-tensors")
Fail = Callable[[str], UserError]  # message -> the error to raise (prefixed with the config's source)


def _get(qc: dict, path: str, fail: Fail, default: Any = None) -> Any:
    """The value at a dotted path under quantization_config, `default` when absent or null."""
    node: Any = qc
    for part in path.split("."):
        if not isinstance(node, dict):
            raise fail(f"'quantization_config.{path}': expected an object above '{part}'")
        node = node.get(part)
        if node is None:
            return default
    return node


def _int4(qc: dict, fail: Fail, bits_key: str, group_key: str, zero_points: bool) -> Precision:
    """int4 weight-only (AWQ, GPTQ): 4 bits, a group size (-1: one group per output channel)."""
    bits = _get(qc, bits_key, fail)
    if bits != 4:
        raise fail(f"'quantization_config.{bits_key}' is {bits!r}: only 4-bit weights are modelled; predict the "
                   "bf16 model without 'quantization_config', or a 4-bit checkpoint")
    group = _get(qc, group_key, fail, 128)
    if isinstance(group, bool) or not isinstance(group, int) or group == 0 or group < -1:
        raise fail(f"'quantization_config.{group_key}' must be a positive whole number or -1 (per channel), "
                   f"got {group!r}")
    return Precision(weights="int4", group_size=max(group, 0), zero_points=zero_points)


def _fp8(qc: dict, fail: Fail) -> Precision:
    """quant_method fp8: e4m3 weights and activations, per-tensor weight scales; block-wise scales refused."""
    if _get(qc, "weight_block_size", fail) is not None:
        raise fail("'quantization_config.weight_block_size' (block-wise FP8 scales) is not modelled; remove it to "
                   "predict per-tensor FP8")
    scheme = _get(qc, "activation_scheme", fail, "dynamic")
    if scheme not in ("dynamic", "static"):
        raise fail(f"'quantization_config.activation_scheme' is {scheme!r}; use dynamic or static")
    return Precision(weights="fp8", activations="fp8", scale="tensor")


def _ct_group(qc: dict, fail: Fail) -> tuple[str, dict]:
    """The one config group of a compressed-tensors config (several schemes in one model are refused)."""
    groups = _get(qc, "config_groups", fail)
    if not isinstance(groups, dict) or len(groups) != 1:
        raise fail("'quantization_config.config_groups' must hold exactly one scheme to be modelled, got "
                   f"{len(groups) if isinstance(groups, dict) else groups!r}")
    name, group = next(iter(groups.items()))
    if not isinstance(group, dict):
        raise fail(f"'quantization_config.config_groups.{name}' must be an object")
    return f"config_groups.{name}", group


def _compressed_tensors(qc: dict, fail: Fail) -> Precision:
    """compressed-tensors: FP8 w8a8 (tensor or channel weight scales) or int4 w4a16 (group or channel)."""
    sparsity = _get(qc, "sparsity_config", fail)
    if sparsity is not None and (not isinstance(sparsity, dict) or sparsity.get("format", "dense") != "dense"):
        raise fail("'quantization_config.sparsity_config' (sparse weights) is not modelled; remove it to predict the "
                   "dense quantized model")
    where, group = _ct_group(qc, fail)
    w, a = group.get("weights") or {}, group.get("input_activations")
    kind, bits, strategy = w.get("type"), w.get("num_bits"), w.get("strategy")
    if kind == "float" and bits == 8:
        if strategy not in ("tensor", "channel"):
            raise fail(f"'quantization_config.{where}.weights.strategy' is {strategy!r}; FP8 weights are modelled "
                       "with tensor or channel scales")
        if not isinstance(a, dict) or a.get("type") != "float" or a.get("num_bits") != 8:
            raise fail(f"'quantization_config.{where}.input_activations' is {a!r}: FP8 weights are modelled with "
                       "FP8 activations (w8a8) only")
        return Precision(weights="fp8", activations="fp8", scale=strategy)
    if kind == "int" and bits == 4:
        if a is not None:
            raise fail(f"'quantization_config.{where}.input_activations' is {a!r}: 4-bit weights are modelled "
                       "weight-only (w4a16)")
        if strategy not in ("group", "channel"):
            raise fail(f"'quantization_config.{where}.weights.strategy' is {strategy!r}; 4-bit weights are "
                       "modelled with group or channel scales")
        size = w.get("group_size") if strategy == "group" else 0
        if strategy == "group" and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise fail(f"'quantization_config.{where}.weights.group_size' must be a positive whole number, "
                       f"got {size!r}")
        return Precision(weights="int4", group_size=size, zero_points=w.get("symmetric", True) is False)
    raise fail(f"'quantization_config.{where}.weights' ({kind} {bits}-bit) is not modelled; compressed-tensors "
               "schemes modelled: 8-bit float weights and activations, 4-bit int weights")


def _kv_scheme(qc: dict, fail: Fail) -> str:
    """KV-cache dtype of a compressed-tensors `kv_cache_scheme`: fp8 for 8-bit floats, bf16 when absent."""
    scheme = _get(qc, "kv_cache_scheme", fail)
    if scheme is None:
        return "bf16"
    if not isinstance(scheme, dict) or scheme.get("type") != "float" or scheme.get("num_bits") != 8:
        raise fail(f"'quantization_config.kv_cache_scheme' is {scheme!r}; an 8-bit float KV cache is modelled")
    return "fp8"


def precision_from_config(cfg: dict, fail: Fail, float32: bool) -> Precision:
    """The Precision of a config: its quantization_config, else fp32 weights when torch_dtype is float32."""
    qc = cfg.get("quantization_config")
    if qc is None:
        return Precision(weights="fp32") if float32 else Precision()
    if not isinstance(qc, dict):
        raise fail(f"'quantization_config' must be an object, got {type(qc).__name__}")
    method = qc.get("quant_method")
    if method == "fp8":
        return _fp8(qc, fail)
    if method == "awq":
        bits, group = ("bits", "group_size") if "bits" in qc else ("w_bit", "q_group_size")
        return _int4(qc, fail, bits, group, zero_points=_get(qc, "zero_point", fail, True) is not False)
    if method == "gptq":
        return _int4(qc, fail, "bits", "group_size", zero_points=_get(qc, "sym", fail, True) is False)
    if method == "compressed-tensors":
        prec = _compressed_tensors(qc, fail)
        kv = _kv_scheme(qc, fail)
        return replace(prec, kv=kv)
    raise fail(f"'quantization_config.quant_method' is {method!r}: not modelled; modelled: {', '.join(QUANT_METHODS)} "
               "(or remove 'quantization_config' to predict the bf16 model)")
