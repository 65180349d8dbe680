"""simulator.tables on small FAKE tables built here (a made-up smooth time law, never a measurement):
exact at grid points, monotone, no NaN, warnings outside the grid, roofline fallback, derived tables."""
import itertools
import json

import numpy as np
import pytest

from calibration import axis_scan, table_accuracy
from simulator.gpus import get_gpu
from simulator.opclasses import op_cost
from simulator.quanta import LaunchModel, _shared_makespan, critical_work, prefill_makespan
from simulator.sdpa_launch import sdpa_even, sdpa_head_dim, sdpa_splits
from simulator.derive import derive_table
from simulator.tables import TableModel, load_table, table_model_for
from simulator.errors import UserError
from simulator.paths import TABLES_DIR

LAUNCH = load_table(TABLES_DIR / "h100-sxm.json")["launch_model"]  # the shipped table's wave and schedule model



def lm(sm_count: int) -> LaunchModel:
    """The shipped launch model on `sm_count` SMs."""
    return LaunchModel.from_table({"launch_model": LAUNCH, "provenance": {"sm_count": sm_count}}, get_gpu("h100-sxm"))


LM = lm(132)


H100 = get_gpu("h100-sxm")
A100 = get_gpu("a100-80gb")
M, N, K = [1, 4, 16, 64, 256, 1024, 4096], [512, 2048, 8192], [512, 2048, 8192]


def fake_time_s(op, shape):
    """FAKE time law: 70% of the H100 roofline plus 4 us of latency, GEMM rows in whole tiles of 128
    (powers of two below one tile), smooth otherwise."""
    if op == "gemm":
        m = np.asarray(shape["m"], dtype=float)
        shape = dict(shape, m=np.where(m < 128, 2.0 ** np.ceil(np.log2(m)), np.ceil(m / 128) * 128))
    flops, nbytes = op_cost(op, shape)
    return np.maximum(flops / (0.7 * H100.peak_bf16_flops), nbytes / (0.7 * H100.hbm_bw_bytes_s)) + 4e-6


def fake_point(op, stack, **shape):
    return {"op": op, "stack": stack, "kernel": "fake", "shape": shape,
            "median_us": float(fake_time_s(op, shape)) * 1e6, "reps": 1, "flagged": False}


def fake_table(gpu="h100-sxm", skip=lambda m, n, k: False):
    pts = [fake_point("gemm", "triton", m=m, n=n, k=k) for m in M for n in N for k in K if not skip(m, n, k)]
    pts += [fake_point("prefill_attn", "triton", b=1, h=h, kv_h=h, s=s, d=d, causal=1)
            for h in (1, 8, 32) for s in (128, 1024, 8192) for d in (64, 128)]
    pts += [fake_point("decode_attn", "triton", b=b, h=kv * g, kv_h=kv, c=c, d=128)
            for b in (1, 8) for kv in (1, 8) for g in (1, 8) for c in (128, 2048, 32768)]
    pts += [fake_point("elementwise", "torch", bytes=2**i) for i in range(12, 32, 2)]
    pts += [fake_point("allreduce", "torch", bytes=2**i, t=2) for i in range(12, 30, 3)]
    pts += [dict(fake_point("launch", "triton", mode=m), median_us=v) for m, v in (("eager", 9.0), ("graph", 1.5))]
    return {"provenance": {"gpu": gpu, "gpu_name": "FAKE"}, "derived": None, "launch_model": LAUNCH, "points": pts}


def test_exact_at_grid_points_and_vectorised():
    model = TableModel(fake_table(), H100)
    m, n, k = np.meshgrid(M, N, K, indexing="ij")
    got = model.op_time_s("gemm", {"m": m, "n": n, "k": k})
    assert got.shape == m.shape
    np.testing.assert_allclose(got, fake_time_s("gemm", {"m": m, "n": n, "k": k}), rtol=1e-9)
    assert not model.warnings
    assert model.op_time_s("launch", {"mode": "graph"}) == pytest.approx(1.5e-6)


