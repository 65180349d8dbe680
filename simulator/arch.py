"""Architecture spec of a decoder-only Transformer: the one dataclass every part of idealrt reads.

Specs are validated once, where they enter (catalog, config.json, CLI); inner code trusts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from simulator.errors import UserError as SpecError
from simulator.precision import BF16, Precision, precision_of

FFN_KINDS = ("gelu", "swiglu")  # gelu: up + down (2 matrices); swiglu: gate + up + down (3)
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("rotary", "learned", "alibi", "sinusoidal")




@dataclass(frozen=True)
class ArchSpec:
    """Shape of a decoder-only Transformer, enough to count every op's FLOPs and bytes."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int  # == n_heads: MHA; 1: MQA; else GQA
    head_dim: int
    ffn_hidden: int  # intermediate size of the dense FFN (0 when every layer is MoE without a dense path)
    ffn_kind: str  # one of FFN_KINDS
    vocab: int
    max_positions: int
    n_experts: int = 0  # 0: dense model
    experts_per_token: int = 0
    expert_ffn_hidden: int = 0  # intermediate size of one routed expert
    n_shared_experts: int = 0  # always-on experts of expert_ffn_hidden each (Qwen-MoE, DeepSeek)
    parallel_block: bool = False  # attention and MLP read the same normed input (GPT-J, NeoX, Falcon)
    norm: str = "layernorm"
    positions: str = "rotary"
    tied_embeddings: bool = False
    bytes_per_weight: float = 2.0  # the checkpoint's dtype (bf16/fp16: 2, fp32: 4): weights outside `precision`'s
    precision: Precision = field(default=BF16)  # dtypes served (simulator/precision.py)
    published_params: float = 0.0  # published size in parameters, for the catalog's 2% check; 0 if unknown

    def __post_init__(self) -> None:
        for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab", "max_positions"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise SpecError(f"{self.name}: field '{f}' must be a positive integer, got {v!r}")
        if self.ffn_kind not in FFN_KINDS:
            raise SpecError(f"{self.name}: field 'ffn_kind' is {self.ffn_kind!r}; use one of {FFN_KINDS}")
        if self.norm not in NORMS:
            raise SpecError(f"{self.name}: field 'norm' is {self.norm!r}; use one of {NORMS}")
        if self.positions not in POSITIONS:
            raise SpecError(f"{self.name}: field 'positions' is {self.positions!r}; use one of {POSITIONS}")
        if self.n_heads % self.n_kv_heads:
            raise SpecError(
                f"{self.name}: n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}; "
                "fix num_key_value_heads")
        if self.n_experts < 0 or self.experts_per_token < 0 or self.n_shared_experts < 0:
            raise SpecError(f"{self.name}: expert counts must be >= 0")
        if self.n_experts:
            if not 0 < self.experts_per_token <= self.n_experts:
                raise SpecError(f"{self.name}: experts_per_token={self.experts_per_token} must be in "
                                f"1..n_experts={self.n_experts}")
            if self.expert_ffn_hidden <= 0:
                raise SpecError(f"{self.name}: field 'expert_ffn_hidden' must be positive for an MoE model")
        elif self.ffn_hidden <= 0:
            raise SpecError(f"{self.name}: field 'ffn_hidden' must be a positive integer for a dense model")
        if self.bytes_per_weight not in (2.0, 4.0):
            raise SpecError(f"{self.name}: field 'bytes_per_weight' is {self.bytes_per_weight!r}; use 2 (bf16, fp16) "
                            "or 4 (fp32)")
        object.__setattr__(self, "precision", precision_of(self.precision))  # as rebuilt from JSON

    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def ffn_mats(self) -> int:
        """Weight matrices per FFN: 2 for GELU (up, down), 3 for SwiGLU (gate, up, down)."""
        return 3 if self.ffn_kind == "swiglu" else 2

    def positions_used(self, prompt, output):
        """Positions a request of `prompt` + `output` tokens feeds (the last output token is never fed back)."""
        return prompt + output - 1

    def attn_params_per_layer(self) -> int:
        return self.hidden * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.hidden

    def ffn_params_per_layer(self, active: bool = False) -> int:
        """FFN weights of one layer; active=True counts only the experts one token uses."""
        per = self.ffn_mats * self.hidden
        if not self.is_moe:
            return per * self.ffn_hidden
        routed = self.experts_per_token if active else self.n_experts
        router = self.hidden * self.n_experts
        return per * self.expert_ffn_hidden * (routed + self.n_shared_experts) + router

    def embedding_params(self) -> int:
        emb = self.vocab * self.hidden
        pos = self.max_positions * self.hidden if self.positions == "learned" else 0
        return emb + pos + (0 if self.tied_embeddings else emb)

    def param_count(self, active: bool = False) -> int:
        """Total weights (norm gains and biases left out: under 0.1% for every catalog model)."""
        layer = self.attn_params_per_layer() + self.ffn_params_per_layer(active)
        return self.n_layers * layer + self.embedding_params()

    def weight_bytes(self) -> float:
        """Bytes of all weights: the decoder layers' linear weights at `precision`, the rest at bytes_per_weight."""
        router = self.hidden * self.n_experts
        linear = self.n_layers * (self.attn_params_per_layer() + self.ffn_params_per_layer() - router)
        return (linear * self.precision.layer_weight_bytes(self.hidden)
                + (self.param_count() - linear) * self.bytes_per_weight)

    def kv_bytes_per_token(self, kv_bytes: float | None = None) -> float:
        """KV-cache bytes one token adds over all layers (K and V; default: the precision's KV dtype)."""
        return 2 * self.n_layers * self.kv_dim * (self.precision.kv_bytes if kv_bytes is None else kv_bytes)

    def with_(self, **changes) -> "ArchSpec":
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
