"""Numeric precision a model is served in: the decoder layers' linear weights, the GEMMs' activations, the KV
cache. One frozen record on the architecture spec (`ArchSpec.precision`), read from a Hugging Face config
(simulator/hf_config.py) or set by `--weights` / `--kv`.

What each choice costs (simulator/memory.py, simulator/ops.py, simulator/opclasses.py):
- weights "bf16" (or fp16: the same bytes and tensor-core rate), "fp32" (4 bytes, from torch_dtype float32),
  "fp8" (e4m3, one byte; a fp32 scale per tensor or per output channel, left out of memory: under 0.5%),
  "int4" (half a byte, plus per group of `group_size` weights along K a fp16 scale and, with zero points, a
  packed 4-bit zero; group_size 0: one group per output channel, K counted as the hidden size).
- Only the decoder layers' linear weights (attention, FFN, experts) take the weights dtype; embeddings, LM head,
  MoE router and norms stay in the checkpoint's dtype (`ArchSpec.bytes_per_weight`), as quantized checkpoints
  leave them.
- activations "fp8" (FP8 tensor cores, w8a8) go with fp8 weights only; int4 is weight-only (bf16 activations).
- kv "fp8": one byte per cached element (its per-layer scales left out).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.errors import UserError

WEIGHTS = ("bf16", "fp8", "int4", "fp32")
FLAG_WEIGHTS = ("bf16", "fp8", "int4")  # what --weights takes (fp32 comes from a config's torch_dtype only)
ACTIVATIONS = ("bf16", "fp8")
KV = ("bf16", "fp8")
SCALES = ("tensor", "channel")
DTYPE_BYTES = {"bf16": 2.0, "fp8": 1.0, "int4": 0.5, "fp32": 4.0}
INT4_SCALE_BYTES = 2.0  # one fp16 scale per group (AWQ, GPTQ)
INT4_ZERO_BYTES = 0.5  # one packed 4-bit zero point per group (AWQ qzeros, GPTQ qzeros)
GEMM_CLASS = {"bf16": "gemm", "fp8": "gemm_fp8", "int4": "gemm_int4", "fp32": "gemm_fp32"}  # by weights dtype


@dataclass(frozen=True)
class Precision:
    """Dtypes of the served model (see the module docstring for what each costs)."""

    weights: str = "bf16"  # the decoder layers' linear weights: one of WEIGHTS
    activations: str = "bf16"  # inputs of those GEMMs: one of ACTIVATIONS
    kv: str = "bf16"  # KV cache: one of KV
    scale: str = "tensor"  # fp8 weight scales: per tensor or per output channel
    group_size: int = 128  # int4: weights per scale along K; 0: one scale per output channel
    zero_points: bool = False  # int4: asymmetric (a zero point per group beside the scale)

    def __post_init__(self) -> None:
        for name, allowed in (("weights", WEIGHTS), ("activations", ACTIVATIONS), ("kv", KV), ("scale", SCALES)):
            if getattr(self, name) not in allowed:
                raise UserError(f"precision: '{name}' is {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 0:
            raise UserError(f"precision: 'group_size' must be a whole number >= 0 (0: per channel), got "
                            f"{self.group_size!r}")
        if (self.activations == "fp8") != (self.weights == "fp8"):
            raise UserError(f"precision: weights {self.weights} with activations {self.activations} is not modelled; "
                            "fp8 activations go with fp8 weights (w8a8), and fp8 weights with fp8 activations")

    @property
    def gemm_class(self) -> str:
        """The op class of the decoder layers' GEMMs (simulator.opclasses)."""
        return GEMM_CLASS[self.weights]

    @property
    def kv_bytes(self) -> float:
        """Bytes of one cached K or V element."""
        return DTYPE_BYTES[self.kv]

    def layer_weight_bytes(self, k: int) -> float:
        """Bytes per decoder-layer linear weight, its quantization scales included; k: the in-features that a
        per-channel group spans."""
        if self.weights != "int4":
            return DTYPE_BYTES[self.weights]
        group = self.group_size or k
        return DTYPE_BYTES["int4"] + (INT4_SCALE_BYTES + (INT4_ZERO_BYTES if self.zero_points else 0.0)) / group

    @property
    def label(self) -> str:
        """Short description for tables and reports, e.g. 'int4 g128, kv fp8'."""
        w = {"int4": f"int4 g{self.group_size or 'channel'}{' zp' if self.zero_points else ''}",
             "fp8": f"fp8 ({self.scale})"}.get(self.weights, self.weights)
        return w if self.kv == "bf16" else f"{w}, kv {self.kv}"

    def with_flags(self, weights: str | None = None, kv: str | None = None) -> Precision:
        """This precision with `--weights` / `--kv` applied (fp8 weights bring fp8 activations, others bf16);
        a bad value is a UserError naming the flag."""
        out = self
        if weights is not None:
            if weights not in FLAG_WEIGHTS:
                raise UserError(f"--weights '{weights}': use one of {', '.join(FLAG_WEIGHTS)}")
            out = replace(out, weights=weights, activations="fp8" if weights == "fp8" else "bf16")
        if kv is not None:
            if kv not in KV:
                raise UserError(f"--kv '{kv}': use one of {', '.join(KV)}")
            out = replace(out, kv=kv)
        return out


BF16 = Precision()


def precision_of(value) -> Precision:
    """A Precision from itself or from its fields as a dict (an ArchSpec rebuilt from JSON)."""
    if isinstance(value, Precision):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(Precision.__dataclass_fields__))
        if unknown:
            raise UserError(f"precision: unknown field '{unknown[0]}'; use {', '.join(Precision.__dataclass_fields__)}")
        return Precision(**value)
    raise UserError(f"precision: expected a Precision or an object of its fields, got {type(value).__name__}")
