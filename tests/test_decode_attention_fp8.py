"""FP8-KV kernels (kernels/decode_attention_fp8.py) in Triton's CPU interpreter against their torch references, and
the fp8_kv engine variant against the fp8 one."""
from __future__ import annotations

import pytest
import torch

from calibration.engine_variants import fp8, fp8_kv
from kernels.decode_attention_fp8 import (
    decode_attention_fp8,
    decode_attention_fp8_ref,
    rope_write_fp8,
    rope_write_fp8_ref,
)
from tests.test_engine import tiny
from tests.test_engine_fused import logits_in_lockstep


def only_interpreter_rounding(got, want, exact) -> bool:
    """Whether FP8 codes equal the reference's except where Triton's interpreter rounds its own way (ties away
    from zero; a rounding up into the next binade not carried; e4m3's smallest subnormal, 2^-9, flushed to zero),
    at under 10% of them (the GPU checks equality)."""
    tie = (got - exact).abs() == (want - exact).abs()
    carry = (want.abs() == 2.0 ** torch.log2(want.abs()).round()) & (got == want / 2)
    flush = (got == 0) & (want.abs() <= 2.0 ** -9)
    differ = got != want
    return not (differ & ~(tie | carry | flush)).any() and float(differ.float().mean()) < 0.1


def _rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("b,hq,hkv,s,d,lengths", [
    (2, 8, 2, 300, 64, [300, 17]),     # GQA 4, one ragged and one short sequence
    (1, 4, 4, 40, 32, [1]),            # MHA, a single cached token
    (3, 6, 1, 129, 16, [129, 64, 2]),  # MQA, a key block boundary
])
def test_decode_attention_fp8_matches_reference(b, hq, hkv, s, d, lengths) -> None:
    g = torch.Generator().manual_seed(s + d)
    q = torch.randn(b, hq, d, generator=g).to(torch.bfloat16)
    kc, vc = ((torch.randn(b, hkv, s, d, generator=g) * 4).to(torch.float8_e4m3fn) for _ in range(2))
    n = torch.tensor(lengths, dtype=torch.int32)
    out = decode_attention_fp8(q, kc, vc, n, 0.5, 0.25)
    assert out.shape == (b, hq, d) and out.dtype == torch.bfloat16
    ref = decode_attention_fp8_ref(q, kc, vc, n, 0.5, 0.25)
    assert _rel(out, ref) < 1e-2
    # the scales are applied: the same codes read at other scales give another output
    assert _rel(decode_attention_fp8(q, kc, vc, n, 0.5, 0.5), ref) > 0.5


def test_decode_attention_fp8_refuses_a_bf16_cache() -> None:
    q = torch.zeros(1, 2, 16, dtype=torch.bfloat16)
    cache = torch.zeros(1, 2, 8, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        decode_attention_fp8(q, cache, cache, torch.ones(1, dtype=torch.int32), 1.0, 1.0)


@pytest.mark.parametrize("rope", [True, False])
def test_rope_write_fp8_matches_reference(rope: bool) -> None:
    g = torch.Generator().manual_seed(5)
    b, s, hq, hkv, d = 2, 5, 4, 2, 16
    qkv = torch.randn(b, s, hq + 2 * hkv, d, generator=g).to(torch.bfloat16)
    cos, sin = ((torch.randn(s, d, generator=g).to(torch.bfloat16) for _ in range(2)) if rope else (None, None))
    caches = [torch.zeros(b, hkv, 12, d, dtype=torch.float8_e4m3fn) for _ in range(4)]
    q, k16, v16 = rope_write_fp8(qkv, cos, sin, caches[0], caches[1], 0.5, 0.25)
    qr, kr, vr = rope_write_fp8_ref(qkv, cos, sin, caches[2], caches[3], 0.5, 0.25)
    assert _rel(q, qr) < 1e-2 and _rel(k16, kr) < 1e-2 and _rel(v16, vr) < 1e-2 and k16.shape == (b, hkv, s, d)
    for got, want, full, scale in ((caches[0], caches[2], kr, 0.5), (caches[1], caches[3], vr, 0.25)):
        assert only_interpreter_rounding(got[:, :, :s].float(), want[:, :, :s].float(), full.float() / scale)
        assert not got[:, :, s:].float().any()
    pos = torch.tensor([7])
    step = qkv[:, :1].contiguous()
    q1, k1, v1 = rope_write_fp8(step, None if cos is None else cos[:1], None if sin is None else sin[:1],
                                caches[0], caches[1], 0.5, 0.25, pos)
    assert k1 is None and v1 is None and caches[0][:, :, 7].float().any() and not caches[0][:, :, 8:].float().any()


def test_fp8_kv_engine_caches_in_fp8_and_follows_the_fp8_engine() -> None:
    arch = tiny("llama")
    prompt = torch.randint(0, arch.vocab, (2, 5), generator=torch.Generator().manual_seed(1))
    engines = [fp8.make_engine(arch, device="cpu", seed=3), fp8_kv.make_engine(arch, device="cpu", seed=3)]
    ref, got = logits_in_lockstep(engines, prompt, steps=3)
    assert engines[1].model.layers[0].cache.k.dtype == torch.float8_e4m3fn
    assert engines[0].model.layers[0].cache.k.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(got, ref, dim=-1).min() > 0.98 and _rel(got, ref) > 1e-3
    assert fp8_kv.served_arch(arch).precision.kv == "fp8" and fp8_kv.served_arch(arch).precision.weights == "fp8"
