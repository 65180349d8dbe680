"""kernels.moe in Triton's CPU interpreter: moe_align's invariants and launches (both paths) against
moe_align_ref, grouped_matmul against a float64 torch reference in both modes and independent of the order
within an expert, moe_ffn against the loop-over-experts reference, bad input (routing and the engine's MoE
layers: tests/test_moe_routing.py)."""
from __future__ import annotations

import pytest
import torch

from kernels import fused
from kernels import moe as moe_mod
from kernels.configs import MOE_CONFIGS, MoeConfig, moe_config
from kernels.moe import grouped_matmul, moe_align, moe_align_ref, moe_ffn, moe_ffn_ref, padded_rows

# relative Frobenius error allowed, by dtype: grouped_matmul rounds once (its output); moe_ffn three times
# (up projection, activation, output) and sums k rounded rows
TOL_GEMM = {torch.bfloat16: 1.5e-2, torch.float16: 2e-3}
TOL_FFN = {torch.bfloat16: 3e-2, torch.float16: 4e-3}
SMALL = MoeConfig(16, 16, 16)  # small tiles so small shapes span several N and K tiles
E = 8


def _rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def _route(gen, t, k, e=E, dtype=torch.bfloat16):
    """Routing weights (renormalised top-k of a softmax) and expert ids, both (T, k)."""
    w, idx = torch.softmax(torch.randn(t, e, generator=gen), -1).topk(k)
    return (w / w.sum(-1, keepdim=True)).to(dtype), idx


