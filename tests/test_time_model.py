"""The time model's parts added for the engine's own kernels and the host: one record per op class, host and GPU
overlapped, tables without an element-wise class's points, the error band, and `idealrt explain`. Data here is
FAKE unless it says it reads a shipped file."""
import json

import numpy as np
import pytest

from calibration.explain import compare_row, totals
from calibration.kernel_classes import kernel_class
from idealrt.cli import main
from simulator.band import band_entry, error_band
from simulator.catalog import get_arch
from simulator.fits import check_coefficients
from simulator.gpus import get_gpu
from simulator.opclasses import OP_CLASS, COEFFICIENTS, op_cost
from simulator.ops import decode_ops, prefill_ops
from simulator.predict import predict
from simulator.tables import TableModel, load_table
from simulator.paths import TABLES_DIR
from simulator.timemodel import RooflineModel, phase_time, time_by_class

LLAMA, H200 = get_arch("llama-3.1-8b"), get_gpu("h200")
UNIT = check_coefficients({})


@pytest.mark.parametrize("name", list(OP_CLASS))
def test_every_op_class_record_round_trips_its_coordinates(name):
    record = OP_CLASS[name]
    cats = {c: 1 for c in record.category_names("torch")}
    axes = [np.asarray(8.0 * (i + 1)) for i in range(len(record.axes))]
    shape = record.from_axes(cats, axes)
    _, back = record.coords({**cats, **shape}, "torch")
    assert [float(v) for v in back] == [float(v) for v in axes]
    flops, nbytes = op_cost(name, {**cats, **shape})
    assert np.all(np.asarray(flops) >= 0) and np.all(np.asarray(nbytes) >= 0)
    assert record.coefficient in COEFFICIENTS


def test_graph_phase_takes_the_gpu_time_and_an_eager_one_the_longer():
    model = RooflineModel(H200)
    graph = time_by_class(decode_ops(LLAMA, 1, 1024, 1), model)
    device = sum(v for c, v in graph.items() if c != "launch")
    assert graph["launch"] < device and phase_time(graph, UNIT) == pytest.approx(device)  # one graph launch
    eager = time_by_class(decode_ops(LLAMA, 1, 1024, 1, host="eager"), model)
    assert eager["launch"] > 100 * graph["launch"]  # one launch a kernel run, not one a phase
    assert phase_time(eager, UNIT) == pytest.approx(max(device, float(eager["launch"])))


def test_eager_host_bound_prediction_is_slower_than_the_graph_one():
    tiny = get_arch("llama-3.2-1b")
    graph = predict(tiny, H200, 16, 8, 1, 1, model=RooflineModel(H200))
    eager = predict(tiny, H200, 16, 8, 1, 1, model=RooflineModel(H200), host="eager")
    assert eager.decode_step_s > graph.decode_step_s


def test_a_table_without_an_element_wise_class_times_it_as_elementwise_and_says_so():
    table = load_table(TABLES_DIR / "h200.json")
    old = dict(table, points=[p for p in table["points"] if p["op"] not in ("add_norm", "act")])
    model = TableModel(old, H200)
    shape = {"rows": np.asarray(512.0), "hidden": np.asarray(4096.0)}
    t = model.op_time_s("add_norm", shape)
    assert t == pytest.approx(model.op_time_s("elementwise", {"bytes": op_cost("add_norm", shape)[1]}))
    assert any("add_norm: not measured" in w for w in model.warnings)
    model.op_time_s("act", {"bytes": np.asarray(1e6)})
    assert [w for w in model.warnings if "not measured" in w] == [
        "act, add_norm: not measured in this table; timed as elementwise of their bytes (re-run 'idealrt calibrate' "
        "to measure them)"]
    assert TableModel(table, H200).op_time_s("add_norm", shape) != pytest.approx(t)  # the shipped H200 has it


