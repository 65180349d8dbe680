"""kernels.gemm in Triton's CPU interpreter against a float64 torch reference: dtypes, layouts, edges."""
import pytest
import torch

from kernels.configs import GemmConfig, gemm_config
from kernels.gemm import matmul, matmul_ref

# relative Frobenius error allowed, by operand dtype (the output is rounded to it)
TOL = {torch.bfloat16: 1.5e-2, torch.float16: 2e-3}
SMALL = GemmConfig(16, 32, 16, group_m=2)          # small tiles so small shapes span several


def _weights(n, k, layout, dtype, gen):
    w = torch.randn(n, k, generator=gen).to(dtype)
    return w if layout == "nk" else w.t().contiguous()           # "kn": (K, N)


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["nk", "kn"])
@pytest.mark.parametrize("m,n,k,cfg", [
    (1, 37, 50, None),                 # decode row, table config, ragged N and K
    (19, 45, 70, SMALL),               # no size a multiple of any block, several tiles and groups
    (64, 64, 64, SMALL),               # even sizes: the unmasked K loop
    (5, 40, 300, GemmConfig(16, 16, 32, split_k=4)),   # split-K with a ragged last slice
    (70, 48, 72, GemmConfig(32, 32, 32, group_m=2, tma=True)),   # TMA descriptors, ragged M and K
    (9, 40, 36, GemmConfig(16, 16, 32, tma=True)),     # K*2 bytes not 16-aligned: pointer fallback
])
def test_matmul_matches_reference(dtype, layout, m, n, k, cfg):
    gen = torch.Generator().manual_seed(m * 1000 + n + k)
    a = torch.randn(m, k, generator=gen).to(dtype)
    w = _weights(n, k, layout, dtype, gen)
    out = matmul(a, w, w_layout=layout, config=cfg)
    assert out.shape == (m, n) and out.dtype == dtype
    assert torch.isfinite(out).all()       # poison: a fresh torch.empty output holds garbage/NaN
    assert _rel_err(out, matmul_ref(a, w, layout)) < TOL[dtype]


def test_every_output_written(monkeypatch):
    """Output memory is poisoned with NaN before the launch; every element must be overwritten."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(33, 40, generator=gen).half()
    w = torch.randn(50, 40, generator=gen).half()
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *s, **kw: real_empty(*s, **kw).fill_(float("nan")))
    out = matmul(a, w, config=SMALL)
    monkeypatch.undo()
    assert not torch.isnan(out).any()
    assert _rel_err(out, matmul_ref(a, w)) < TOL[torch.float16]


def test_strided_activation():
    """A non-contiguous A (a column slice) is read through its strides."""
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(20, 96, generator=gen).half()[:, 10:74]
    w = torch.randn(24, 64, generator=gen).half()
    assert _rel_err(matmul(a, w, config=SMALL), matmul_ref(a, w)) < TOL[torch.float16]


def test_config_buckets():
    """Large M takes the TMA tiles; small M narrows, then splits K, only when tiles leave SMs idle."""
    assert gemm_config(8192, 8192, 8192).tma
    for n, k in [(4096, 4096), (1280, 8192), (256, 8192), (28672, 4096)]:
        cfg = gemm_config(1, n, k, sm_count=132)
        tiles = -(-n // cfg.block_n)
        assert cfg.block_m == 16
        assert cfg.block_n == 64 or tiles < 132 / 3 * 2        # narrowed only when few tiles
        assert cfg.split_k == 1 or tiles * cfg.split_k // 2 < 132 / 4
    assert gemm_config(1, 28672, 4096).split_k == 1
    assert gemm_config(1, 256, 8192).split_k > 1               # 8 tiles: K is split
    assert gemm_config(200, 4096, 4096).block_m >= 64


@pytest.mark.parametrize("kwargs,fix", [
    (dict(a=(4, 8), w=(6, 9)), "inner sizes"),
    (dict(a=(4, 8), w=(6, 8), layout="nn"), "w_layout"),
    (dict(a=(4, 8), w=(6, 8), dtype=torch.float32), "dtypes"),
])
def test_bad_input_names_the_field(kwargs, fix):
    dtype = kwargs.get("dtype", torch.float16)
    a = torch.randn(*kwargs["a"]).to(dtype)
    w = torch.randn(*kwargs["w"]).to(dtype)
    with pytest.raises(ValueError, match=fix):
        matmul(a, w, w_layout=kwargs.get("layout", "nk"))