def test_interpolation_close_to_the_law_and_monotone():
    table = fake_table()  # the smooth law has no wave quantisation: read it as the torch stack (no wave model)
    for p in table["points"]:
        p["stack"] = "torch"
    model = TableModel(table, H100, stack="torch")
    rng = np.random.default_rng(0)
    n, k = (128 * rng.integers(4, 64, 5000) for _ in range(2))  # model widths: multiples of 128
    shape = {"m": rng.integers(1, 4096, 5000), "n": n, "k": k}
    err = model.op_time_s("gemm", shape) / fake_time_s("gemm", shape) - 1
    assert np.median(np.abs(err)) < 0.03 and np.percentile(np.abs(err), 95) < 0.10
    for axis, base in itertools.product("mnk", ([1, 512, 512], [100, 3000, 3000], [3000, 600, 9000])):
        line = dict(zip("mnk", base))  # along each axis, across and beyond the grid
        line[axis] = np.unique(np.geomspace(0.5, 3e4, 400).astype(int) + 1)
        t = model.op_time_s("gemm", line)
        assert np.all(np.isfinite(t)) and np.all(t > 0)
        assert np.all(np.diff(t) >= 0) and t[-1] > t[0]  # non-decreasing: more work is never faster


def test_padding_makes_slow_nodes_monotone_and_tiles_round_up():
    """A node slower than a larger one takes the larger one's time (it could run padded); a width just past a
    tile costs what the next whole tile costs. GEMM rows are not padded (one row runs other code) nor rounded:
    the step just past a row tile is read from the node there."""
    table = fake_table()
    table["points"] += [fake_point("gemm", "triton", m=1025, n=n, k=k) for n in N for k in K]
    slow = next(p for p in table["points"] if p["op"] == "gemm" and p["shape"] == {"m": 256, "n": 2048, "k": 2048})
    slow["median_us"] *= 3  # FAKE: a bad kernel configuration at this node
    one_row = next(p for p in table["points"] if p["op"] == "gemm" and p["shape"] == {"m": 1, "n": 2048, "k": 2048})
    one_row["median_us"] = 2 * fake_time_s("gemm", {"m": 16, "n": 2048, "k": 2048}) * 1e6  # FAKE: slower than m=16
    model = TableModel(table, H100, stack="torch")
    t2048, t8192 = model.op_time_s("gemm", {"m": 256, "n": np.array([2048, 8192]), "k": 2048})
    assert t2048 <= t8192 < slow["median_us"] * 1e-6
    assert model.op_time_s("gemm", {"m": 1, "n": 2048, "k": 2048}) == pytest.approx(one_row["median_us"] * 1e-6)
    m = np.array([1024, 1025, 1152])
    t = model.op_time_s("gemm", {"m": m, "n": 2048, "k": 2048})
    assert t[1] == pytest.approx(fake_time_s("gemm", {"m": 1025, "n": 2048, "k": 2048})) and t[1] > t[0]
    assert t[1] <= t[2] < model.op_time_s("gemm", {"m": 4096, "n": 2048, "k": 2048})
    wide = model.op_time_s("gemm", {"m": 256, "n": np.array([2049, 2176]), "k": 2048})
    assert wide[0] == pytest.approx(wide[1])


def test_no_nan_and_warning_outside_grid():
    model = TableModel(fake_table(), H100)
    inside = model.op_time_s("decode_attn", {"b": 4, "h": 32, "kv_h": 8, "c": 4096, "d": 128})
    assert np.isfinite(inside) and not model.warnings
    out = model.op_time_s("gemm", {"m": np.array([1, 65536, 1]), "n": 4096, "k": np.array([4096, 4096, 10**6])})
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert any("outside the measured grid" in w for w in model.warnings)
    # beyond the grid, roofline scaled by the edge efficiency: ~ the law when the law's efficiency is flat
    assert out[1] == pytest.approx(fake_time_s("gemm", {"m": 65536, "n": 4096, "k": 4096}), rel=0.05)


def test_missing_category_falls_back_to_roofline_with_warning():
    model = TableModel(fake_table(), H100)
    t8 = model.op_time_s("allreduce", {"bytes": np.array([1e6, 1e8]), "t": 8})
    assert np.all(np.isfinite(t8)) and t8[1] > t8[0]
    assert any("allreduce t=8" in w for w in model.warnings)
    non_causal = model.op_time_s("prefill_attn", {"b": 1, "h": 8, "kv_h": 8, "s": 1024, "d": 128, "causal": 0})
    assert non_causal > 0 and any("causal" in w for w in model.warnings)


