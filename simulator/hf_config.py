"""Hugging Face config.json -> ArchSpec, so any published checkpoint's shape can be predicted for.

Dispatches on `model_type`; each family maps its own key names (n_embd / hidden_size / ...). The core
sizes are required. A flag or secondary size absent from the file takes the default of that family's
`transformers` config class (what transformers itself would build), never a guess of ours; the one
exception, BLOOM's context, is the 2048 tokens every BLOOM model was trained at. `quantization_config` and
`torch_dtype` set the precision (simulator/hf_quant.py). Bad input raises UserError naming the key and the fix.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.hf_quant import precision_from_config

_REQUIRED = object()


class _Keys:
    """Typed reads of one config dict; every error names the key and the file it came from."""

    def __init__(self, cfg: dict, source: str) -> None:
        self.cfg, self.source = cfg, source

    def find(self, keys: tuple[str, ...]) -> tuple[str, Any]:
        """(key, value) of the first key present and not null, else (keys[0], None)."""
        for k in keys:
            if self.cfg.get(k) is not None:
                return k, self.cfg[k]
        return keys[0], None

    def size(self, *keys: str, default: Any = _REQUIRED) -> int:
        """A positive integer under the first present key of `keys`."""
        key, value = self.find(keys)
        if value is None:
            if default is _REQUIRED:
                alts = f" (or {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else ""
                raise self.fail(f"missing key '{key}'{alts} for model_type '{self.cfg['model_type']}'; "
                                "copy it from the model's published config.json")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(f"'{key}' must be a positive integer, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.cfg.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"'{key}' must be true or false, got {value!r}")
        return value

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}")


def _head_dim(k: _Keys, hidden: int, heads: int, heads_key: str, explicit_ok: bool) -> int:
    """head_dim from the file where the family allows it, else hidden / heads (which must divide)."""
    if explicit_ok and k.cfg.get("head_dim") is not None:
        return k.size("head_dim")
    if hidden % heads:
        raise k.fail(f"hidden size {hidden} is not divisible by '{heads_key}'={heads}; fix one of them")
    derived = hidden // heads
    if k.cfg.get("head_dim") not in (None, derived):
        raise k.fail(f"'head_dim'={k.cfg['head_dim']!r} contradicts hidden size / '{heads_key}' = {derived} "
                     "(this family has no separate head_dim); remove or fix it")
    return derived


def _kv_heads(k: _Keys, heads: int, *keys: str) -> int:
    keys = keys or ("num_key_value_heads",)
    kv, key = k.size(*keys, default=heads), k.find(keys)[0]
    if heads % kv:
        raise k.fail(f"'{key}'={kv} does not divide the {heads} attention heads; fix '{key}'")
    return kv


def _experts(k: _Keys, n_key: str, top_key: str, size_key: str) -> dict:
    n, top = k.size(n_key), k.size(top_key)
    if top > n:
        raise k.fail(f"'{top_key}'={top} exceeds '{n_key}'={n}; fix '{top_key}'")
    return dict(n_experts=n, experts_per_token=top, expert_ffn_hidden=k.size(size_key), ffn_hidden=0)


# -- families ------------------------------------------------------------------------------------
def _llama_like(k: _Keys, tied_default: bool = False, dense: bool = True) -> dict:
    """Llama, Mistral, Qwen2, Phi-3, Gemma: gated FFN, RMSNorm, rotary, optional GQA and head_dim."""
    hidden, heads = k.size("hidden_size"), k.size("num_attention_heads")
    fields = dict(n_layers=k.size("num_hidden_layers"), hidden=hidden, n_heads=heads,
                  n_kv_heads=_kv_heads(k, heads),
                  head_dim=_head_dim(k, hidden, heads, "num_attention_heads", explicit_ok=True),
                  ffn_kind="swiglu", vocab=k.size("vocab_size"),
                  max_positions=k.size("max_position_embeddings"), norm="rmsnorm", positions="rotary",
                  tied_embeddings=k.flag("tie_word_embeddings", tied_default))
    if dense:
        fields["ffn_hidden"] = k.size("intermediate_size")
    return fields


def _gemma(k: _Keys) -> dict:
    """Gemma: head_dim is its own size (transformers' default, 256, is not hidden / heads): required."""
    k.size("head_dim")
    return _llama_like(k, tied_default=True)


def _mixtral(k: _Keys) -> dict:
    return {**_llama_like(k, dense=False),
            **_experts(k, "num_local_experts", "num_experts_per_tok", "intermediate_size")}


def _olmoe(k: _Keys) -> dict:
    return {**_llama_like(k, dense=False),
            **_experts(k, "num_experts", "num_experts_per_tok", "intermediate_size")}


def _qwen2_moe(k: _Keys) -> dict:
    """Qwen2-MoE: routed experts plus a shared expert, held as whole experts of moe_intermediate_size."""
    if k.cfg.get("decoder_sparse_step", 1) != 1 or k.cfg.get("mlp_only_layers"):
        raise k.fail("'decoder_sparse_step' != 1 or 'mlp_only_layers' set: mixed dense/MoE layers are not "
                     "supported; every layer must be MoE")
    fields = {**_llama_like(k, dense=False),
              **_experts(k, "num_experts", "num_experts_per_tok", "moe_intermediate_size")}
    shared = k.size("shared_expert_intermediate_size", default=0)
    if shared % fields["expert_ffn_hidden"]:
        raise k.fail(f"'shared_expert_intermediate_size'={shared} is not a multiple of "
                     f"'moe_intermediate_size'={fields['expert_ffn_hidden']}; idealrt holds the shared "
                     "expert as whole experts")
    return {**fields, "n_shared_experts": shared // fields["expert_ffn_hidden"]}


def _gpt2_like(k: _Keys, parallel: bool, positions: str, tied_default: bool) -> dict:
    """GPT-2 and GPT-J: n_embd / n_layer / n_head, n_inner defaults to 4 * n_embd."""
    hidden, heads = k.size("n_embd"), k.size("n_head")
    return dict(n_layers=k.size("n_layer"), hidden=hidden, n_heads=heads, n_kv_heads=heads,
                head_dim=_head_dim(k, hidden, heads, "n_head", explicit_ok=False),
                ffn_hidden=k.size("n_inner", default=4 * hidden), ffn_kind="gelu", vocab=k.size("vocab_size"),
                max_positions=k.size("n_positions"), norm="layernorm", positions=positions,
                parallel_block=parallel, tied_embeddings=k.flag("tie_word_embeddings", tied_default))


def _gpt_neox(k: _Keys) -> dict:
    hidden, heads = k.size("hidden_size"), k.size("num_attention_heads")
    return dict(n_layers=k.size("num_hidden_layers"), hidden=hidden, n_heads=heads, n_kv_heads=heads,
                head_dim=_head_dim(k, hidden, heads, "num_attention_heads", explicit_ok=False),
                ffn_hidden=k.size("intermediate_size"), ffn_kind="gelu", vocab=k.size("vocab_size"),
                max_positions=k.size("max_position_embeddings"), norm="layernorm", positions="rotary",
                parallel_block=k.flag("use_parallel_residual", True),
                tied_embeddings=k.flag("tie_word_embeddings", False))


def _opt(k: _Keys) -> dict:
    hidden, heads = k.size("hidden_size"), k.size("num_attention_heads")
    if k.size("word_embed_proj_dim", default=hidden) != hidden:
        raise k.fail(f"'word_embed_proj_dim' != 'hidden_size'={hidden} (projected embeddings, as in "
                     "OPT-350m) is not supported")
    return dict(n_layers=k.size("num_hidden_layers"), hidden=hidden, n_heads=heads, n_kv_heads=heads,
                head_dim=_head_dim(k, hidden, heads, "num_attention_heads", explicit_ok=False),
                ffn_hidden=k.size("ffn_dim"), ffn_kind="gelu", vocab=k.size("vocab_size"),
                max_positions=k.size("max_position_embeddings"), norm="layernorm", positions="learned",
                tied_embeddings=k.flag("tie_word_embeddings", True))


def _bloom(k: _Keys) -> dict:
    """BLOOM: ALiBi (no position table); every BLOOM model was trained at 2048 tokens (BigScience)."""
    hidden, heads = k.size("hidden_size", "n_embed"), k.size("n_head", "num_attention_heads")
    return dict(n_layers=k.size("n_layer", "num_hidden_layers"), hidden=hidden, n_heads=heads,
                n_kv_heads=heads, head_dim=_head_dim(k, hidden, heads, "n_head", explicit_ok=False),
                ffn_hidden=4 * hidden, ffn_kind="gelu", vocab=k.size("vocab_size"),
                max_positions=k.size("seq_length", default=2048), norm="layernorm", positions="alibi",
                tied_embeddings=k.flag("tie_word_embeddings", True))


def _falcon(k: _Keys, new_arch_default: bool = False) -> dict:
    """Falcon: multi_query (7B), or grouped KV with new_decoder_architecture (40B, 180B)."""
    hidden, heads = k.size("hidden_size"), k.size("num_attention_heads", "n_head")
    new_arch = k.flag("new_decoder_architecture", new_arch_default)
    if new_arch:
        kv = _kv_heads(k, heads, "num_kv_heads", "n_head_kv")
    else:
        kv = 1 if k.flag("multi_query", True) else heads
    return dict(n_layers=k.size("num_hidden_layers", "n_layer"), hidden=hidden, n_heads=heads, n_kv_heads=kv,
                head_dim=_head_dim(k, hidden, heads, "num_attention_heads", explicit_ok=False),
                ffn_hidden=k.size("ffn_hidden_size", default=4 * hidden), ffn_kind="gelu",
                vocab=k.size("vocab_size"), max_positions=k.size("max_position_embeddings", default=2048),
                norm="layernorm", positions="alibi" if k.flag("alibi", False) else "rotary",
                parallel_block=new_arch or k.flag("parallel_attn", True),
                tied_embeddings=k.flag("tie_word_embeddings", True))


FAMILIES: dict[str, Callable[[_Keys], dict]] = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "qwen2": _llama_like,
    "phi3": _llama_like,
    "gemma": _gemma,
    "gemma2": _gemma,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen2_moe,
    "olmoe": _olmoe,
    "gpt2": lambda k: _gpt2_like(k, parallel=False, positions="learned", tied_default=True),
    "gptj": lambda k: _gpt2_like(k, parallel=True, positions="rotary", tied_default=False),
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "bloom": _bloom,
    "falcon": _falcon,
    "RefinedWebModel": _falcon,  # early Falcon-7B checkpoints
    "RefinedWeb": lambda k: _falcon(k, new_arch_default=True),  # early Falcon-40B checkpoints
}


# -- entry point ---------------------------------------------------------------------------------
def _read_json(path: str) -> dict:
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except OSError as e:
        raise UserError(f"cannot read config file '{path}': {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"'{path}' is not valid JSON ({e}); pass a Hugging Face config.json") from None
    return cfg


def _default_name(cfg: dict, path: str | None) -> str:
    """`_name_or_path`, else the file's stem (mixtral.json -> mixtral), else for a file named config.json
    (or a folder) the folder's name, else the model_type."""
    if cfg.get("_name_or_path"):
        return str(cfg["_name_or_path"]).rstrip("/").split("/")[-1].lower()
    if path:
        if not os.path.isdir(path) and os.path.basename(path) != "config.json":
            return os.path.splitext(os.path.basename(path))[0].lower()
        folder = os.path.normpath(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
        if os.path.basename(folder):
            return os.path.basename(folder).lower()
    return str(cfg["model_type"]).lower()


# bytes per weight of the checkpoint dtypes idealrt takes (fp32 weights: Precision(weights="fp32"))
DTYPE_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0}


def _bytes_per_weight(k: _Keys) -> float:
    """Bytes per weight from 'torch_dtype' (or 'dtype', its newer name); bf16 when absent."""
    key, value = k.find(("torch_dtype", "dtype"))
    if value is None:
        return 2.0
    name = str(value).removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise k.fail(f"'{key}' is {value!r}; idealrt takes {', '.join(DTYPE_BYTES)} (set '{key}' to bfloat16 "
                     "to predict the model served in bf16)")
    return DTYPE_BYTES[name]


def _refuse_unmodelled(k: _Keys, max_positions: int) -> None:
    """Fields that change memory or time and are not modelled yet: refused by name, never ignored."""
    window = k.cfg.get("sliding_window")
    if window is not None and k.cfg.get("use_sliding_window", True) is not False:
        if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
            raise k.fail(f"'sliding_window' must be a positive integer or null, got {window!r}")
        if window < max_positions:
            raise k.fail(f"'sliding_window'={window} (below the {max_positions} positions) is not modelled yet; "
                         "set it to null to predict full attention in every layer (an upper bound on its time)")


def load_config(path_or_dict: str | os.PathLike | dict, name: str | None = None) -> ArchSpec:
    """ArchSpec of a Hugging Face config.json (a file, its folder, or the already-parsed dict)."""
    if isinstance(path_or_dict, dict):
        cfg, path, source = path_or_dict, None, "config"
    else:
        path = os.fspath(path_or_dict)
        cfg, source = _read_json(path), path
    if not isinstance(cfg, dict):
        raise UserError(f"{source}: expected a JSON object (a Hugging Face config.json), got "
                        f"{type(cfg).__name__}")
    model_type = cfg.get("model_type")
    if model_type is None:
        raise UserError(f"{source}: no 'model_type' key; add it (e.g. \"llama\") or pass the model's own "
                        "config.json")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise UserError(f"{source}: model_type '{model_type}' is not supported; supported: "
                        f"{', '.join(sorted(FAMILIES))}")
    keys = _Keys(cfg, source)
    fields = FAMILIES[model_type](keys)
    _refuse_unmodelled(keys, fields["max_positions"])
    nbytes = _bytes_per_weight(keys)
    precision = precision_from_config(cfg, keys.fail, float32=nbytes == DTYPE_BYTES["float32"])
    return ArchSpec(name=name or _default_name(cfg, path), bytes_per_weight=nbytes, precision=precision, **fields)
