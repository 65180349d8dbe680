"""CPU tests of the reference engine's building blocks: logits against the plain reference for every
family, TP sharding arithmetic, a 2-process gloo tensor-parallel forward, buckets, row summaries."""
from __future__ import annotations

import pytest
import torch

from calibration.engine import tp
from calibration.engine.hf_eager import hf_config_kwargs
from calibration.engine.reference import reference_logits
from calibration.engine.runner import BUCKETS, Engine, bucket_for, cache_rows
from calibration.query_timing import RunTimes, summarize
from simulator.arch import ArchSpec
from simulator.catalog import get_arch
from simulator.errors import UserError

BASE = dict(n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, head_dim=16, ffn_hidden=96, vocab=101,
            max_positions=64)
TINY = {  # tiny stand-ins of each family (fake sizes, real structure)
    "llama": dict(BASE, ffn_kind="swiglu", norm="rmsnorm"),
    "opt": dict(BASE, n_kv_heads=4, ffn_kind="gelu", positions="learned"),
    "falcon": dict(BASE, n_kv_heads=1, ffn_kind="gelu", parallel_block=True),
    "bloom": dict(BASE, ffn_kind="gelu", positions="alibi", tied_embeddings=True),
    "moe": dict(BASE, ffn_kind="swiglu", norm="rmsnorm", ffn_hidden=0, n_experts=8, experts_per_token=2,
                expert_ffn_hidden=32, n_shared_experts=1),
}


def tiny(name: str, **changes) -> ArchSpec:
    return ArchSpec(name=name, **{**TINY[name], **changes})