def test_skipped_nodes_are_filled_and_flagged():
    model = TableModel(fake_table(skip=lambda m, n, k: m * n * k > 2e10), H100)
    t = model.op_time_s("gemm", {"m": 3000, "n": 6000, "k": 6000})
    assert t == pytest.approx(fake_time_s("gemm", {"m": 3000, "n": 6000, "k": 6000}), rel=0.1)
    assert any("skipped" in w for w in model.warnings)


def test_derived_table_scales_by_the_bounding_spec():
    src = fake_table()
    der = derive_table(src, H100, A100, "h100-sxm.json")
    assert der["derived"]["from"] == "h100-sxm.json" and der["power_w"] is None
    by_shape = {(p["op"], json.dumps(p["shape"], sort_keys=True)): p["median_us"] for p in src["points"]}
    for p in der["points"]:
        ratio = p["median_us"] / by_shape[(p["op"], json.dumps(p["shape"], sort_keys=True))]
        if p["op"] == "gemm" and p["shape"]["m"] == 1:  # weight-bound
            assert ratio == pytest.approx(H100.hbm_bw_bytes_s / A100.hbm_bw_bytes_s)
        if p["op"] == "gemm" and p["shape"]["m"] == 4096 and p["shape"]["n"] == 8192:  # compute-bound
            assert ratio == pytest.approx(H100.peak_bf16_flops / A100.peak_bf16_flops)
        if p["op"] == "launch":
            assert ratio == 1.0


def test_table_model_for_measured_derived_and_none(tmp_path):
    assert table_model_for(A100, tables_dir=tmp_path) is None
    (tmp_path / "h100-sxm.json").write_text(json.dumps(fake_table()))
    own = table_model_for(H100, tables_dir=tmp_path)
    assert own.derived_from is None and own.source == "measured h100-sxm.json"
    der = table_model_for(A100, "triton", tables_dir=tmp_path)
    assert der.derived_from == "h100-sxm" and der.source.startswith("derived")
    t_a100 = der.op_time_s("gemm", {"m": 1, "n": 8192, "k": 8192})
    assert t_a100 > own.op_time_s("gemm", {"m": 1, "n": 8192, "k": 8192})
    assert any("derived from h100-sxm" in w for w in der.warnings)


