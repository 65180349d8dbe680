"""Prefill attention kernel in Triton's CPU interpreter against a float64 torch reference
(decode attention: tests/test_decode_attention.py)."""
import pytest
import torch

from kernels.configs import AttentionConfig
from kernels.prefill_attention import prefill_attention, prefill_attention_ref

TOL = {torch.bfloat16: 1.5e-2, torch.float16: 2e-3}   # relative Frobenius error, by dtype
SMALL = AttentionConfig(16, 16)                        # small tiles: several blocks at small sizes
DTYPES = [torch.bfloat16, torch.float16]


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def _poison_empty(monkeypatch):
    """Make torch.empty return NaN-filled memory, so an unwritten output element shows."""
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *s, **kw: real_empty(*s, **kw).fill_(float("nan")))
    monkeypatch.setattr(torch, "empty_like", lambda x, **kw: real_empty(x.shape, dtype=x.dtype).fill_(float("nan")))


def _randn(gen, dtype, *shape):
    return torch.randn(*shape, generator=gen).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,hq,hkv,s_q,s_k,d,causal", [
    (2, 4, 2, 37, 37, 64, True),       # GQA, ragged sequence, causal
    (1, 3, 1, 20, 45, 80, True),       # head dim 80 (padded block), KV prefix of 25
    (1, 2, 2, 33, 33, 96, False),      # head dim 96, non-causal
    (1, 4, 1, 17, 17, 128, True),      # 4 query heads per KV head
    (1, 2, 1, 5, 40, 64, False),       # prefix, non-causal
])
def test_prefill_matches_reference(monkeypatch, dtype, b, hq, hkv, s_q, s_k, d, causal):
    gen = torch.Generator().manual_seed(s_q * 100 + d)
    q, k, v = _randn(gen, dtype, b, hq, s_q, d), _randn(gen, dtype, b, hkv, s_k, d), _randn(gen, dtype, b, hkv, s_k, d)
    _poison_empty(monkeypatch)
    out = prefill_attention(q, k, v, causal=causal, config=SMALL)
    monkeypatch.undo()
    assert out.shape == q.shape and out.dtype == dtype and not torch.isnan(out).any()
    assert _rel_err(out, prefill_attention_ref(q, k, v, causal=causal)) < TOL[dtype]


def test_prefill_table_config_and_strided_input():
    """The head-dim table's config (larger blocks than the sequence) and q as a transposed view."""
    gen = torch.Generator().manual_seed(3)
    q = _randn(gen, torch.float16, 1, 9, 4, 64).transpose(1, 2)          # (1, 4, 9, 64), strided
    k, v = _randn(gen, torch.float16, 1, 2, 9, 64), _randn(gen, torch.float16, 1, 2, 9, 64)
    out = prefill_attention(q, k, v, causal=True, scale=0.3)
    assert _rel_err(out, prefill_attention_ref(q, k, v, causal=True, scale=0.3)) < TOL[torch.float16]


@pytest.mark.parametrize("shapes,fix", [
    (((1, 6, 8, 64), (1, 4, 8, 64)), "multiple of KV heads"),
    (((1, 4, 8, 64), (1, 2, 4, 64)), "keys 4 < queries 8"),
    (((1, 4, 8, 64), (1, 2, 8, 32)), "head dim"),
])
def test_prefill_bad_input_names_the_field(shapes, fix):
    q, k = torch.randn(*shapes[0]).half(), torch.randn(*shapes[1]).half()
    with pytest.raises(ValueError, match=fix):
        prefill_attention(q, k, k.clone())
