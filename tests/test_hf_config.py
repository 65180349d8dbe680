"""config.json loader: one published config per family must give the catalog's spec; every error path
names its key in one line."""
import dataclasses
import json

import pytest

from simulator.catalog import get_arch
from simulator.errors import UserError
from simulator.hf_config import load_config

# The size-defining keys of each model's config.json as published on Hugging Face.
LLAMA_31_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 128256,
               "max_position_embeddings": 131072, "tie_word_embeddings": False, "hidden_act": "silu"}
PUBLISHED = {
    "llama-3.1-8b": LLAMA_31_8B,
    "llama-3.2-1b": {**LLAMA_31_8B, "hidden_size": 2048, "num_hidden_layers": 16, "head_dim": 64,
                     "intermediate_size": 8192, "tie_word_embeddings": True},
    "mistral-7b": {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                   "vocab_size": 32000, "max_position_embeddings": 32768,
                   "sliding_window": None},  # v0.1 publishes 4096, refused (not modelled); null as in v0.2
    "mixtral-8x7b": {"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                     "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
                     "max_position_embeddings": 32768},
    "qwen2.5-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "intermediate_size": 8960,
                     "vocab_size": 151936, "max_position_embeddings": 131072, "tie_word_embeddings": True},
    "qwen1.5-moe-a2.7b": {"model_type": "qwen2_moe", "hidden_size": 2048, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 5632,
                          "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
                          "num_experts": 60, "num_experts_per_tok": 4, "decoder_sparse_step": 1,
                          "mlp_only_layers": [], "vocab_size": 151936, "max_position_embeddings": 8192,
                          "tie_word_embeddings": False},
    "olmoe-1b-7b": {"model_type": "olmoe", "hidden_size": 2048, "num_hidden_layers": 16,
                    "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 1024,
                    "num_experts": 64, "num_experts_per_tok": 8, "vocab_size": 50304,
                    "max_position_embeddings": 4096},
    "phi-3-mini": {"model_type": "phi3", "hidden_size": 3072, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 8192,
                   "vocab_size": 32064, "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "gemma-2-9b": {"model_type": "gemma2", "hidden_size": 3584, "num_hidden_layers": 42,
                   "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
                   "intermediate_size": 14336, "vocab_size": 256000, "max_position_embeddings": 8192},
    "gpt2-xl": {"model_type": "gpt2", "n_embd": 1600, "n_layer": 48, "n_head": 25, "n_inner": None,
                "n_positions": 1024, "vocab_size": 50257},
    "gpt-j-6b": {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "n_positions": 2048,
                 "rotary_dim": 64, "vocab_size": 50400, "tie_word_embeddings": False},
    "pythia-1.4b": {"model_type": "gpt_neox", "hidden_size": 2048, "num_hidden_layers": 24,
                    "num_attention_heads": 16, "intermediate_size": 8192, "vocab_size": 50304,
                    "max_position_embeddings": 2048, "rotary_pct": 0.25, "use_parallel_residual": True,
                    "tie_word_embeddings": False},
    "opt-1.3b": {"model_type": "opt", "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32,
                 "ffn_dim": 8192, "word_embed_proj_dim": 2048, "vocab_size": 50272,
                 "max_position_embeddings": 2048, "activation_function": "relu"},
    "bloom-7b1": {"model_type": "bloom", "hidden_size": 4096, "n_layer": 30, "n_head": 32,
                  "vocab_size": 250880},
    "falcon-7b": {"model_type": "falcon", "hidden_size": 4544, "num_hidden_layers": 32,
                  "num_attention_heads": 71, "multi_query": True, "parallel_attn": True, "alibi": False,
                  "new_decoder_architecture": False, "vocab_size": 65024},
}


def _write(tmp_path, cfg, folder="model"):
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("catalog_name", list(PUBLISHED))
def test_published_config_gives_the_catalog_spec(tmp_path, catalog_name):
    spec = load_config(_write(tmp_path, PUBLISHED[catalog_name]), name=catalog_name)
    expected = dataclasses.replace(get_arch(catalog_name), published_params=0.0)
    assert spec == expected


def test_family_specific_mappings(tmp_path):
    falcon40 = load_config({"model_type": "falcon", "hidden_size": 8192, "num_hidden_layers": 60,
                            "num_attention_heads": 128, "num_kv_heads": 8, "new_decoder_architecture": True,
                            "parallel_attn": False, "vocab_size": 65024})
    assert (falcon40.n_kv_heads, falcon40.parallel_block, falcon40.max_positions) == (8, True, 2048)
    sequential_alibi = load_config({**PUBLISHED["falcon-7b"], "parallel_attn": False, "alibi": True,
                                    "multi_query": False})
    assert (sequential_alibi.parallel_block, sequential_alibi.positions, sequential_alibi.n_kv_heads) == (
        False, "alibi", 71)
    neox_seq = load_config({**PUBLISHED["pythia-1.4b"], "use_parallel_residual": False})
    assert not neox_seq.parallel_block
    gpt2 = load_config({**PUBLISHED["gpt2-xl"], "n_inner": 5000})
    assert gpt2.ffn_hidden == 5000 and gpt2.tied_embeddings
    bloom = load_config({**PUBLISHED["bloom-7b1"], "seq_length": 4096, "hidden_size": None, "n_embed": 1024,
                         "n_head": 16})
    assert (bloom.hidden, bloom.head_dim, bloom.max_positions, bloom.ffn_hidden) == (1024, 64, 4096, 4096)
    gemma_default_tied = load_config(PUBLISHED["gemma-2-9b"])
    assert gemma_default_tied.tied_embeddings