def test_error_band_says_what_lies_outside_the_validated_set():
    records = [{"t": 1, "phase": "total", "ape_pct": v} for v in (1.0, 2.0, 3.0, 10.0)]
    band = band_entry(records, {"llama-3.1-8b": LLAMA})
    stats, notes = error_band(band, LLAMA, 1, "measured h200.json")
    assert stats["median_pct"] == 2.5 and stats["n"] == 4 and notes == ()
    stats, notes = error_band(band, get_arch("gpt-j-6b"), 2, "derived h100-sxm.json")
    assert stats is None and len(notes) == 4  # derived table, t = 2, head dim 256, MHA (GQA 1)
    assert any("head dim 256" in n for n in notes) and any("t=2" in n for n in notes)
    assert error_band(None, LLAMA, 1, "measured h200.json")[0] is None


def test_kernel_names_map_to_op_classes():
    assert kernel_class("_matmul_tma_kernel") == "gemm"
    assert kernel_class("_rope_write_kernel") == "rope_kv_write"
    assert kernel_class("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<c10::BFloat16, "
                        "at::native::ArgMaxOps<float>, unsigned int, long, 4> >") == "sample"
    assert kernel_class("Memcpy DtoD (Device -> Device)") == "step"
    assert kernel_class("some_new_kernel") == "other"


def test_explain_compares_a_profile_row_per_class(tmp_path, capsys):
    row = {"arch": "llama-3.1-8b", "backend": "triton", "phase": "decode", "b": 1, "c": 1024, "graph": True,
           "event_ms": 5.0, "kernels": [{"name": "_matmul_kernel", "count": 129, "total_us": 4300.0},
                                        {"name": "_decode_split_kernel", "count": 32, "total_us": 250.0}]}
    model = TableModel(load_table(TABLES_DIR / "h200.json"), H200)
    out = compare_row(row, LLAMA, model)
    assert out["classes"]["gemm"]["profiled_count"] == 129 and out["classes"]["gemm"]["simulated_count"] == 129
    assert out["between_kernels_s"] == pytest.approx(5e-3 - 4.55e-3)
    assert totals([out])["gemm"]["rel_diff"] == pytest.approx(out["classes"]["gemm"]["simulated_s"] / 4.3e-3 - 1)
    gap = (5e-3 - 4.55e-3) / 161  # the time between kernels, a share per kernel of the replayed graph
    assert out["classes"]["gemm"]["profiled_in_graph_s"] == pytest.approx(4.3e-3 + 129 * gap)
    assert totals([out])["decode_attn"]["rel_diff_in_graph"] == pytest.approx(
        out["classes"]["decode_attn"]["simulated_s"] / (0.25e-3 + 32 * gap) - 1)
    assert compare_row({**row, "graph": False}, LLAMA, model)["classes"]["gemm"]["profiled_in_graph_s"] == 4.3e-3
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"rows": [row], "provenance": {"gpu_name": "NVIDIA H200"}}))
    assert main(["explain", "--profile", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu"] == "h200"
    assert main(["explain", "--profile", str(tmp_path / "missing.json")]) == 2


def test_one_token_prefill_has_no_transpose_copy():
    ops = {op.name: op for op in prefill_ops(LLAMA, 4, np.array([1, 2]), 1)}
    np.testing.assert_array_equal(ops["attn_transpose"].count, [0, LLAMA.n_layers])


@pytest.mark.parametrize("g, rows", [(1, 1), (6, 8), (8, 8), (16, 16), (71, 128), (128, 128)])
def test_triton_decode_attention_runs_the_query_heads_of_a_kv_head_as_one_power_of_two_tile(g, rows):
    """kernels/decode_attention.py: BLOCK_H = max(16, next power of two of h / kv_h), all of a KV head's query heads
    in one tile; below 16 the table's nodes (1, 8) share the 16-row tile. SDPA's decode (torch) is looked up as is."""
    shape = {"b": 4, "h": 2 * g, "kv_h": 2, "c": 1024, "d": 64}
    assert OP_CLASS["decode_attn"].tiled(shape, "triton")["h"] / 2 == rows
    assert OP_CLASS["decode_attn"].tiled(shape, "torch")["h"] == 2 * g
    model = TableModel(load_table(TABLES_DIR / "h200.json"), H200, "triton")
    assert model.op_time_s("decode_attn", shape) == pytest.approx(model.op_time_s("decode_attn", {**shape, "h": 2 * rows}))
