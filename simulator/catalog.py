"""Architecture catalog: named decoder-only Transformers as ArchSpec, in the gpt-fast style.

Each entry is a plain dict of ArchSpec fields. `published_params` is the size its authors published
(source in the comment); tests check that `ArchSpec.param_count()` lands within 2% of it. Open models
take their values from their config.json on Hugging Face (`load_config` of that file gives the same
spec); the 2022 API models of the paper take theirs from the papers named in the comments.
"""
from __future__ import annotations

from simulator.arch import ArchSpec
from simulator.names import lookup

# Family settings shared by many entries.
GPT = dict(ffn_kind="gelu", norm="layernorm", positions="learned", tied_embeddings=True)
LLAMA = dict(ffn_kind="swiglu", norm="rmsnorm", positions="rotary")
NEOX = dict(ffn_kind="gelu", norm="layernorm", positions="rotary", parallel_block=True)
BLOOM = dict(ffn_kind="gelu", norm="layernorm", positions="alibi", tied_embeddings=True)


def _mha(n_layers: int, hidden: int, n_heads: int, **rest) -> dict:
    """A multi-head-attention model with the classic 4x FFN (the 2022 models)."""
    return dict(n_layers=n_layers, hidden=hidden, n_heads=n_heads, n_kv_heads=n_heads,
                head_dim=hidden // n_heads, ffn_hidden=4 * hidden, **rest)


_CONFIGS: dict[str, dict] = {
    # === The paper's study models (Narayanan et al. 2023, HELM efficiency) ========================
    # GPT-3 paper (Brown et al. 2020, Table 2.1): 96 layers, d=12288, 96 heads of 128, ctx 2048,
    # GPT-2 BPE vocab 50257, learned positions, tied embeddings as in GPT-2.
    "gpt3-davinci-175b": _mha(96, 12288, 96, vocab=50257, max_positions=2048, **GPT,
                              published_params=175e9),
    # Jurassic-1 white paper (Lieber et al. 2021, Table 1): J1-Large 32 layers, d=4096, 32 heads;
    # J1-Jumbo 76 layers, d=13824, 96 heads; 256K vocabulary. J1-Grande's shape is unpublished; the
    # paper's own script (stanford-crfm/helm-efficiency scripts/ai21_j1_grande.sh) uses 50 layers,
    # d=5120, 40 heads. Assumed: GPT-3-like blocks, learned positions, tied embeddings, ctx 2048.
    "j1-large-7.5b": _mha(32, 4096, 32, vocab=256000, max_positions=2048, **GPT,
                          published_params=7.5e9),
    "j1-grande-17b": _mha(50, 5120, 40, vocab=256000, max_positions=2048, **GPT,
                          published_params=17e9),
    "j1-jumbo-178b": _mha(76, 13824, 96, vocab=256000, max_positions=2048, **GPT,
                          published_params=178e9),
    # Askell et al. 2021 ("A General Language Assistant..."), 52B: 64 layers, d=8192; 64 heads as in the
    # paper's script (helm-efficiency scripts/anthropic.sh). Assumed: vocab 2^16 and ctx 8192 (as
    # recalled from Askell et al.), GPT-style blocks, tied embeddings.
    "anthropic-lm-52b": _mha(64, 8192, 64, vocab=65536, max_positions=8192, **GPT,
                             published_params=52e9),
    # Cohere xlarge: HELM lists 52.4B; the architecture is unpublished. Assumed: the same shape as the
    # other 52B model of the study (64 layers, d=8192, 64 heads), GPT-2 vocab, ctx 2048.
    "cohere-xl-52b": _mha(64, 8192, 64, vocab=50257, max_positions=2048, **GPT,
                          published_params=52.4e9),
    # MT-NLG (Smith et al. 2022): 105 layers, d=20480, 128 heads, GPT-2 vocab, ctx 2048.
    "mt-nlg-530b": _mha(105, 20480, 128, vocab=50257, max_positions=2048, **GPT,
                        published_params=530e9),
    # === Open models: values from config.json on Hugging Face ====================================
    # EleutherAI/gpt-j-6b: 28 layers, d=4096, 16 heads of 256, parallel block, untied head;
    # published 6,053,381,344 (model card "6B").
    "gpt-j-6b": _mha(28, 4096, 16, vocab=50400, max_positions=2048, **NEOX, published_params=6.05e9),
    # EleutherAI/gpt-neox-20b: model card 20,554,567,680 (Black et al. 2022: "20B").
    "gpt-neox-20b": _mha(44, 6144, 64, vocab=50432, max_positions=2048, **NEOX,
                         published_params=20.55e9),
    # facebook/opt-*: learned positions (2048 + 2 offset rows), ReLU 2-matrix FFN (counted as "gelu"),
    # tied. Sizes from the OPT paper (Zhang et al. 2022, Table 1).
    "opt-1.3b": _mha(24, 2048, 32, vocab=50272, max_positions=2048, **GPT, published_params=1.3e9),
    "opt-6.7b": _mha(32, 4096, 32, vocab=50272, max_positions=2048, **GPT, published_params=6.7e9),
    "opt-66b": _mha(64, 9216, 72, vocab=50272, max_positions=2048, **GPT, published_params=66e9),
    "opt-175b": _mha(96, 12288, 96, vocab=50272, max_positions=2048, **GPT, published_params=175e9),
    # bigscience/bloom (BigScience 2022): 70 layers, d=14336, 112 heads, vocab 250880, ALiBi, trained
    # at ctx 2048; published 176,247,271,424. bigscience/bloom-7b1: published 7,069,016,064.
    "bloom-176b": _mha(70, 14336, 112, vocab=250880, max_positions=2048, **BLOOM,
                       published_params=176.2e9),
    "bloom-7b1": _mha(30, 4096, 32, vocab=250880, max_positions=2048, **BLOOM,
                      published_params=7.07e9),
    # yandex/YaLM-100B (github README "100 billion parameters"; examples/generate_interactive.sh):
    # 80 layers, d=10240, 128 heads, GeGLU FFN of 27308 (3 matrices: counted as "swiglu"), rotary,
    # vocab 128000, ctx 1024. Its embedding is factorized (128000x2048, then 2048->10240); modelled here
    # as a full 128000x10240 tied table, which adds ~1% to the count.
    "yalm-100b": dict(n_layers=80, hidden=10240, n_heads=128, n_kv_heads=128, head_dim=80,
                      ffn_hidden=27308, ffn_kind="swiglu", norm="layernorm", positions="rotary",
                      vocab=128000, max_positions=1024, tied_embeddings=True, published_params=100e9),
    # openai-community/gpt2-xl: Radford et al. 2019, Table 2: 1542M.
    "gpt2-xl": _mha(48, 1600, 25, vocab=50257, max_positions=1024, **GPT, published_params=1.542e9),
    # EleutherAI/pythia-*: 1,414,647,808 and 6,857,302,016 total (Pythia README; Biderman et al. 2023).
    "pythia-1.4b": _mha(24, 2048, 16, vocab=50304, max_positions=2048, **NEOX,
                        published_params=1.41e9),
    "pythia-6.9b": _mha(32, 4096, 32, vocab=50432, max_positions=2048, **NEOX,
                        published_params=6.86e9),
    # tiiuae/falcon-7b: parallel block, multi-query (1 KV head), 71 heads of 64, rotary, tied;
    # published "7B" (model card).
    "falcon-7b": dict(n_layers=32, hidden=4544, n_heads=71, n_kv_heads=1, head_dim=64, ffn_hidden=18176,
                      vocab=65024, max_positions=2048, tied_embeddings=True, **NEOX, published_params=7e9),
    # meta-llama/Llama-3.1-*: model cards 8.03B, 70.6B, 405B.
    "llama-3.1-8b": dict(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, head_dim=128,
                         ffn_hidden=14336, vocab=128256, max_positions=131072, **LLAMA,
                         published_params=8.03e9),
    "llama-3.1-70b": dict(n_layers=80, hidden=8192, n_heads=64, n_kv_heads=8, head_dim=128,
                          ffn_hidden=28672, vocab=128256, max_positions=131072, **LLAMA,
                          published_params=70.6e9),
    "llama-3.1-405b": dict(n_layers=126, hidden=16384, n_heads=128, n_kv_heads=8, head_dim=128,
                           ffn_hidden=53248, vocab=128256, max_positions=131072, **LLAMA,
                           published_params=405e9),
    # meta-llama/Llama-3.2-1B / -3B: tied embeddings; model cards 1.23B and 3.21B.
    "llama-3.2-1b": dict(n_layers=16, hidden=2048, n_heads=32, n_kv_heads=8, head_dim=64,
                         ffn_hidden=8192, vocab=128256, max_positions=131072, tied_embeddings=True,
                         **LLAMA, published_params=1.23e9),
    "llama-3.2-3b": dict(n_layers=28, hidden=3072, n_heads=24, n_kv_heads=8, head_dim=128,
                         ffn_hidden=8192, vocab=128256, max_positions=131072, tied_embeddings=True,
                         **LLAMA, published_params=3.21e9),
    # mistralai/Mistral-7B-v0.1 (Jiang et al. 2023: 7.3B; sliding window 4096 not modelled).
    "mistral-7b": dict(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, head_dim=128,
                       ffn_hidden=14336, vocab=32000, max_positions=32768, **LLAMA,
                       published_params=7.3e9),
    # mistralai/Mixtral-8x7B-v0.1 (Mistral AI announcement: 46.7B total, 12.9B active) and
    # Mixtral-8x22B-v0.1 (Mistral AI announcement: 141B total, 39B active): 8 experts, top-2.
    "mixtral-8x7b": dict(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, head_dim=128,
                         ffn_hidden=0, n_experts=8, experts_per_token=2, expert_ffn_hidden=14336,
                         vocab=32000, max_positions=32768, **LLAMA, published_params=46.7e9),
    "mixtral-8x22b": dict(n_layers=56, hidden=6144, n_heads=48, n_kv_heads=8, head_dim=128,
                          ffn_hidden=0, n_experts=8, experts_per_token=2, expert_ffn_hidden=16384,
                          vocab=32000, max_positions=65536, **LLAMA, published_params=141e9),
    # Qwen/Qwen2.5-*: model cards 1.54B (tied), 7.61B, 72.7B. QKV biases not counted (<0.1%).
    "qwen2.5-1.5b": dict(n_layers=28, hidden=1536, n_heads=12, n_kv_heads=2, head_dim=128,
                         ffn_hidden=8960, vocab=151936, max_positions=131072, tied_embeddings=True,
                         **LLAMA, published_params=1.54e9),
    "qwen2.5-7b": dict(n_layers=28, hidden=3584, n_heads=28, n_kv_heads=4, head_dim=128,
                       ffn_hidden=18944, vocab=152064, max_positions=131072, **LLAMA,
                       published_params=7.61e9),
    "qwen2.5-72b": dict(n_layers=80, hidden=8192, n_heads=64, n_kv_heads=8, head_dim=128,
                        ffn_hidden=29568, vocab=152064, max_positions=131072, **LLAMA,
                        published_params=72.7e9),
    # Qwen/Qwen1.5-MoE-A2.7B: 60 routed experts of 1408, top-4, plus a shared expert of 5632 = 4 x 1408
    # (its sigmoid gate, hidden x 1, not counted); model card 14.3B total, 2.7B active.
    "qwen1.5-moe-a2.7b": dict(n_layers=24, hidden=2048, n_heads=16, n_kv_heads=16, head_dim=128,
                              ffn_hidden=0, n_experts=60, experts_per_token=4, expert_ffn_hidden=1408,
                              n_shared_experts=4, vocab=151936, max_positions=8192, **LLAMA,
                              published_params=14.3e9),
    # allenai/OLMoE-1B-7B-0924: 64 experts of 1024, top-8 (Muennighoff et al. 2024: 6.9B total, 1.3B
    # active; QK norms not counted).
    "olmoe-1b-7b": dict(n_layers=16, hidden=2048, n_heads=16, n_kv_heads=16, head_dim=128,
                        ffn_hidden=0, n_experts=64, experts_per_token=8, expert_ffn_hidden=1024,
                        vocab=50304, max_positions=4096, **LLAMA, published_params=6.9e9),
    # microsoft/Phi-3-mini-4k-instruct: model card 3.8B.
    "phi-3-mini": dict(n_layers=32, hidden=3072, n_heads=32, n_kv_heads=32, head_dim=96,
                       ffn_hidden=8192, vocab=32064, max_positions=4096, **LLAMA,
                       published_params=3.8e9),
    # google/gemma-2-9b: 16 heads of 256 (q_dim 4096 != hidden 3584), GeGLU (gated, 3 matrices: counted
    # as "swiglu"), tied; sliding window on alternate layers not modelled. Hugging Face page: 9.24B.
    "gemma-2-9b": dict(n_layers=42, hidden=3584, n_heads=16, n_kv_heads=8, head_dim=256,
                       ffn_hidden=14336, vocab=256000, max_positions=8192, tied_embeddings=True,
                       **LLAMA, published_params=9.24e9),
}

ALIASES: dict[str, str] = {
    "gpt3": "gpt3-davinci-175b", "davinci": "gpt3-davinci-175b", "gpt-3": "gpt3-davinci-175b",
    "tnlg": "mt-nlg-530b", "tnlgv2": "mt-nlg-530b", "mt-nlg": "mt-nlg-530b",
    "j1-large": "j1-large-7.5b", "j1-grande": "j1-grande-17b", "j1-jumbo": "j1-jumbo-178b",
    "anthropic-lm": "anthropic-lm-52b", "cohere-xlarge": "cohere-xl-52b",
    "bloom": "bloom-176b", "yalm": "yalm-100b", "gpt-neox": "gpt-neox-20b",
}

ARCHS: dict[str, ArchSpec] = {name: ArchSpec(name=name, **cfg) for name, cfg in _CONFIGS.items()}


def list_archs() -> list[str]:
    """Catalog names, in catalog order."""
    return list(ARCHS)


def get_arch(name: str) -> ArchSpec:
    """The catalog entry for `name` (case-insensitive; aliases such as "tnlg" accepted)."""
    return lookup(name, ARCHS, ALIASES, "model",
                  "'idealrt models' lists them (or pass a Hugging Face config.json with --config)")
