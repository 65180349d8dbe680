"""Decode attention (kernels/decode_attention.py) in Triton's CPU interpreter against a float64 reference:
every merge mode, merge-block sizes, GQA, ragged lengths, one split, and the split-count rule."""
import pytest
import torch

from kernels.configs import DecodeConfig, decode_attention_config, decode_num_splits
from kernels.decode_attention import _merge_block, decode_attention, decode_attention_ref

TOL = {torch.bfloat16: 1.5e-2, torch.float16: 2e-3}   # relative Frobenius error, by dtype
FUSED = DecodeConfig(block_n=16, num_stages=2)         # small tiles: several blocks at small sizes
TWO_PASS = DecodeConfig(block_n=16, num_stages=2, merge="two_pass")


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def _inputs(seed, dtype, b, hq, hkv, s_max, d):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*s, generator=gen).to(dtype) for s in ((b, hq, d), (b, hkv, s_max, d), (b, hkv, s_max, d)))
    return q, k, v


def _check(monkeypatch, q, k, v, lens, **kw):
    """Run with torch.empty poisoned (NaN), so an unwritten output or partial shows; compare to float64."""
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *s, **a: real_empty(*s, **a).fill_(float("nan")))
    out = decode_attention(q, k, v, lens, **kw)
    monkeypatch.undo()
    assert out.shape == q.shape and out.dtype == q.dtype and not torch.isnan(out).any()
    assert _rel_err(out, decode_attention_ref(q, k, v, lens, scale=kw.get("scale"))) < TOL[q.dtype]
    return out


@pytest.mark.parametrize("cfg", [FUSED, TWO_PASS], ids=["fused", "two_pass"])
@pytest.mark.parametrize("merge_block", [1, 2, 32])
@pytest.mark.parametrize("b,hq,hkv,s_max,d,lengths,splits,dtype", [
    (3, 6, 2, 70, 64, [1, 37, 70], 5, torch.bfloat16),   # GQA 3 (padded group), one token, empty chunks
    (2, 3, 3, 50, 80, [50, 9], 3, torch.float16),        # MHA, head dim 80; 9 tokens < one split
])
def test_decode_merges_match_reference(monkeypatch, cfg, merge_block, b, hq, hkv, s_max, d, lengths, splits, dtype):
    q, k, v = _inputs(s_max * 10 + d, dtype, b, hq, hkv, s_max, d)
    cfg = DecodeConfig(**{**cfg.__dict__, "merge_block": merge_block})
    _check(monkeypatch, q, k, v, torch.tensor(lengths, dtype=torch.int32), config=cfg, num_splits=splits)


@pytest.mark.parametrize("b,hq,hkv,s_max,d,lengths,kw", [
    (2, 8, 2, 40, 96, [40, 3], dict(config=FUSED, num_splits=1)),       # one split: writes o itself
    (2, 4, 1, 20, 128, [20, 1], dict(config=TWO_PASS, num_splits=2)),   # 4 heads per KV head
    (1, 8, 2, 300, 64, [300], dict(config=DecodeConfig(block_n=32, min_chunk=32, programs_per_sm=1))),
    (1, 2, 1, 70, 256, [61], dict(num_splits=2, scale=0.2)),           # head dim 256: the table's narrow config
])
def test_decode_shapes_and_split_choices(monkeypatch, b, hq, hkv, s_max, d, lengths, kw):
    q, k, v = _inputs(s_max + d, torch.float16, b, hq, hkv, s_max, d)
    _check(monkeypatch, q, k, v, torch.tensor(lengths, dtype=torch.int32), **kw)


def test_decode_table_default_is_fused_with_one_round_merge():
    """The shipped config merges in the split kernel and loads a batch-1 8k cache's 16 splits at once."""
    cfg = decode_attention_config(128)
    splits, _ = decode_num_splits(1, 8, 8192, 132, cfg)
    assert cfg.merge == "fused" and splits == 16 and _merge_block(cfg, splits, 4, 128, cfg.num_warps) == 16
    assert _merge_block(cfg, 100, 8, 256, 4) == 4                          # clamped to fit registers
    assert _merge_block(DecodeConfig(merge_block=1), 16, 4, 128, 4) == 1   # run 3's serial merge


def test_decode_ignores_cache_past_length():
    """Garbage (inf) after each sequence's length must not reach the output, in either merge."""
    q, k, v = _inputs(4, torch.float16, 2, 2, 1, 48, 64)
    lens = torch.tensor([30, 7], dtype=torch.int32)
    ref = decode_attention_ref(q, k, v, lens)
    k[0, :, 30:], v[1, :, 7:] = float("inf"), float("inf")
    for cfg in (FUSED, TWO_PASS):
        assert _rel_err(decode_attention(q, k, v, lens, config=cfg, num_splits=3), ref) < TOL[torch.float16]


def test_decode_counters_reset_for_replay():
    """The merging program resets its arrival counter: a second launch (a graph replay) is right too."""
    from kernels import decode_attention as mod

    q, k, v = _inputs(5, torch.float16, 2, 4, 2, 40, 64)
    lens = torch.tensor([40, 13], dtype=torch.int32)
    first = decode_attention(q, k, v, lens, config=FUSED, num_splits=3)
    assert int(mod._counters(q.device, 4).abs().sum()) == 0
    second = decode_attention(q, k, v, lens, config=FUSED, num_splits=3)
    assert torch.equal(first, second)
    assert _rel_err(second, decode_attention_ref(q, k, v, lens)) < TOL[torch.float16]


def test_decode_splits_fixed_by_capacity():
    """Splits depend on (B, Hkv, S_max) only, cover S_max in whole key blocks, and grow for batch 1."""
    cfg = DecodeConfig(block_n=64)
    splits, chunk = decode_num_splits(1, 8, 32768, 132, cfg)
    assert splits * chunk >= 32768 and chunk % 64 == 0 and splits > 1
    assert decode_num_splits(64, 8, 256, 132, cfg)[0] == 1                  # one min chunk
    more = DecodeConfig(programs_per_sm=4, min_chunk=128)
    assert decode_num_splits(1, 8, 8192, 132, more) == (64, 128)           # 4 per SM, 128-key chunks


def test_decode_bad_input_is_a_user_error():
    q, k = torch.randn(2, 4, 64).half(), torch.randn(2, 2, 8, 64).half()
    with pytest.raises(ValueError, match="int32"):
        decode_attention(q, k, k.clone(), torch.tensor([8, 8]))
    with pytest.raises(ValueError, match="config.merge"):
        decode_attention(q, k, k.clone(), torch.tensor([8, 8], dtype=torch.int32), config=DecodeConfig(merge="x"))


def test_decode_config_fits_hopper_shared_memory_for_catalog_head_dims():
    """K and V tiles of every pipeline stage fit the H100's 227 KB per block for each catalog head dim
    (GPT-J's 256 once needed 268 KB under the 128-key config, and failed at launch on the GPU)."""
    import triton
    from simulator.catalog import ARCHS

    for d in sorted({a.head_dim for a in ARCHS.values()}):
        cfg = decode_attention_config(d)
        # K and V tiles in (num_stages - 1) buffers, bf16: 128 KB of the 139 KB the GPU reported at d=128
        tiles = 2 * cfg.block_n * triton.next_power_of_2(d) * 2 * (cfg.num_stages - 1)
        assert tiles + 32 * 1024 <= 232448, (d, cfg)
