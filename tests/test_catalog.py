"""Architecture catalog: every entry's parameter count against its published size, lookup, key shapes."""
import pytest

from simulator.catalog import ARCHS, get_arch, list_archs
from simulator.errors import UserError

STUDY = ("gpt3-davinci-175b", "j1-large-7.5b", "j1-grande-17b", "j1-jumbo-178b", "anthropic-lm-52b",
         "cohere-xl-52b", "mt-nlg-530b", "gpt-j-6b", "gpt-neox-20b", "opt-66b", "opt-175b", "bloom-176b",
         "yalm-100b")
OPEN = ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "mistral-7b",
        "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-1.5b", "qwen2.5-7b", "qwen2.5-72b", "qwen1.5-moe-a2.7b",
        "olmoe-1b-7b", "gpt2-xl", "pythia-1.4b", "pythia-6.9b", "opt-1.3b", "opt-6.7b", "bloom-7b1",
        "falcon-7b", "phi-3-mini", "gemma-2-9b")


def test_catalog_holds_the_study_and_open_models():
    assert set(STUDY + OPEN) <= set(list_archs())
    assert all(name == spec.name == name.lower() for name, spec in ARCHS.items())


@pytest.mark.parametrize("name", list(ARCHS))
def test_param_count_within_2_percent_of_published(name):
    arch = ARCHS[name]
    assert arch.published_params > 0
    assert arch.param_count() == pytest.approx(arch.published_params, rel=0.02)


@pytest.mark.parametrize("name,active", [("mixtral-8x7b", 12.9e9), ("mixtral-8x22b", 39e9),
                                         ("qwen1.5-moe-a2.7b", 2.7e9), ("olmoe-1b-7b", 1.3e9)])
def test_moe_active_params_match_published(name, active):
    # Published active sizes: Mistral AI announcements (12.9B, 39B), Qwen model card, OLMoE paper.
    assert get_arch(name).param_count(active=True) == pytest.approx(active, rel=0.02)


def test_study_models_use_the_published_shapes():
    gpt3 = get_arch("gpt3-davinci-175b")
    assert (gpt3.n_layers, gpt3.hidden, gpt3.n_heads, gpt3.vocab, gpt3.max_positions) == (
        96, 12288, 96, 50257, 2048)
    jumbo = get_arch("j1-jumbo-178b")
    assert (jumbo.n_layers, jumbo.hidden, jumbo.n_heads, jumbo.vocab) == (76, 13824, 96, 256000)
    tnlg = get_arch("tnlg")
    assert (tnlg.name, tnlg.n_layers, tnlg.hidden, tnlg.n_heads) == ("mt-nlg-530b", 105, 20480, 128)
    bloom = get_arch("bloom-176b")
    assert (bloom.n_layers, bloom.hidden, bloom.n_heads, bloom.vocab, bloom.positions) == (
        70, 14336, 112, 250880, "alibi")
    yalm = get_arch("yalm-100b")
    assert (yalm.n_layers, yalm.hidden, yalm.n_heads) == (80, 10240, 128)
    assert get_arch("anthropic-lm-52b").n_layers == 64 and get_arch("anthropic-lm-52b").hidden == 8192


def test_open_models_features():
    falcon = get_arch("falcon-7b")
    assert falcon.parallel_block and falcon.n_kv_heads == 1
    assert get_arch("llama-3.1-70b").n_kv_heads == 8 and not get_arch("llama-3.1-70b").tied_embeddings
    assert get_arch("qwen1.5-moe-a2.7b").n_shared_experts == 4
    gemma = get_arch("gemma-2-9b")
    assert gemma.q_dim == 4096 != gemma.hidden
    assert get_arch("gpt2-xl").positions == "learned"


def test_get_arch_is_case_insensitive_and_suggests_near_names():
    assert get_arch("  Llama-3.1-8B ").name == "llama-3.1-8b"
    with pytest.raises(UserError, match="unknown model 'llama-3-8b'.*did you mean.*llama-3.1-8b"):
        get_arch("llama-3-8b")
    with pytest.raises(UserError, match="idealrt models"):
        get_arch("qqqqqqqqqqqq")