def run_engine(engine: Engine, prompt: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, steps+1, V) of prefill then each decode step, the token sequence they were read from)."""
    engine.prepare(prompt.shape[0], prompt.shape[1] + steps + 1)
    outs, seq = [engine.prefill(prompt).clone()], [prompt]
    for _ in range(steps):
        seq.append(engine.tokens.clone()[:, None])
        outs.append(engine.step().clone())
    return torch.stack(outs, 1), torch.cat(seq, 1)


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("b,p", [(1, 5), (3, 7), (40, 4)])  # MoE: gathered, graph-safe and synced buckets
def test_engine_matches_reference(family: str, b: int, p: int) -> None:
    arch = tiny(family)
    engine = Engine(arch, "torch", device="cpu", dtype=torch.float32, seed=3)
    prompt = torch.randint(0, arch.vocab, (b, p), generator=torch.Generator().manual_seed(b))
    got, seq = run_engine(engine, prompt, steps=4)
    assert got.shape == (b, 5, arch.vocab)
    ref = reference_logits(arch, engine.model.state_dict(), seq)[:, p - 1:]
    assert float((got - ref).norm() / ref.norm()) < 1e-5


def test_weights_are_finite_and_scaled() -> None:
    engine = Engine(tiny("llama", n_layers=8), "torch", device="cpu", dtype=torch.bfloat16)
    logits, _ = run_engine(engine, torch.randint(0, 101, (2, 9)), steps=2)
    assert torch.isfinite(logits).all() and 0.1 < float(logits.float().std()) < 10


def test_local_shape_splits_heads_ffn_and_vocab() -> None:
    llama = get_arch("llama-3.1-8b")
    sh = tp.local_shape(llama, 4, 3)
    assert (sh.n_heads, sh.n_kv_heads, sh.ffn_hidden, sh.kv_head_start) == (8, 2, 3584, 6)
    assert sh.vocab * 4 >= llama.vocab > (sh.vocab - 1) * 4
    mqa = tiny("falcon")  # 4 query heads, 1 KV head: replicated on both ranks
    assert [tp.local_shape(mqa, 2, r).kv_head_start for r in (0, 1)] == [0, 0]
    gqa = tiny("llama", n_heads=8, n_kv_heads=2)  # t=4 > 2 KV heads: ranks 0,1 read head 0; 2,3 head 1
    assert [tp.local_shape(gqa, 4, r).kv_head_start for r in range(4)] == [0, 0, 1, 1]
    moe = tp.local_shape(tiny("moe"), 2)
    assert (moe.expert_ffn_hidden, moe.shared_ffn_hidden, moe.ffn_hidden) == (16, 16, 0)
    with pytest.raises(UserError, match="n_heads=71"):
        tp.local_shape(get_arch("falcon-7b"), 2)


@pytest.mark.parametrize("family", ["llama", "moe", "opt"])
def test_shards_reassemble_the_full_weights(family: str) -> None:
    arch = tiny(family, vocab=103)  # a vocabulary that does not split evenly: padded rows
    full = Engine(arch, "torch", device="cpu", dtype=torch.float32).model.state_dict()
    shards = [tp.shard_state_dict(full, arch, tp.local_shape(arch, 2, r)) for r in (0, 1)]
    d, (hq, hkv) = arch.head_dim, (2, arch.n_kv_heads // 2)
    wqkv = [s["layers.0.wqkv"] for s in shards]
    assert torch.equal(torch.cat([w[:hq * d] for w in wqkv]), full["layers.0.wqkv"][:arch.q_dim])
    assert torch.equal(torch.cat([w[hq * d:(hq + hkv) * d] for w in wqkv]),
                       full["layers.0.wqkv"][arch.q_dim:arch.q_dim + arch.kv_dim])
    assert torch.equal(torch.cat([s["layers.0.wo"] for s in shards], 1), full["layers.0.wo"])
    assert torch.equal(torch.cat([s["layers.0.mlp.w2"] for s in shards], -1), full["layers.0.mlp.w2"])
    assert full["lm_head"].shape[0] == 128 and all(s["lm_head"].shape[0] == 64 for s in shards)  # 64-row padding
    assert torch.equal(torch.cat([s["lm_head"] for s in shards])[:103], full["lm_head"][:103])
    if arch.ffn_kind == "swiglu":  # gate rows of each rank, then its up rows
        up = [s["layers.0.mlp.w_up"] for s in shards]
        f = up[0].shape[-2] // 2
        assert torch.equal(torch.cat([u[..., :f, :] for u in up], -2), full["layers.0.mlp.w_up"].chunk(2, -2)[0])


def _tp_worker(rank: int, arch: ArchSpec, init_file: str, out: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    full = Engine(arch, "torch", device="cpu", dtype=torch.float32, seed=5)
    engine = Engine(arch, "torch", 2, rank, dist.group.WORLD, device="cpu", dtype=torch.float32, init=False)
    engine.model.load_state_dict(tp.shard_state_dict(full.model.state_dict(), arch, engine.shape))
    prompt = torch.randint(0, arch.vocab, (2, 6), generator=torch.Generator().manual_seed(1))
    got, _ = run_engine(engine, prompt, steps=3)
    want, _ = run_engine(full, prompt, steps=3)
    out[rank] = float((got - want).norm() / want.norm())
    dist.destroy_process_group()


@pytest.mark.parametrize("family", ["llama", "falcon", "moe"])
def test_tensor_parallel_forward_equals_single_rank(family: str, tmp_path) -> None:
    import torch.multiprocessing as mp

    out = mp.Manager().dict()
    mp.spawn(_tp_worker, args=(tiny(family, vocab=103), str(tmp_path / "pg"), out), nprocs=2)
    assert max(out.values()) < 1e-5


def test_buckets_cover_context_and_cap_at_cache() -> None:
    for c in (1, 255, 256, 257, 1000, 8193):
        assert c <= bucket_for(c, 10**6) <= max(256, 1.5 * c)
        assert bucket_for(c, 300) <= 300
    assert cache_rows(8193) == 12288 and cache_rows(BUCKETS[-1] + 1) == BUCKETS[-1] + 1


def test_summarize_medians_and_spread() -> None:
    res = summarize([RunTimes(0.1, 1.0), RunTimes(0.3, 2.0), RunTimes(0.2, 1.5)], o=11)
    assert res["decode_steps"] == 10 and res["prefill_s"] == 0.2 and res["decode_s"] == 1.5
    assert res["total_s"] == pytest.approx(1.7) and res["decode_step_s"] == pytest.approx(0.15)
    assert res["spread"]["total_s_min"] == pytest.approx(1.1) and res["spread"]["total_s_max"] == pytest.approx(2.3)
    assert summarize([RunTimes(0.1, 0.0)], o=1)["decode_step_s"] == 0.0


def test_hf_config_mapping() -> None:
    name, kw = hf_config_kwargs(get_arch("llama-3.1-8b"))
    assert name == "LlamaConfig" and kw["num_key_value_heads"] == 8 and kw["intermediate_size"] == 14336
    assert hf_config_kwargs(get_arch("opt-6.7b"))[0] == "OPTConfig"
    assert hf_config_kwargs(get_arch("gpt-j-6b"))[0] == "GPTNeoXConfig"
    with pytest.raises(UserError, match="dense"):
        hf_config_kwargs(get_arch("olmoe-1b-7b"))


def test_unknown_backend_is_a_user_error() -> None:
    from calibration.engine.backends import get_backend

    with pytest.raises(UserError, match="backend 'cuda'"):
        get_backend("cuda")
