"""The engine's fused kernels (kernels/fused.py) in Triton's CPU interpreter against float64 torch references."""
import pytest
import torch

from kernels.fused import act, act_ref, add_norm, add_norm_ref, rope_write, rope_write_ref

TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-5}  # relative Frobenius error, by dtype
DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def _randn(gen, dtype, *shape):
    return torch.randn(*shape, generator=gen).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t,h,with_y,rms", [(3, 100, True, True), (5, 77, True, False), (2, 64, False, True),
                                            (1, 130, False, False)])
def test_add_norm_matches_reference(dtype, t, h, with_y, rms):
    gen = torch.Generator().manual_seed(t * h)
    x = _randn(gen, dtype, t, 2 * h)[:, :h]  # row-strided view, as the last prompt rows are
    y = _randn(gen, dtype, t, h) if with_y else None
    w = 1 + 0.1 * _randn(gen, dtype, h)
    b = None if rms else 0.1 * _randn(gen, dtype, h)
    res, out = add_norm(x, y, w, b)
    ref_res, ref_out = add_norm_ref(x, y, w, b)
    assert res.dtype == out.dtype == dtype and out.shape == (t, h)
    assert _rel_err(res, ref_res) < TOL[dtype] and _rel_err(out, ref_out) < TOL[dtype]
    if y is None:
        assert res is x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,s,hq,hkv,d,rotary,decode", [
    (2, 3, 4, 2, 16, True, False),   # GQA prefill from position 0
    (3, 1, 3, 1, 80, True, True),    # MQA decode, head dim 80 (padded block)
    (1, 1, 2, 2, 24, False, True),   # no rotary: only k, v written
    (2, 5, 2, 1, 32, False, False),
])
def test_rope_write_matches_reference(dtype, b, s, hq, hkv, d, rotary, decode):
    gen = torch.Generator().manual_seed(b * 100 + d)
    s_max, p0 = 11, (6 if decode else 0)
    qkv = _randn(gen, dtype, b, s, hq + 2 * hkv, d)
    ang = _randn(gen, torch.float32, s, d // 2)
    cos, sin = (torch.cat([ang.cos(), ang.cos()], -1).to(dtype), torch.cat([-ang.sin(), ang.sin()], -1).to(dtype))
    cos, sin = (cos, sin) if rotary else (None, None)
    pos = torch.tensor([p0]) if decode else None
    kc, vc = torch.full((b, hkv, s_max, d), 7.0, dtype=dtype), torch.full((b, hkv, s_max, d), 7.0, dtype=dtype)
    kr, vr = kc.clone(), vc.clone()
    q = rope_write(qkv, cos, sin, kc, vc, pos)
    q_ref = rope_write_ref(qkv, cos, sin, kr, vr, pos)
    assert q.shape == (b, s, hq, d) and _rel_err(q, q_ref) < TOL[dtype]
    assert _rel_err(kc, kr.double()) < TOL[dtype] and _rel_err(vc, vr.double()) < TOL[dtype]
    assert (kc[:, :, :p0] == 7).all() and (vc[:, :, p0 + s:] == 7).all()  # other rows untouched


def test_rope_write_rejects_bad_shapes():
    with pytest.raises(ValueError, match="rope_write"):
        rope_write(torch.zeros(1, 1, 3, 16), None, None, torch.zeros(1, 2, 4, 16), torch.zeros(1, 2, 4, 16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,shape", [("swiglu", (3, 2 * 700)), ("gelu", (5, 333)), ("swiglu", (2, 3, 2 * 37)),
                                        ("gelu", (1, 1030))])
def test_act_matches_reference(dtype, kind, shape):
    up = 2 * _randn(torch.Generator().manual_seed(shape[-1]), dtype, *shape)
    out = act(up, kind)
    assert out.shape == act_ref(up, kind).shape and _rel_err(out, act_ref(up, kind)) < TOL[dtype]


def test_act_rejects_unknown_kind():
    with pytest.raises(ValueError, match="relu"):
        act(torch.zeros(2, 4), "relu")
