"""Prefill and decode attention kernels in Triton's CPU interpreter against float64 torch references."""
import pytest
import torch

from kernels.configs import AttentionConfig, decode_num_splits
from kernels.decode_attention import decode_attention, decode_attention_ref
from kernels.prefill_attention import prefill_attention, prefill_attention_ref
from simulator.errors import UserError

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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,hq,hkv,s_max,d,lengths,splits", [
    (3, 4, 2, 70, 64, [1, 37, 70], 3),     # one-token sequence, ragged lengths, empty chunks
    (2, 8, 2, 50, 80, [50, 23], None),     # head dim 80, the table's split count
    (1, 3, 3, 40, 96, [33], 5),            # no grouping (MHA), head dim 96
    (2, 4, 1, 20, 128, [20, 1], 2),        # 4 heads per KV head
])
def test_decode_matches_reference(monkeypatch, dtype, b, hq, hkv, s_max, d, lengths, splits):
    gen = torch.Generator().manual_seed(s_max * 10 + d)
    q = _randn(gen, dtype, b, hq, d)
    k, v = _randn(gen, dtype, b, hkv, s_max, d), _randn(gen, dtype, b, hkv, s_max, d)
    lens = torch.tensor(lengths, dtype=torch.int32)
    _poison_empty(monkeypatch)
    out = decode_attention(q, k, v, lens, config=SMALL, num_splits=splits)
    monkeypatch.undo()
    assert out.shape == q.shape and out.dtype == dtype and not torch.isnan(out).any()
    assert _rel_err(out, decode_attention_ref(q, k, v, lens)) < TOL[dtype]


def test_decode_ignores_cache_past_length():
    """Garbage (inf) after each sequence's length must not reach the output."""
    gen = torch.Generator().manual_seed(4)
    q = _randn(gen, torch.float16, 2, 2, 64)
    k, v = _randn(gen, torch.float16, 2, 1, 48, 64), _randn(gen, torch.float16, 2, 1, 48, 64)
    lens = torch.tensor([30, 7], dtype=torch.int32)
    ref = decode_attention_ref(q, k, v, lens)
    k[0, :, 30:], v[1, :, 7:] = float("inf"), float("inf")
    out = decode_attention(q, k, v, lens, config=SMALL, num_splits=3)
    assert _rel_err(out, ref) < TOL[torch.float16]


def test_decode_counters_reset_for_replay():
    """The merging program resets its arrival counter: a second launch (a graph replay) is right too."""
    from kernels import decode_attention as mod

    gen = torch.Generator().manual_seed(5)
    q = _randn(gen, torch.float16, 2, 4, 64)
    k, v = _randn(gen, torch.float16, 2, 2, 40, 64), _randn(gen, torch.float16, 2, 2, 40, 64)
    lens = torch.tensor([40, 13], dtype=torch.int32)
    first = decode_attention(q, k, v, lens, config=SMALL, num_splits=3)
    assert int(mod._counters(q.device, 4).abs().sum()) == 0
    second = decode_attention(q, k, v, lens, config=SMALL, num_splits=3)
    assert torch.equal(first, second)
    assert _rel_err(second, decode_attention_ref(q, k, v, lens)) < TOL[torch.float16]


def test_decode_splits_fixed_by_capacity():
    """Splits depend on (B, Hkv, S_max) only, cover S_max in whole key blocks, and grow for batch 1."""
    splits, chunk = decode_num_splits(1, 8, 32768, sm_count=132, block_n=64)
    assert splits * chunk >= 32768 and chunk % 64 == 0 and splits > 1
    assert decode_num_splits(64, 8, 256, sm_count=132, block_n=64)[0] == 1   # one min chunk


@pytest.mark.parametrize("shapes,fix", [
    (((1, 6, 8, 64), (1, 4, 8, 64)), "multiple of KV heads"),
    (((1, 4, 8, 64), (1, 2, 4, 64)), "keys 4 < queries 8"),
    (((1, 4, 8, 64), (1, 2, 8, 32)), "head dim"),
])
def test_prefill_bad_input_names_the_field(shapes, fix):
    q, k = torch.randn(*shapes[0]).half(), torch.randn(*shapes[1]).half()
    with pytest.raises(UserError, match=fix):
        prefill_attention(q, k, k.clone())


def test_decode_bad_lengths():
    q, k = torch.randn(2, 4, 64).half(), torch.randn(2, 2, 8, 64).half()
    with pytest.raises(UserError, match="int32"):
        decode_attention(q, k, k.clone(), torch.tensor([8, 8]))


def test_decode_config_fits_hopper_shared_memory_for_catalog_head_dims():
    """K and V tiles of every pipeline stage fit the H100's 227 KB per block for each catalog head dim
    (GPT-J's 256 once needed 268 KB under the 128-key config, and failed at launch on the GPU)."""
    import triton
    from kernels.configs import decode_attention_config
    from simulator.catalog import ARCHS

    for d in sorted({a.head_dim for a in ARCHS.values()}):
        cfg = decode_attention_config(d)
        # K and V tiles in (num_stages - 1) buffers, bf16: 128 KB of the 139 KB the GPU reported at d=128
        tiles = 2 * cfg.block_n * triton.next_power_of_2(d) * 2 * (cfg.num_stages - 1)
        assert tiles + 32 * 1024 <= 232448, (d, cfg)
