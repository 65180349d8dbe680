"""FP8 and 4-bit weight-only GEMMs in Triton's CPU interpreter against float64 torch references."""
import pytest
import torch

from kernels.gemm_fp8 import Fp8Config, matmul_fp8, matmul_fp8_ref, quantize_fp8
from kernels.gemm_int4 import Int4Config, dequantize_int4, matmul_int4, matmul_int4_ref, quantize_int4


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("rowwise", [False, True])
@pytest.mark.parametrize("m,n,k,cfg", [
    (1, 40, 64, Fp8Config(16, 16, 32, group_m=1)),               # decode row, ragged N
    (19, 45, 96, Fp8Config(16, 32, 32, group_m=2)),              # ragged M, N, several groups
    (5, 32, 200, Fp8Config(16, 16, 32, split_k=4)),              # split-K, ragged last slice
    (70, 48, 64, Fp8Config(32, 16, 32, group_m=2, tma=True)),    # TMA descriptors, ragged M
    (1, 45, 96, Fp8Config(1, 16, 32, gemv=True)),                # one-row GEMV, ragged N
    (1, 40, 200, Fp8Config(1, 16, 32, split_k=4, gemv=True)),    # GEMV split-K, ragged last slice
])
def test_fp8_matches_reference(rowwise, m, n, k, cfg):
    gen = torch.Generator().manual_seed(m + n + k)
    a, sa = quantize_fp8(torch.randn(m, k, generator=gen), rowwise)
    w, sw = quantize_fp8(torch.randn(n, k, generator=gen), rowwise)
    out = matmul_fp8(a, w, sa, sw, config=cfg)
    assert out.shape == (m, n) and out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert _rel_err(out, matmul_fp8_ref(a, w, sa, sw)) < 1e-2


def test_fp8_quantization_error_is_that_of_e4m3():
    """Against the unquantized product, per-row FP8 keeps the relative error at e4m3's few percent."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 128, generator=gen), torch.randn(24, 128, generator=gen)
    (a, sa), (w, sw) = quantize_fp8(x, True), quantize_fp8(y, True)
    err = _rel_err(matmul_fp8(a, w, sa, sw, config=Fp8Config(16, 16, 32)), x.double() @ y.double().t())
    assert 1e-3 < err < 6e-2


def test_fp8_rejects_bad_scales_and_dtypes():
    a, sa = quantize_fp8(torch.randn(4, 32))
    with pytest.raises(ValueError, match="scale_w"):
        matmul_fp8(a, a, sa, torch.ones(3))
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        matmul_fp8(a.float(), a, sa, sa)


def test_int4_pack_round_trip():
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(6, 64, generator=gen)
    q, s = quantize_int4(w, group=32)
    assert q.shape == (6, 32) and q.dtype == torch.uint8 and s.shape == (6, 2)
    deq = dequantize_int4(q, s)
    assert (deq - w).abs().max() <= s.max() / 2 + 1e-6      # round to the nearest of 16 levels


@pytest.mark.parametrize("m,n,k,group,cfg", [
    (1, 40, 64, 32, Int4Config(16, 16, 32, group_m=1)),            # decode row, ragged N
    (19, 48, 128, 64, Int4Config(16, 32, 32, group_m=2)),           # several K blocks per group
    (3, 32, 256, 32, Int4Config(16, 16, 32, split_k=4)),            # split-K
])
def test_int4_matches_reference(m, n, k, group, cfg):
    gen = torch.Generator().manual_seed(m * 7 + k)
    a = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    q, s = quantize_int4(torch.randn(n, k, generator=gen), group)
    out = matmul_int4(a, q, s, config=cfg)
    assert out.shape == (m, n) and torch.isfinite(out).all()
    assert _rel_err(out, matmul_int4_ref(a, q, s)) < 1.5e-2


@pytest.mark.parametrize("cfg", [Fp8Config(16, 16, 32, split_k=4), Fp8Config(1, 16, 32, split_k=4, gemv=True)])
def test_fp8_split_k_counters_are_left_zero_for_the_next_call(cfg):
    """The last split of a tile sums the partials and zeroes its arrival counter: a second call (another
    shape, the same workspace) gives its own product, not one mixed with the first."""
    gen = torch.Generator().manual_seed(11)
    for n in (40, 24):
        a, sa = quantize_fp8(torch.randn(1, 256, generator=gen))
        w, sw = quantize_fp8(torch.randn(n, 256, generator=gen))
        assert _rel_err(matmul_fp8(a, w, sa, sw, config=cfg), matmul_fp8_ref(a, w, sa, sw)) < 1e-2
