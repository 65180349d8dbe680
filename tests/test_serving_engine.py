"""The continuous-batching engine variant on the CPU: the per-slot rotary + KV write (Triton interpreter and torch
ops) against its float64 reference, slot decoding against the static engine, and the wall-clock driver."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from calibration.engine.runner import Engine
from calibration.engine_variants.serving import max_token_gap, serve
from calibration.engine_variants.slot_engine import SlotEngine, slot_bucket
from kernels.rope_slots import rope_slots, rope_slots_ref, rope_slots_torch
from tests.test_engine import tiny

TOL = {torch.bfloat16: 1e-2, torch.float32: 1e-5}  # relative Frobenius error, by dtype


def _rel(out, ref) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm())


@pytest.mark.parametrize("impl", [rope_slots, rope_slots_torch])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("rope,hq,hkv,d", [(True, 4, 2, 16), (True, 3, 1, 24), (False, 2, 2, 32)])
def test_rope_slots_matches_reference(impl, dtype, rope, hq, hkv, d) -> None:
    gen = torch.Generator().manual_seed(hq * d)
    t, b, s_max = 5, 3, 12
    qkv = torch.randn(t, hq + 2 * hkv, d, generator=gen).to(dtype)
    cos, sin = (torch.randn(s_max, d, generator=gen).to(dtype) for _ in range(2)) if rope else (None, None)
    slot = torch.tensor([2, 0, 2, 1, 0])
    pos = torch.tensor([0, 7, 1, 11, 3])
    caches = [torch.zeros(b, hkv, s_max, d, dtype=dtype) for _ in range(4)]
    ref = rope_slots_ref(qkv, cos, sin, caches[2], caches[3], slot, pos)
    out = qkv.clone()
    impl(out, cos, sin, caches[0], caches[1], slot, pos)
    assert _rel(out, ref) < TOL[dtype]
    assert _rel(caches[0], caches[2]) < TOL[dtype] and _rel(caches[1], caches[3]) < TOL[dtype]
    assert caches[0][1, :, 0].abs().sum() == 0 and caches[0][1, :, 11].abs().sum() > 0  # only (slot, pos) rows


def test_rope_slots_broadcast_slot() -> None:
    """A prefill passes one slot expanded over its tokens (stride 0)."""
    qkv = torch.randn(4, 4, 16)
    caches = [torch.zeros(3, 1, 8, 16) for _ in range(4)]
    cos, sin = torch.randn(8, 16), torch.randn(8, 16)
    rope_slots(qkv.clone(), cos, sin, caches[0], caches[1], torch.tensor([1]).expand(4), torch.arange(4))
    rope_slots_ref(qkv, cos, sin, caches[2], caches[3], torch.tensor([1, 1, 1, 1]), torch.arange(4))
    assert _rel(caches[0], caches[2]) < 1e-5 and caches[0][0].abs().sum() == 0


def test_rope_slots_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="rope_slots"):
        rope_slots(torch.randn(3, 4, 16), None, None, torch.zeros(2, 2, 8, 16), torch.zeros(2, 2, 8, 16),
                   torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def _static(arch, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Logits (B, steps + 1, V) of the static engine: prefill then decode steps."""
    engine = Engine(arch, "torch", device="cpu", dtype=torch.float32, seed=3)
    engine.prepare(prompt.shape[0], prompt.shape[1] + steps + 1)
    outs = [engine.prefill(prompt).clone()]
    outs += [engine.step().clone() for _ in range(steps)]
    return torch.stack(outs, 1)


@pytest.mark.parametrize("family", ["llama", "opt", "falcon"])
def test_slots_equal_static_engine_for_same_length_prompts(family: str) -> None:
    arch = tiny(family)
    prompt = torch.randint(0, arch.vocab, (3, 6), generator=torch.Generator().manual_seed(1))
    ref = _static(arch, prompt, steps=4)
    eng = SlotEngine(arch, 4, 16, backend="torch", device="cpu", dtype=torch.float32, seed=3)
    outs = [torch.cat([eng.prefill(s, prompt[s]).clone() for s in range(3)])]
    for i in range(4):
        outs.append(eng.decode([6 + i] * 3)[:3].clone())
    got = torch.stack(outs, 1)
    assert _rel(got, ref) < 1e-5


def test_slot_at_its_own_length_equals_static_engine() -> None:
    """Slot 1 decodes beside slots at other lengths (and a free slot 0) as the static engine at batch 1."""
    arch = tiny("llama")
    gen = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, arch.vocab, (1, 5), generator=gen)
    ref = _static(arch, prompt, steps=3)[0]
    eng = SlotEngine(arch, 4, 20, backend="torch", device="cpu", dtype=torch.float32, seed=3)
    eng.prefill(2, torch.randint(0, arch.vocab, (9,), generator=gen))
    eng.prefill(3, torch.randint(0, arch.vocab, (2,), generator=gen))
    outs = [eng.prefill(1, prompt[0])[0].clone()]
    for i in range(3):
        outs.append(eng.decode([0, 5 + i, 9 + i, 2 + i])[1].clone())
    assert _rel(torch.stack(outs), ref) < 1e-5


def test_slot_buckets() -> None:
    assert [slot_bucket(n, 32) for n in (1, 3, 9, 17, 32)] == [1, 4, 12, 24, 32]
    assert slot_bucket(20, 20) == 20


def test_driver_serves_every_request_in_order() -> None:
    arch = tiny("llama")
    eng = SlotEngine(arch, 2, 24, backend="torch", device="cpu", dtype=torch.float32)
    arrival = np.array([0.0, 0.0, 0.0, 0.05])
    prompt, output = np.array([4, 6, 3, 5]), np.array([3, 1, 4, 2])
    res = serve(eng, arrival, prompt, output, max_batch=2)
    assert np.all(np.isfinite(res["finish_s"]))
    assert np.all(res["start_s"] >= arrival) and np.all(res["first_token_s"] > res["start_s"])
    assert np.all(res["finish_s"] >= res["first_token_s"])
    assert res["finish_s"][1] == res["first_token_s"][1]  # one output token: done at its prefill
    it = res["iterations"]
    # prefill-one: requests 0 and 1 are prefilled first (two slots), then request 2 enters when 1 ends
    assert it["kind"][:3] == [4, 6, 3]
    decodes = sum(-k for k in it["kind"] if k < 0)
    assert decodes == int((output - 1).sum())
    assert res["start_s"][2] >= res["finish_s"][1]


def test_max_token_gap_from_the_iteration_log() -> None:
    decode_end = np.array([1.0, 1.5, 3.5, 4.0])
    gap = max_token_gap(np.array([0.5, 1.2, 2.0]), np.array([4.0, 1.5, 2.0]), decode_end)
    np.testing.assert_allclose(gap[:2], [2.0, 0.3])  # tokens at 0.5, 1, 1.5, 3.5, 4; at 1.2, 1.5
    assert np.isnan(gap[2])  # one token