def _no_host_sync(monkeypatch):
    """Make every tensor -> Python conversion raise: what would sync the host on a GPU."""
    def boom(*_a, **_kw):
        raise AssertionError("host sync")
    for name in ("item", "tolist", "__bool__", "__int__", "__index__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, boom)


def _poison_empty(monkeypatch):
    """torch.empty fills floats with NaN and integers with 12345: what is not written shows."""
    real_empty = torch.empty

    def empty(*size, **kw):
        out = real_empty(*size, **kw)
        return out.fill_(float("nan") if out.is_floating_point() else 12345)
    monkeypatch.setattr(torch, "empty", empty)


def _many_programs(monkeypatch):
    """Force moe_align's multi-program path (zeroed workspace, two launches) with 64 slots per program."""
    monkeypatch.setattr(moe_mod, "ALIGN_ONE_PROGRAM", 0)
    monkeypatch.setattr(moe_mod, "ALIGN_BLOCK", 64)


def _same_alignment(idx, e, block_m):
    """moe_align against moe_align_ref: the same block_expert and sentinel rows, the same set of slots per
    expert (the order within an expert may differ)."""
    (slots, block_expert), (ref_slots, ref_block_expert) = moe_align(idx, e, block_m), moe_align_ref(idx, e, block_m)
    n = idx.numel()
    assert torch.equal(block_expert, ref_block_expert)
    assert torch.equal(slots == n, ref_slots == n)
    rows_expert = block_expert.repeat_interleave(block_m)  # (P,) each row's expert
    for ex in rows_expert.unique().tolist():
        mine = rows_expert == ex
        assert torch.equal(slots[mine].sort().values, ref_slots[mine].sort().values), ex


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("t,k,block_m,pattern", [
    (1, 2, 16, "random"), (3, 4, 16, "random"), (40, 2, 16, "random"), (40, 4, 64, "random"),
    (40, 4, 128, "random"),       # the prefill table's largest blocks
    (40, 2, 16, "two_experts"),   # six experts get no token
    (17, 4, 16, "same_set"),      # every token picks experts 3, 4, 5, 6
    (1, 1, 16, "random"),
])
def test_moe_align_invariants(t, k, block_m, pattern, many, monkeypatch):
    gen = torch.Generator().manual_seed(t * k)
    if pattern == "random":
        idx = _route(gen, t, k)[1]
    elif pattern == "two_experts":
        idx = torch.stack([torch.full((t,), 1), torch.full((t,), 5)], 1)
    else:
        idx = torch.arange(3, 3 + k).repeat(t, 1)
    if many:
        _many_programs(monkeypatch)
    n, flat = t * k, idx.flatten()
    with monkeypatch.context() as mp:
        _poison_empty(mp)  # outputs and workspace
        slots, block_expert = moe_align(idx, E, block_m)
    assert slots.dtype == block_expert.dtype == torch.int32
    assert slots.shape == (padded_rows(n, E, block_m),) and block_expert.shape == (slots.shape[0] // block_m,)
    valid = slots < n
    assert torch.equal(slots[valid].sort().values, torch.arange(n, dtype=torch.int32))  # each slot once
    assert bool((slots[~valid] == n).all())  # padding is the sentinel
    blocks = slots.view(-1, block_m)
    used = block_expert >= 0
    assert bool(used[:int(used.sum())].all())  # unused blocks only at the end, all padding
    assert not bool((blocks[~used] < n).any())
    counts = torch.bincount(flat, minlength=E)
    for e in range(E):
        mine = (block_expert == e).nonzero().flatten()
        assert len(mine) == -(-int(counts[e]) // block_m)  # whole blocks, no more than needed
        if len(mine):
            assert torch.equal(mine, torch.arange(int(mine[0]), int(mine[0]) + len(mine)))  # contiguous
            rows = blocks[mine].flatten()
            got = rows[rows < n].long()
            assert torch.equal(got.sort().values, (flat == e).nonzero().flatten())  # its slots, any order
            assert bool((rows[len(got):] == n).all())  # then padding
    _same_alignment(idx, E, block_m)
    _same_alignment(idx.int(), E, block_m)


@pytest.mark.parametrize("many", [False, True])
def test_moe_align_many_experts_and_slots(many, monkeypatch):
    """E = 256 (the plan's one program spans all experts) and T*k = 65536 slots, against moe_align_ref."""
    if many:
        _many_programs(monkeypatch)
        monkeypatch.setattr(moe_mod, "ALIGN_BLOCK", 4096)
    gen = torch.Generator().manual_seed(5)
    t, k = (8192, 8) if many else (200, 8)
    idx = torch.randint(0, 256, (t, 1), generator=gen) + torch.arange(0, 256, 32)  # k distinct experts
    _same_alignment(idx % 256, 256, 128 if many else 16)
    _same_alignment(torch.randint(0, 3, (t, 1), generator=gen), 3, 64)  # E = 3: padded to 4 lanes


@pytest.mark.parametrize("many", [False, True])
def test_moe_align_does_not_sync_the_host(many, monkeypatch):
    idx = _route(torch.Generator().manual_seed(1), 40, 4)[1]
    if many:
        _many_programs(monkeypatch)
    ref_slots, ref_block_expert = moe_align_ref(idx, E, 16)
    _no_host_sync(monkeypatch)
    slots, block_expert = moe_align(idx, E, 16)
    monkeypatch.undo()
    assert torch.equal(block_expert, ref_block_expert) and torch.equal(slots == 160, ref_slots == 160)


def test_moe_align_size_is_static():
    gen = torch.Generator().manual_seed(0)
    sizes = {tuple(t.shape for t in moe_align(idx, E, 16))
             for idx in (_route(gen, 9, 2)[1], torch.zeros(9, 2, dtype=torch.long), torch.arange(18).view(9, 2) % E)}
    assert sizes == {((padded_rows(18, E, 16),), (padded_rows(18, E, 16) // 16,))}
    assert padded_rows(8, 64, 16) == 128 and padded_rows(4096 * 8, 64, 64) == 4096 * 8 + 64 * 63
    assert padded_rows(40 * 4, E, 128) == 1280 and padded_rows(1, 64, 128) == 128


@pytest.mark.parametrize("many,launches", [(False, ["_moe_align_kernel"]),
                                           (True, ["zeros", "_moe_align_kernel", "_moe_align_scatter_kernel"])])
def test_moe_align_launches(many, launches, monkeypatch):
    """Up to ALIGN_ONE_PROGRAM slots one Triton launch; above, a zeroing and two launches (the torch version:
    21 GPU kernels). Counted: the Triton kernels and every torch op but allocations and views."""
    from torch.utils._python_dispatch import TorchDispatchMode

    free = {"empty", "view", "reshape", "_reshape_alias", "_unsafe_view", "alias", "detach"}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.__name__.split(".")[0] not in free:
                ops.append(func.__name__.split(".")[0])
            return func(*args, **(kwargs or {}))

    class Launch:  # stands in for a kernel: records its launch, runs nothing
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *a, **kw: ops.append(self.name)

    if many:
        _many_programs(monkeypatch)
    for name in ("_moe_align_kernel", "_moe_align_scatter_kernel"):
        monkeypatch.setattr(moe_mod, name, Launch(name))
    idx = _route(torch.Generator().manual_seed(0), 5, 2)[1]
    for ids in (idx, idx.int()):
        ops = []
        with Count():
            moe_align(ids, E, 16)
        assert ops == launches


def _grouped_ref(x, w, idx, gather, scale):
    """float64 out[s] = A[s] · w[idx.flat[s]]ᵀ (· scale[s]), A[s] = x[s // k] or x[s]."""
    k = idx.shape[1]
    s = torch.arange(idx.numel())
    a = x.double()[s // k if gather else s]  # (T*k, K)
    out = torch.einsum("sk,snk->sn", a, w.double()[idx.flatten()])
    return out if scale is None else out * scale.double()[:, None]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gather", [True, False])
@pytest.mark.parametrize("t,k,n,kdim,cfg,scaled", [
    (3, 2, 40, 50, SMALL, False),   # ragged N and K, several tiles
    (19, 4, 37, 64, SMALL, True),   # even K, routing weights in the epilogue
    (40, 2, 70, 30, MOE_CONFIGS[64], True),   # prefill blocks, one K tile
    (1, 4, 24, 40, None, False),    # decode row, table config
    (40, 4, 24, 40, MoeConfig(128, 32, 32), True),   # the sweep's 128-row blocks
])
def test_grouped_matmul_matches_reference(dtype, gather, t, k, n, kdim, cfg, scaled, monkeypatch):
    gen = torch.Generator().manual_seed(t * n + kdim)
    scale, idx = _route(gen, t, k, dtype=dtype)
    x = torch.randn(t if gather else t * k, kdim, generator=gen).to(dtype)
    w = torch.randn(E, n, kdim, generator=gen).to(dtype)
    slots, block_expert = moe_align(idx, E, (cfg or moe_config(t * k, E)).block_m)
    real_empty = torch.empty  # poison: every output row must be written
    monkeypatch.setattr(torch, "empty", lambda *s, **kw: real_empty(*s, **kw).fill_(float("nan")))
    out = grouped_matmul(x, w, slots, block_expert, gather_k=k if gather else None,
                         row_scale=scale.flatten() if scaled else None, config=cfg)
    monkeypatch.undo()
    assert out.shape == (t * k, n) and out.dtype == dtype and torch.isfinite(out).all()
    assert _rel_err(out, _grouped_ref(x, w, idx, gather, scale.flatten() if scaled else None)) < TOL_GEMM[dtype]


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
@pytest.mark.parametrize("t", [1, 3, 40])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_moe_ffn_matches_reference(kind, t, k):
    dtype = torch.bfloat16 if (t + k) % 2 else torch.float16
    gen = torch.Generator().manual_seed(100 * t + k)
    h, f = 48, 40
    u = 2 * f if kind == "swiglu" else f
    weights, idx = _route(gen, t, k, dtype=dtype)
    x = torch.randn(t, h, generator=gen).to(dtype)
    w_up = (torch.randn(E, u, h, generator=gen) * h ** -0.5).to(dtype)
    w2 = (torch.randn(E, h, f, generator=gen) * f ** -0.5).to(dtype)
    out = moe_ffn(x, w_up, w2, weights, idx, kind, fused.act)
    assert out.shape == (t, h) and out.dtype == dtype
    assert _rel_err(out, moe_ffn_ref(x, w_up, w2, weights, idx, kind)) < TOL_FFN[dtype]


def test_moe_ffn_prefill_blocks_and_torch_act():
    """64-row blocks (the prefill config) and a plain torch activation passed in, as the torch stack's act."""
    gen = torch.Generator().manual_seed(7)
    weights, idx = _route(gen, 70, 4)
    x = torch.randn(70, 32, generator=gen).bfloat16()
    w_up = (torch.randn(E, 48, 32, generator=gen) * 32 ** -0.5).bfloat16()
    w2 = (torch.randn(E, 32, 24, generator=gen) * 24 ** -0.5).bfloat16()

    def act(up, kind):
        return fused.act_ref(up, kind).to(up.dtype)
    assert moe_config(70 * 4, E).block_m == 64
    out = moe_ffn(x, w_up, w2, weights, idx, "swiglu", act)
    assert _rel_err(out, moe_ffn_ref(x, w_up, w2, weights, idx, "swiglu")) < TOL_FFN[torch.bfloat16]


@pytest.mark.parametrize("t,k,e,block_m", [(40, 4, E, 16), (40, 2, 3, 64)])
def test_results_do_not_depend_on_the_order_within_an_expert(t, k, e, block_m, monkeypatch):
    """moe_ffn bitwise the same with moe_align_ref's token order and with each expert's slots reversed."""
    gen = torch.Generator().manual_seed(11)
    weights, idx = _route(gen, t, k, e)
    x = torch.randn(t, 32, generator=gen).bfloat16()
    w_up = (torch.randn(e, 48, 32, generator=gen) * 32 ** -0.5).bfloat16()
    w2 = (torch.randn(e, 32, 24, generator=gen) * 24 ** -0.5).bfloat16()
    cfg = MoeConfig(block_m, 16, 16)

    def reversed_align(ids, n_experts, bm):  # each expert's valid rows in the opposite order
        slots, block_expert = moe_align_ref(ids, n_experts, bm)
        rows_expert = block_expert.repeat_interleave(bm)
        for ex in block_expert[block_expert >= 0].unique().tolist():
            rows = ((rows_expert == ex) & (slots < ids.numel())).nonzero().flatten()
            slots[rows] = slots[rows.flip(0)]
        return slots, block_expert

    outs = [moe_ffn(x, w_up, w2, weights, idx, "swiglu", config=cfg)]
    for align in (moe_align_ref, reversed_align):
        monkeypatch.setattr(moe_mod, "moe_align", align)
        outs.append(moe_ffn(x, w_up, w2, weights, idx, "swiglu", config=cfg))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_moe_ffn_128_row_blocks():
    """Over 128 rows per expert the table's 128 x 256 tiles (8 warps), moe_align padding to 128 rows."""
    gen = torch.Generator().manual_seed(9)
    weights, idx = _route(gen, 140, 2, e=2)
    x = torch.randn(140, 32, generator=gen).bfloat16()
    w_up = (torch.randn(2, 80, 32, generator=gen) * 32 ** -0.5).bfloat16()
    w2 = (torch.randn(2, 32, 40, generator=gen) * 40 ** -0.5).bfloat16()
    assert moe_config(140 * 2, 2) == MOE_CONFIGS[128] and MOE_CONFIGS[128].block_n == 256
    assert moe_align(idx, 2, 128)[0].shape == (640,)  # 280 slots + 2 x 127 rows, up to whole 128-row blocks
    out = moe_ffn(x, w_up, w2, weights, idx, "swiglu")
    assert _rel_err(out, moe_ffn_ref(x, w_up, w2, weights, idx, "swiglu")) < TOL_FFN[torch.bfloat16]


def test_moe_config_by_rows_per_expert():
    """The H100 sweep's buckets: <= 32 mean rows per expert 16-row blocks, <= 128 64-row, above 128-row."""
    assert [moe_config(64 * rows, 64).block_m for rows in (0.125, 32, 33, 128, 129, 512)] == [16, 16, 64, 64, 128, 128]
    assert MOE_CONFIGS[64] == MoeConfig(64, 128, 64, num_warps=4, num_stages=3)
    assert MOE_CONFIGS[128] == MoeConfig(128, 256, 64, num_warps=8, num_stages=4)


def test_bad_input_is_a_user_error():
    gen = torch.Generator().manual_seed(3)
    weights, idx = _route(gen, 4, 2)
    x, w_up, w2 = torch.randn(4, 32).bfloat16(), torch.randn(E, 48, 32).bfloat16(), torch.randn(E, 32, 24).bfloat16()
    slots, block_expert = moe_align(idx, E, 16)
    cases = [
        (lambda: moe_ffn(x, w_up, w2, weights, idx, "relu"), "kind='relu'"),
        (lambda: moe_ffn(x, w_up, w2[:, :, :20], weights, idx, "swiglu"), "U = 2F"),
        (lambda: moe_ffn(x, w_up, w2, weights[:, :1], idx, "swiglu"), "weights"),
        (lambda: moe_ffn(x.float(), w_up, w2, weights, idx, "swiglu"), "dtypes"),
        (lambda: moe_align(idx.float(), E, 16), "idx"),
        (lambda: moe_align(idx, 0, 16), "n_experts=0"),
        (lambda: grouped_matmul(x[:, :16], w_up, slots, block_expert, gather_k=2), "K=16"),
        (lambda: grouped_matmul(x, w_up, slots, block_expert, gather_k=0), "gather_k=0"),
        (lambda: grouped_matmul(x, w_up, slots.long(), block_expert, gather_k=2), "sorted_slots"),
        (lambda: grouped_matmul(x, w_up, *moe_align(idx, E, 24), gather_k=2), "power of two"),
        (lambda: grouped_matmul(x, w_up, slots, block_expert, gather_k=2, config=MOE_CONFIGS[64]), "block_m=64"),
        (lambda: grouped_matmul(x, w_up, slots, block_expert, gather_k=2, row_scale=weights[:, 0]), "row_scale"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