def test_bad_table_file_is_a_user_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_table(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_table(tmp_path / "missing.json")


def test_scan_axis_values_hold_powers_of_two_and_the_value_past_each():
    vals = axis_scan.axis_values(64, 8192)
    assert vals == sorted(set(vals)) and vals[0] == 64 and vals[-1] == 8192
    assert {128, 129, 1024, 1025, 4096, 4097} <= set(vals) and 8193 not in vals
    steps = np.diff(np.log(vals))
    assert steps.max() < np.log(1.09)  # no gap wider than the 8% step


def test_accuracy_bench_draws_catalog_shapes_inside_the_grid():
    from calibration.grids import FULL, specs
    from simulator.catalog import ARCHS
    from simulator.memory import valid_tps
    from simulator.ops import prefill_ops

    bench = table_accuracy
    shapes = bench.random_shapes(200, seed=1)
    assert [op for op, _ in shapes].count("gemm") == 80 and shapes == bench.random_shapes(200, seed=1)
    widths = {(o.shape["n"], o.shape["k"]) for a in ARCHS.values() for t in valid_tps(a)
              for o in prefill_ops(a, 1, 1, t) if o.op_class == "gemm"}
    for op, shape in shapes:
        assert bench._in_grid(op, shape)
        if op == "gemm":
            assert (shape["n"], shape["k"]) in widths
            assert not all(shape[a] in specs(FULL["gemm"])[0][a] for a in "mnk")


def test_leave_one_out_is_small_on_a_smooth_fake_law():
    ape = table_accuracy.leave_one_out(fake_table(), H100, "triton", "gemm")
    assert ape.size > 50 and np.median(ape) < 0.05 and np.all(np.isfinite(ape))


def test_head_dim_padded_as_each_stack_kernel_pads_it():
    """Triton prefill runs d = 80, 96 in 128-wide blocks (next power of two); SDPA's flash prefill in multiples
    of 32; both decode ops are memory-bound and read only the real d columns (interpolated, not padded)."""
    table = fake_table()
    table["points"] += [dict(p, stack="torch") for p in table["points"] if p["op"].endswith("attn")]
    pre = {"b": 1, "h": 8, "kv_h": 8, "s": 1024, "causal": 1}
    dec = {"b": 8, "h": 8, "kv_h": 1, "c": 2048}
    tri, tor = TableModel(table, H100, "triton"), TableModel(table, H100, "torch")
    assert tri.op_time_s("prefill_attn", dict(pre, d=80)) == pytest.approx(tri.op_time_s("prefill_attn", dict(pre, d=128)))
    t64, t80, t96, t128 = (tor.op_time_s("prefill_attn", dict(pre, d=d)) for d in (64, 80, 96, 128))
    assert t80 == pytest.approx(t96) and t64 < t80 < t128
    for model in (tri, tor):
        d64, d96, d128 = (model.op_time_s("decode_attn", dict(dec, d=d)) for d in (64, 96, 128))
        assert d64 < d96 < d128


def test_repredict_recomputes_predictions_of_measured_rows():
    bench, table = table_accuracy, fake_table()
    shape = {"m": 300, "n": 2048, "k": 2048}
    rows = [{"op": "gemm", "stack": "triton", "shape": shape, "measured_us": 50.0, "predicted_us": 1.0, "ape": 0.98},
            {"op": "gemm", "stack": "triton", "shape": shape, "error": "FAKE: failed"}]
    out = bench.repredict(rows, table, H100)
    want_us = float(TableModel(table, H100).op_time_s("gemm", shape)) * 1e6
    assert out[0]["predicted_us"] == pytest.approx(want_us) and out[0]["ape"] == pytest.approx(abs(want_us - 50) / 50)
    assert out[1] == rows[1] and bench.summarize(out)["triton/gemm"]["errors"] == 1


def test_a_sub_grid_can_be_limited_to_one_stack():
    """Prefill: the SDPA-only head dims and uneven s nodes past 1025 are measured on the torch stack alone (Triton
    runs d = 96 as 128 and has no even/uneven templates); GEMM nodes past our tile boundaries are Triton's alone."""
    from calibration.grids import grid_points

    def axis(stack, f):
        return {f(p.shape_dict) for p in grid_points("full", (stack,), ("prefill_attn",))}

    seq = {s: axis(s, lambda d: d["s"]) for s in ("triton", "torch")}
    dims = {s: axis(s, lambda d: d["d"]) for s in ("triton", "torch")}
    assert {1537, 2049, 8193} <= seq["torch"] - seq["triton"]
    assert dims["triton"] == {64, 128, 256} and {96, 160} <= dims["torch"]
    gemm = {s: {p.shape for p in grid_points("full", (s,), ("gemm",))} for s in ("triton", "torch")}
    assert gemm["torch"] < gemm["triton"]  # cuBLAS does not step at our tile boundaries (m = 17, 33, 65, ...)


def test_grid_cost_follows_the_timing_policy():
    from calibration.grids import SETUP_S, estimate_s, grid_points, point
    from calibration.timing import REPS

    p = point("gemm", "triton", m=1, n=256, k=256)
    assert estimate_s(p, op_s=1e-6) == pytest.approx(SETUP_S + REPS * 64e-6)  # short op: 64 calls a batch
    assert estimate_s(p, op_s=2e-3) == pytest.approx(SETUP_S + REPS * 2e-3)  # long op: one call a batch
    cost = table_accuracy.grid_cost_s(fake_table(), H100)
    assert set(cost) >= {"gemm", "prefill_attn", "decode_attn"}
    assert sum(cost.values()) > SETUP_S * len(grid_points("full", ("triton",)))


def test_triton_gemm_interpolates_time_per_wave():
    """FAKE wave-quantised law (the Triton GEMM's tiles from kernels/configs.py, 132 SMs): between nodes the triton
    lookup follows the waves, where smooth interpolation (the torch lookup of the same points) misses them."""
    def law(s):
        waves = critical_work("gemm", "triton", [np.asarray(s[a], dtype=float) for a in "mnk"], LM)
        return waves * 1e-8 * s["k"] + 1e-6  # mostly work: ~per wave

    pts = [{"op": "gemm", "stack": stack, "kernel": "fake", "shape": {"m": m, "n": n, "k": k},
            "median_us": float(law({"m": m, "n": n, "k": k})) * 1e6, "reps": 1, "flagged": False}
           for stack in ("triton", "torch") for m in (256, 257, 512, 513, 1024, 1025, 2048) for n in (2048, 4096, 8192)
           for k in (1024, 4096)]
    table = {"provenance": {"gpu": "h100-sxm", "gpu_name": "FAKE", "sm_count": 132}, "derived": None,
             "launch_model": LAUNCH, "points": pts}
    shape = {"m": np.array([512, 1000, 1536]), "n": np.array([4736, 6144, 3000]), "k": np.array([4096, 2048, 1024])}
    want = law({k: np.ceil(v / 128) * 128 if k == "n" else v for k, v in shape.items()})
    triton = TableModel(table, H100, stack="triton").op_time_s("gemm", shape)
    torch = TableModel(table, H100, stack="torch").op_time_s("gemm", shape)
    assert np.all(np.abs(triton / want - 1) < 0.05) and np.max(np.abs(torch / want - 1)) > 0.2


def test_prefill_makespan_counts_waves_of_unequal_programs():
    """Causal query blocks of 128 rows: up to one program per SM the heaviest block sets the time; 72 heads of
    2 blocks (144 programs on 132 SMs) need a second wave (H100: 11.5 us against 7.1 for 64 heads); many
    programs spread evenly, whichever end of each head is launched first."""
    one_wave = prefill_makespan(64, 203, 64, LM)
    assert one_wave == -(-203 // 64) + 2  # the second block reads 203 keys in 64-key steps, plus its fixed cost
    assert prefill_makespan(72, 203, 64, LM) > 1.5 * one_wave
    for stack in ("triton", "torch"):
        total = sum(prefill_makespan(1, s, 128, lm(1), stack) for s in [4096])  # one SM: the sum of all programs
        assert prefill_makespan(512, 4096, 128, LM, stack) == pytest.approx(512 * total / 132, rel=0.05)
    assert prefill_makespan(8, 4096, 128, LM, "triton", causal=False) > prefill_makespan(8, 4096, 128, LM)


def test_memory_bound_gemm_pays_for_a_thin_last_wave():
    """Up to 64 rows our GEMM streams its weights: a last partial wave of q programs takes as long as
    max(q, HBM_SATURATING_SMS) would at full bandwidth (m = 17, n = 4672: 146 programs of 32 columns on 132 SMs)."""
    from simulator.quanta import _gemm_waves

    assert _gemm_waves(17, 4096, 4096, LM, 1) == 1.0  # 128 programs: one wave
    assert _gemm_waves(17, 4672, 4544, LM, 1) == pytest.approx((132 + LM.hbm_saturating_sms) / 146)
    assert _gemm_waves(17, 6144, 4096, LM, 1) == 1.0  # 192 programs: the last 60 saturate the bandwidth
    assert _gemm_waves(1, 256, 256, LM, 1) > 1.0  # a few programs cannot draw it


def test_gemm_just_past_the_memory_bound_rows_has_no_cliff():
    """The time per unit of work interpolated between the nodes on either side of `wave_rows_above` is in one
    unit: the grouped experts of mixtral-8x7b at 259 prompt tokens (64.75 rows an expert, n = 229376) took 9x
    the time of 258 tokens (64.5 rows) when the node at 64 rows counted bytes and the shape counted waves."""
    gpu = get_gpu("h200")
    model = TableModel(load_table(TABLES_DIR / "h200.json"), gpu, "triton")
    shape = {"m": np.array([64.0, 64.5, 64.75, 66.0, 75.0, 96.0, 128.0]), "n": 229376.0, "k": 4096.0}
    t = model.op_time_s("gemm", shape, layers=False)
    assert np.all(t[1:] <= 2.5 * t[:-1])  # two row tiles at most double it; no step of 9x
    assert t[-1] < 4 * t[0]


def test_sdpa_launch_follows_flash_attention_2():
    """SDPA's flash forward (simulator.sdpa_launch): 64-row blocks against two programs per SM decide the split;
    b*h = 48, s = 257 (240 blocks) fills 0.8 of 264 slots and runs unsplit; s = 246 (192 blocks), d = 256 splits its
    4 key blocks 4 ways (the H100 ran it in 52 us, as long as b*h = 192 unsplit); padded head dims."""
    assert sdpa_splits(48, 257, 256, 132) == 1 and sdpa_splits(48, 246, 256, 132) == 4
    assert sdpa_splits(48, 246, 128, 132) == 1  # 2 key blocks of 128: a second split gains no efficiency
    assert sdpa_splits(20, 615, 128, 132) == 5  # 200 blocks, 5 key blocks of 128: 5 splits reach 95% of a wave
    assert sdpa_splits(1, 32768, 128, 132) <= 128
    assert [sdpa_head_dim(d) for d in (64, 80, 144, 256)] == [64, 96, 160, 256]
    assert list(sdpa_even(np.array([384, 385, 384]), np.array([128, 128, 160]))) == [True, False, False]


def test_shared_sm_schedule():
    """Two SDPA programs share an SM: one alone runs at SDPA_ALONE_RATE, a pair at the SM's full rate; with one
    program per SM the schedule is plain list scheduling."""
    assert _shared_makespan([1.0] * 132, lm(132), 2, 0.5) == pytest.approx(2.0)  # one a SM, alone: half rate
    assert _shared_makespan([1.0] * 264, lm(132), 2, 0.5) == pytest.approx(2.0)  # a pair a SM: same time
    assert _shared_makespan([1.0] * 264, lm(132), 1, 0.5) == pytest.approx(2.0)  # two waves of one
    assert _shared_makespan([2.0, 1.0, 1.0], lm(2), 1, 1.0) == pytest.approx(2.0)  # the third waits for the second
    assert _shared_makespan([1.0] * 133, lm(132), 2, 0.5) == pytest.approx(2.0)  # the 133rd pairs with the 1st


def test_sdpa_even_and_uneven_shapes_are_looked_up_apart():
    """FAKE: even s (multiples of 128, head dim <= 128) run 1.3x faster per unit of work, as SDPA's
    bounds-check-free template did on the H100. An uneven s between two even nodes is looked up among the uneven
    nodes only (interpolating across the two kinds would be 30% off); Triton has no such split."""
    even, uneven = (256, 512, 1024, 2048), (257, 513, 1025, 2049)

    def fake_us(bh, s, stack="torch"):
        work = critical_work("prefill_attn", stack, [np.asarray(v, dtype=float) for v in (bh, s, 128)], LM, (1,))
        return float(work) * (1.0 if s % 128 == 0 else 1.3) * 0.1

    pts = [{"op": "prefill_attn", "stack": stack, "kernel": "fake", "median_us": fake_us(bh, s, stack), "reps": 1,
            "flagged": False, "shape": {"b": bh, "h": 1, "kv_h": 1, "s": s, "d": 128, "causal": 1}}
           for stack in ("torch", "triton") for bh in (16, 64) for s in even + uneven]
    table = {"provenance": {"gpu": "h100-sxm", "gpu_name": "FAKE", "sm_count": 132}, "derived": None,
             "launch_model": LAUNCH, "points": pts}
    model = TableModel(table, H100, "torch")
    shape = {"b": 16, "h": 1, "kv_h": 1, "d": 128, "causal": 1}
    for s in (1024, 1536, 1537, 1800):
        got = float(model.op_time_s("prefill_attn", dict(shape, s=s)))
        assert got == pytest.approx(fake_us(16, s) * 1e-6, rel=0.02)
    assert not model.warnings
    grid = TableModel(table, H100, "triton")._grid("prefill_attn", (1,))
    assert len(grid.nodes[1]) == len(even + uneven)  # one grid on the Triton stack


def test_prefill_lookup_follows_the_query_block_steps():
    """FAKE law proportional to the makespan: between s nodes 513 and 1025 the time steps at each 128-row block
    (linear interpolation in s misses them by over 10%); the lookup, interpolating time per makespan, does not."""
    def law(bh, s, d, stack):
        return 1e-6 * critical_work("prefill_attn", stack, [np.asarray(v, dtype=float) for v in (bh, s, d)], LM,
                                    (1,)) + 5e-7  # mostly work

    nodes = (129, 257, 513, 1025, 2049)  # (uneven: SDPA's lookup keeps s = 128 k apart)
    pts = [{"op": "prefill_attn", "stack": stack, "kernel": "fake", "median_us": float(law(bh, s, 128, stack)) * 1e6,
            "shape": {"b": bh, "h": 1, "kv_h": 1, "s": s, "d": 128, "causal": 1}, "reps": 1, "flagged": False}
           for stack in ("triton", "torch") for bh in (16, 64, 256) for s in nodes]
    table = {"provenance": {"gpu": "h100-sxm", "gpu_name": "FAKE", "sm_count": 132}, "derived": None,
             "launch_model": LAUNCH, "points": pts}
    s = np.array([520, 639, 767, 895, 1000])
    for stack in ("triton", "torch"):
        want = law(64, s, 128, stack)
        linear = np.interp(s, nodes, [law(64, n, 128, stack) for n in nodes])
        got = TableModel(table, H100, stack=stack).op_time_s("prefill_attn", {"b": 64, "h": 1, "kv_h": 1, "s": s,
                                                                              "d": 128, "causal": 1})
        assert np.max(np.abs(linear / want - 1)) > 0.1 and np.max(np.abs(got / want - 1)) < 0.03


def test_a_faster_config_at_a_larger_head_dim_is_not_handed_down():
    """FAKE: the kernel for d = 256 happens to be faster than the one for d = 128 on these shapes (they pick
    different tiles); the running minimum that makes nodes monotone must not run across head dims."""
    table = fake_table()
    table["points"] += [fake_point("prefill_attn", "triton", **dict(p["shape"], d=256))
                        for p in table["points"] if p["op"] == "prefill_attn" and p["shape"]["d"] == 128]
    for p in table["points"]:
        if p["op"] == "prefill_attn" and p["shape"]["d"] == 128:
            p["median_us"] *= 3.0
    model = TableModel(table, H100, "triton")
    shape = {"b": 1, "h": 8, "kv_h": 8, "s": 1024, "causal": 1}
    slow = model.op_time_s("prefill_attn", dict(shape, d=128))
    assert slow == pytest.approx(3.0 * fake_time_s("prefill_attn", dict(shape, d=128)))


def test_sample_is_looked_up_at_the_models_vocabulary_not_padded_to_a_faster_one():
    """The H200 table's argmax is 3x slower at 128,256 than at 131,072; the engine runs 128,256: the node's time."""
    import json

    from simulator.gpus import get_gpu
    from simulator.paths import TABLES_DIR
    from simulator.tables import table_model_for

    pts = json.loads((TABLES_DIR / "h200.json").read_text())["points"]
    node = {p["shape"]["vocab"]: p["median_us"] for p in pts if p["op"] == "sample" and p["shape"]["rows"] == 1}
    model = table_model_for(get_gpu("h200"), "triton")
    for vocab in (128256, 131072):
        assert float(model.op_time_s("sample", {"rows": 1, "vocab": vocab})) * 1e6 == pytest.approx(node[vocab], rel=1e-6)


def test_points_without_a_categorical_key_take_its_default():
    """Element-wise points measured before `l2` existed are inputs in HBM ("cold"); strided points before `fn`, the
    SwiGLU product ("mul"); a function without points of its own is timed at those, with a warning."""
    table = fake_table()
    hot = [dict(fake_point("elementwise", "torch", bytes=2**i, l2="hot"), median_us=1.0) for i in range(12, 28, 2)]
    strided = [dict(fake_point("strided", "torch", bytes=2**i), median_us=7.0) for i in range(12, 28, 2)]
    table["points"] += hot + strided
    model = TableModel(table, H100, stack="torch")
    cold_us = model.op_time_s("elementwise", {"bytes": 2.0**16}) * 1e6
    assert cold_us == pytest.approx(fake_time_s("elementwise", {"bytes": 2.0**16}) * 1e6)
    assert model.op_time_s("elementwise", {"bytes": 2.0**16, "l2": "hot"}) * 1e6 == pytest.approx(1.0)
    assert model.op_time_s("strided", {"bytes": 2.0**16, "fn": "mul"}) * 1e6 == pytest.approx(7.0)
    assert not model.warnings
    assert model.op_time_s("strided", {"bytes": 2.0**16, "fn": "silu"}) * 1e6 == pytest.approx(7.0)
    assert any("fn=silu as fn=mul" in w for w in model.warnings)


def test_a_table_without_hot_points_times_hot_ops_at_its_cold_ones():
    """A table measured before `l2` existed (the H100's) times an op whose inputs are in L2 at its HBM points, and
    says so, rather than at the roofline."""
    model = TableModel(fake_table(), H100, stack="torch")
    hot = model.op_time_s("elementwise", {"bytes": 2.0**20, "l2": "hot"})
    assert hot == pytest.approx(model.op_time_s("elementwise", {"bytes": 2.0**20}))
    assert any("l2=hot as l2=cold" in w for w in model.warnings)
