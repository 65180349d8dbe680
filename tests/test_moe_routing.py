"""kernels.routing.router_topk against router_topk_ref in Triton's CPU interpreter; the engine's MoE layers
(routing, grouped experts) against calibration.engine.reference; the MoE tile sweep (benchmarks/check_moe.py) on
the CPU."""
from __future__ import annotations

import pytest
import torch

from kernels import routing as routing_mod
from kernels.moe import moe_ffn
from kernels.routing import router_topk, router_topk_ref

# router_topk's weights, relative to router_topk_ref's: fp32 rounding, or one ulp of a 16-bit output
TOL_ROUTER = {torch.float32: 1e-6, torch.bfloat16: 2 ** -7, torch.float16: 2 ** -10}


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def _same_routing(logits, k, renormalize, out_dtype=None):
    """router_topk against router_topk_ref: weights within TOL_ROUTER of the output dtype; each pick has the
    probability of the reference's pick in that slot (so the ids are equal except among exact ties)."""
    w, idx = router_topk(logits, k, renormalize, out_dtype)
    ref_w, ref_idx = router_topk_ref(logits, k, renormalize, out_dtype)
    assert w.dtype == ref_w.dtype and idx.dtype == torch.int32 and w.shape == idx.shape == (logits.shape[0], k)
    torch.testing.assert_close(w.float(), ref_w.float(), rtol=TOL_ROUTER[w.dtype], atol=1e-7)
    p = torch.softmax(logits.float(), -1)  # (T, E)
    assert torch.equal(p.gather(1, idx.long()), p.gather(1, ref_idx))
    assert all(len(set(row)) == k for row in idx.tolist())  # k distinct experts a token
    return w, idx, ref_idx


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("t", [1, 3, 40])
@pytest.mark.parametrize("e", [8, 60, 64])
@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_router_topk_matches_reference(dtype, t, e, k):
    logits = torch.randn(t, e, generator=torch.Generator().manual_seed(t * e + k)).to(dtype)
    for renormalize in (True, False):
        _, idx, ref_idx = _same_routing(logits, k, renormalize)
        if dtype == torch.float32:  # no ties among random fp32 logits: the same ids
            assert torch.equal(idx.long(), ref_idx)


def test_router_topk_ties_strides_and_edges():
    """Ties go lowest index first; -inf logits are picked after the finite ones, each once; a strided view,
    256 experts, fp16 logits, an fp32 output of bf16 logits, no tokens."""
    w, idx = router_topk(torch.zeros(2, 8), 3)
    assert idx.tolist() == [[0, 1, 2]] * 2 and torch.allclose(w, torch.full((2, 3), 1 / 3))
    logits = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf"), 1.0, float("-inf")]])
    w, idx = router_topk(logits, 4, renormalize=False)
    assert idx.tolist() == [[2, 4, 0, 1]] and w[0, 3] == 0
    gen = torch.Generator().manual_seed(0)
    _same_routing(torch.randn(64, 40, generator=gen)[::3, 5:], 4, True)  # (22, 35), row stride 40
    _same_routing(torch.randn(40, 8, generator=gen).t(), 2, True)  # (8, 40), column stride 8
    _same_routing(torch.randn(20, 256, generator=gen), 8, True)
    _same_routing(torch.randn(20, 64, generator=gen).half(), 6, False)
    _same_routing(torch.randn(20, 64, generator=gen).bfloat16(), 8, True, out_dtype=torch.float32)
    w, idx = router_topk(torch.randn(0, 8), 2)
    assert w.shape == idx.shape == (0, 2)


