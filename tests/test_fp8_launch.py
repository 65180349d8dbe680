"""The simulator's copy of our FP8 GEMM's launch rule (simulator/fp8_launch.py) against the kernel's own, and the
waves the table lookup divides out of gemm_fp8 times."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.fp8_launch import fp8_launch
from simulator.quanta import LaunchModel, critical_work

LM = LaunchModel(sm_count=132, smem_per_sm_bytes=228 * 1024, wave_rows_above=64, hbm_saturating_sms=32,
                 program_steps=2.0, simulated_waves=4, sdpa_alone_rate=0.72, split_step_cost=1.5, combine_steps=2.0)


@pytest.mark.parametrize("sm_count", [132, 78])
def test_fp8_launch_is_the_kernels_rule(sm_count):
    from kernels.gemm_fp8 import fp8_config

    for m, n, k in itertools.product([1, 2, 8, 16, 17, 33, 64, 65, 200, 256, 257, 4096],
                                     [32, 1536, 2048, 4544, 4672, 28672, 106496],
                                     [256, 1024, 1600, 2048, 4544, 14336, 18176, 57344]):
        cfg, mine = fp8_config(m, n, k, sm_count), fp8_launch(m, n, k, sm_count)
        assert (mine.block_m, mine.block_n, mine.block_k, mine.split_k, mine.num_warps, mine.num_stages,
                mine.gemv, mine.tma) == (cfg.block_m, cfg.block_n, cfg.block_k, cfg.split_k, cfg.num_warps,
                                         cfg.num_stages, cfg.gemv, cfg.tma), (m, n, k)


def test_fp8_waves_step_where_the_tiles_pass_a_wave():
    """1024 rows: 8 x 16 = 128 tiles of 128 x 256 fill one wave on 132 SMs; N = 4672 (falcon-7b's QKV) takes
    8 x 19 = 152, a second wave, as N = 8192 does; up to wave_rows_above rows the lookup follows bytes instead."""
    def waves(m, n, k):
        return float(critical_work("gemm_fp8", "triton", [np.array([float(v)]) for v in (m, n, k)], LM)[0])

    assert waves(1024, 4096, 4096) == 1 and waves(1024, 4672, 4544) == 2 == waves(1024, 8192, 4096)
    assert waves(1, 4096, 4096) == pytest.approx(1.0)


def test_explain_times_an_fp8_profile_at_the_variants_precision():
    from calibration.explain import served_arch, table_stack
    from simulator.catalog import get_arch

    arch = get_arch("llama-3.2-1b")
    assert served_arch("fp8", arch).precision.weights == "fp8" and served_arch("fp8_kv", arch).precision.kv == "fp8"
    assert served_arch("triton", arch) == arch
    assert (table_stack("fp8"), table_stack("fp8_kv"), table_stack("best"), table_stack("hf-eager")) == \
        ("triton", "triton", "best", "torch")


@pytest.mark.parametrize("op", ["decode_attn", "decode_attn_fp8"])
def test_decode_attention_runs_its_query_group_padded_on_the_triton_stack(op):
    """Our decode kernels hold a KV head's query group in BLOCK_H = next power of two rows: falcon-7b's 71 query
    heads a KV head run as 128 (its decode kernel time in the H200 profile is the g = 128 node's, not g = 71's)."""
    from simulator.opclasses import OP_CLASS

    shape = {"b": 8, "h": np.array([71, 28, 32]), "kv_h": np.array([1, 4, 8]), "c": 1024, "d": 64}
    assert list(OP_CLASS[op].tiled(shape, "triton")["h"]) == [128, 32, 32]
    assert list(OP_CLASS[op].tiled(shape, "torch")["h"]) == [71, 28, 32]


def test_gemm_fp8_with_k_cut_inside_a_block_has_its_own_category_and_a_stand_in():
    """K = 4544 (falcon-7b) cuts a 512- or 256-wide K block, 3584 (7 x 512) does not: category 0 below 257 rows (TMA
    above reads unmasked); a table without such points times it on the k_blocks = 1 grid and says so."""
    from simulator.fp8_launch import fp8_k_in_blocks
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel

    assert list(fp8_k_in_blocks(np.array([1, 8, 256, 257, 1, 8]), np.array([4544, 4544, 4544, 4544, 3584, 3584]))) \
        == [False, False, False, True, True, True]
    pts = [{"op": "gemm_fp8", "stack": "triton", "kernel": "fake", "shape": {"m": m, "n": n, "k": k},
            "median_us": 1.0 + m * n * k * 1e-9, "reps": 1, "flagged": False}
           for m in (1, 16, 256) for n in (1024, 4096) for k in (1024, 4096)]
    table = {"provenance": {"gpu": "h200", "gpu_name": "FAKE", "sm_count": 132}, "derived": None,
             "launch_model": {"values": {f: getattr(LM, f) for f in LM.__dataclass_fields__ if f not in
                                         ("sm_count", "smem_per_sm_bytes")}}, "points": pts}
    model = TableModel(table, get_gpu("h200"), "triton")
    cut, whole = (model.op_time_s("gemm_fp8", {"m": np.array([16]), "n": np.array([2048]), "k": np.array([k])})
                  for k in (2112, 2048))
    assert cut[0] > whole[0] > 0 and any("k_blocks = 0" in w for w in model.warnings)


@pytest.mark.parametrize("op", ["decode_attn", "decode_attn_fp8"])
def test_decode_attention_below_the_first_context_node_takes_its_time(op):
    """A decode step at context 1 runs the kernel's latency floor, not the roofline scaled down from the first node:
    H200 b = 32, 32 KV heads, c = 1 took 2.9 us that way against 24.5 at c = 16 (phi-3-mini's first decode steps at
    b = 32 came out 10-16% short)."""
    from simulator.gpus import get_gpu
    from simulator.tables import default_model

    model = default_model(get_gpu("h200"), "triton")
    shape = {"b": np.array([16]), "h": np.array([32]), "kv_h": np.array([32]), "d": np.array([128])}
    t = [float(model.op_time_s(op, {**shape, "c": np.array([c])})[0]) for c in (1, 4, 16, 128)]
    assert t[0] == t[1] > 0 and t[1] <= t[2] <= t[3] and not any("decode_attn" in w and "outside" in w
                                                                  for w in model.warnings)