def test_name_comes_from_argument_name_or_path_folder_or_type(tmp_path):
    path = _write(tmp_path, LLAMA_31_8B, folder="Llama-3.1-8B")
    assert load_config(path).name == "llama-3.1-8b"
    assert load_config(path.parent).name == "llama-3.1-8b"  # a model folder works too
    assert load_config(f"{path.parent}/").name == "llama-3.1-8b"
    hub_named = {**LLAMA_31_8B, "_name_or_path": "meta-llama/Meta-Llama-3-8B"}
    assert load_config(hub_named).name == "meta-llama-3-8b"
    assert load_config(LLAMA_31_8B).name == "llama"
    assert load_config(path, name="mine").name == "mine"
    other = tmp_path / "Llama-3.1-8B" / "mixtral.json"  # not config.json: the file names the model
    other.write_text(json.dumps(LLAMA_31_8B))
    assert load_config(other).name == "mixtral"


GEMMA2 = PUBLISHED["gemma-2-9b"]


@pytest.mark.parametrize("extra,message", [
    ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
     "'quantization_config.quant_method' is 'bitsandbytes'"),
    ({"sliding_window": 4096}, "'sliding_window'=4096"),
    ({"sliding_window": 512}, "'sliding_window'=512"),
    ({"sliding_window": "big"}, "'sliding_window' must be"),
    ({"torch_dtype": "int8"}, "'torch_dtype' is 'int8'"),
])
def test_unmodelled_fields_are_refused_by_name(tmp_path, extra, message):
    path = _write(tmp_path, {**GEMMA2, **extra})
    with pytest.raises(UserError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_weights_dtype_and_unused_window_are_read(tmp_path):
    assert load_config({**LLAMA_31_8B, "torch_dtype": "float32"}).bytes_per_weight == 4.0
    assert load_config({**LLAMA_31_8B, "torch_dtype": "bfloat16"}).bytes_per_weight == 2.0
    assert load_config({**LLAMA_31_8B, "dtype": "float16"}).bytes_per_weight == 2.0
    qwen = {**PUBLISHED["qwen2.5-1.5b"], "sliding_window": 4096, "use_sliding_window": False}
    assert load_config(qwen).max_positions == 131072  # a window that is off is no window
    assert load_config({**GEMMA2, "sliding_window": 8192}).max_positions == 8192  # never reached: full attention


BAD = [
    ({"model_type": "t5", "d_model": 512}, "model_type 't5' is not supported"),
    ({"hidden_size": 4096}, "no 'model_type' key"),
    ({**LLAMA_31_8B, "model_type": ["llama"]}, "is not supported"),
    ({**PUBLISHED["gemma-2-9b"], "head_dim": None}, "missing key 'head_dim'"),
    ({**LLAMA_31_8B, "hidden_size": None}, "missing key 'hidden_size'"),
    ({**LLAMA_31_8B, "num_key_value_heads": 3}, "'num_key_value_heads'=3 does not divide"),
    ({**LLAMA_31_8B, "head_dim": None, "hidden_size": 4000, "num_attention_heads": 48}, "not divisible"),
    ({**LLAMA_31_8B, "vocab_size": 0}, "'vocab_size' must be a positive integer"),
    ({**LLAMA_31_8B, "num_hidden_layers": -2}, "'num_hidden_layers' must be a positive integer"),
    ({**LLAMA_31_8B, "intermediate_size": "14336"}, "'intermediate_size' must be a positive integer"),
    ({**LLAMA_31_8B, "num_hidden_layers": True}, "'num_hidden_layers' must be a positive integer"),
    ({**LLAMA_31_8B, "tie_word_embeddings": "yes"}, "'tie_word_embeddings' must be true or false"),
    ({**PUBLISHED["gpt2-xl"], "n_embd": 1601}, "not divisible by 'n_head'=25"),
    ({**PUBLISHED["pythia-1.4b"], "head_dim": 100}, "'head_dim'=100 contradicts"),
    ({**PUBLISHED["gpt2-xl"], "n_positions": None}, "missing key 'n_positions'"),
    ({**PUBLISHED["mixtral-8x7b"], "num_experts_per_tok": 9}, "'num_experts_per_tok'=9 exceeds"),
    ({**PUBLISHED["mixtral-8x7b"], "num_local_experts": None}, "missing key 'num_local_experts'"),
    ({**PUBLISHED["qwen1.5-moe-a2.7b"], "shared_expert_intermediate_size": 5000}, "not a multiple"),
    ({**PUBLISHED["qwen1.5-moe-a2.7b"], "mlp_only_layers": [0]}, "mixed dense/MoE"),
    ({**PUBLISHED["opt-1.3b"], "word_embed_proj_dim": 512}, "'word_embed_proj_dim'"),
    ({**PUBLISHED["falcon-7b"], "new_decoder_architecture": True, "num_kv_heads": 5}, "'num_kv_heads'=5"),
    ({**PUBLISHED["bloom-7b1"], "hidden_size": None}, r"missing key 'hidden_size' \(or 'n_embed'\)"),
]


@pytest.mark.parametrize("cfg,message", BAD)
def test_bad_config_is_a_one_line_error_naming_the_key(tmp_path, cfg, message):
    path = _write(tmp_path, cfg)
    with pytest.raises(UserError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("content,message", [("{not json", "is not valid JSON"),
                                             ("[1, 2]", "expected a JSON object"),
                                             (b"\xff\xfe\x00", "is not valid JSON")])
def test_unreadable_or_invalid_json_is_one_line(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot read config file") as err:
        load_config(tmp_path / "nope" / "config.json")
    assert "\n" not in str(err.value)