def test_router_topk_bad_input_is_a_user_error():
    cases = [
        (lambda: router_topk(torch.randn(4, 8, 2), 2), "pass \\(T, E\\)"),
        (lambda: router_topk(torch.randn(4, 8).double(), 2), "float64"),
        (lambda: router_topk(torch.randn(4, 300), 2), "E=300"),
        (lambda: router_topk(torch.randn(4, 8), 9), "k=9"),
        (lambda: router_topk(torch.randn(4, 8), 0), "k=0"),
        (lambda: router_topk(torch.randn(4, 8), 2, out_dtype=torch.int32), "out_dtype"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_engine_routes_with_router_topk(monkeypatch):
    """The triton stack's MoE layer routes through Backend.router_topk: one call per layer and step."""
    from calibration.engine.runner import Engine
    from tests.test_engine import run_engine, tiny

    calls = []

    def counted(logits, k, renormalize=True, out_dtype=None):
        calls.append((tuple(logits.shape), k, out_dtype))
        return router_topk(logits, k, renormalize, out_dtype)
    monkeypatch.setattr(routing_mod, "router_topk", counted)
    arch = tiny("moe")
    engine = Engine(arch, "triton", device="cpu", dtype=torch.float16, seed=3)
    run_engine(engine, torch.zeros(1, 4, dtype=torch.long), steps=1)
    moe_layers = sum(getattr(layer.mlp, "e", None) is not None for layer in engine.model.layers)
    assert moe_layers and len(calls) == 2 * moe_layers  # prefill and one step
    assert calls[0] == ((4, arch.n_experts), arch.experts_per_token, torch.float16)


@pytest.mark.parametrize("b,p", [(1, 5), (3, 7)])  # decode at batch 1 (3 T k <= E before: gathered), prefill
def test_engine_grouped_moe_matches_reference(b, p):
    """The triton stack's MoE layers on the grouped path, fp16, against the float32 reference forward."""
    from calibration.engine.reference import reference_logits
    from calibration.engine.runner import Engine
    from tests.test_engine import run_engine, tiny

    arch = tiny("moe")
    engine = Engine(arch, "triton", device="cpu", dtype=torch.float16, seed=3)
    assert engine.model.layers[0].mlp.be.moe is moe_ffn and engine.model.layers[0].mlp.be.router_topk is router_topk
    prompt = torch.randint(0, arch.vocab, (b, p), generator=torch.Generator().manual_seed(b))
    got, seq = run_engine(engine, prompt, steps=3)
    ref = reference_logits(arch, engine.model.state_dict(), seq)[:, p - 1:]
    assert _rel_err(got.float(), ref.double()) < 5e-3  # fp16 activations; float32 reference


def test_check_moe_sweep_runs_on_the_cpu(tmp_path, monkeypatch):
    """`python3 -m benchmarks.check_moe --sweep --cpu` on one tiny model: every variant checked and timed, a bad one
    (block_m 24: not a power of two) reported and skipped, moe_ffn's pieces at T = 1, tidy JSON rows."""
    import json

    from calibration import moe_bench, moe_sweep

    monkeypatch.setattr(moe_sweep, "CPU_MODELS", {"tiny": dict(e=8, k=4, h=64, f=32)})
    monkeypatch.setattr(moe_sweep, "CPU_TOKENS", (1, 40))  # T*k/E = 0.5: decode only; 20: both families
    monkeypatch.setattr(moe_sweep, "CPU_VARIANTS", {"decode": ((16, 32, 32, 4, 3), (24, 32, 32, 4, 3)),
                                              "prefill": ((32, 32, 16, 4, 3),)})
    out = tmp_path / "sweep.json"
    assert moe_bench.main(["--sweep", "--cpu", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["sweep"]
    assert [(r["t"], r["family"], r["config"]["block_m"], r["default"]) for r in rows] == [
        (1, "decode", 16, True), (1, "decode", 16, False), (1, "decode", 24, False),
        (40, "decode", 16, True), (40, "decode", 16, False), (40, "decode", 24, False), (40, "prefill", 32, False)]
    bad = [r for r in rows if r["config"]["block_m"] == 24]
    assert all(not r["ok"] and "power of two" in r["error"] for r in bad)
    assert all(r["ok"] and r["rel_err"] < moe_sweep.TOL and r["time_us"] > 0 for r in rows if r not in bad)
    assert [p["part"] for p in data["pieces"]] == ["align", "align_ref", "up", "act", "down", "combine", "moe_ffn"]
    assert [(b["t"], b["default_us"] is not None) for b in data["best"]] == [(1, True), (40, True)]
    assert "provenance" in data
