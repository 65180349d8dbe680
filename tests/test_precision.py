"""Precision as a what-if: Hugging Face quantization configs, memory per dtype (hand-computed), the op list's GEMM and
attention classes, derived-not-measured times flagged in every output, the CLI flags and the calibration grid."""
from __future__ import annotations

import json

import numpy as np
import pytest

import idealrt
from idealrt.cli import main
from simulator.arch import ArchSpec
from simulator.catalog import get_arch
from simulator.derive import derive_table
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.hf_config import load_config
from simulator.memory import memory_per_gpu, weight_bytes_per_gpu
from simulator.ops import decode_ops, prefill_ops
from simulator.precision import Precision
from simulator.tables import TableModel

# 2 layers, hidden 512, 8 heads of 64 (4 KV heads), SwiGLU 1024, vocabulary 1000, untied
TINY = {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
        "num_key_value_heads": 4, "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16"}
# per layer: attention 512·(512 + 2·256) + 512·512 = 786,432, FFN 3·512·1024 = 1,572,864; two layers: 4,718,592
LINEAR = 4_718_592
EMBED = HEAD = 512_000

FP8 = {"quant_method": "fp8", "activation_scheme": "dynamic"}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False}
CT_FP8 = {"quant_method": "compressed-tensors", "format": "float-quantized",
          "config_groups": {"group_0": {"targets": ["Linear"],
                                        "weights": {"num_bits": 8, "type": "float", "strategy": "channel",
                                                    "dynamic": False, "symmetric": True},
                                        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                                              "dynamic": True, "symmetric": True}}},
          "ignore": ["lm_head"], "kv_cache_scheme": None}


def cfg(quant: dict | None = None, **extra) -> dict:
    return {**TINY, **({"quantization_config": quant} if quant else {}), **extra}


# -- configs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quant,want", [
    (None, Precision()),
    (FP8, Precision(weights="fp8", activations="fp8", scale="tensor")),
    ({**FP8, "activation_scheme": "static"}, Precision(weights="fp8", activations="fp8", scale="tensor")),
    (AWQ, Precision(weights="int4", group_size=128, zero_points=True)),
    ({"quant_method": "awq", "w_bit": 4, "q_group_size": 64, "zero_point": False},
     Precision(weights="int4", group_size=64)),
    (GPTQ, Precision(weights="int4", group_size=128)),
    ({**GPTQ, "group_size": -1, "sym": False}, Precision(weights="int4", group_size=0, zero_points=True)),
    (CT_FP8, Precision(weights="fp8", activations="fp8", scale="channel")),
    ({**CT_FP8, "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"}},
     Precision(weights="fp8", activations="fp8", scale="channel", kv="fp8")),
    ({**CT_FP8, "sparsity_config": {"format": "dense"}, "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32, "symmetric": False}}}},
     Precision(weights="int4", group_size=32, zero_points=True)),
])
def test_quantization_configs_set_the_precision(quant, want):
    arch = load_config(cfg(quant))
    assert arch.precision == want and arch.bytes_per_weight == 2.0


def test_float32_checkpoint_has_four_byte_weights_everywhere():
    arch = load_config(cfg(torch_dtype="float32"))
    assert arch.precision.weights == "fp32" and arch.bytes_per_weight == 4.0
    assert weight_bytes_per_gpu(arch, 1) == 4 * (LINEAR + EMBED + HEAD)
    assert {op.op_class for op in prefill_ops(arch, 1, 16, 1) if op.op_class.startswith("gemm")} == {"gemm_fp32"}


@pytest.mark.parametrize("quant,field", [
    ({**FP8, "weight_block_size": [128, 128]}, "'quantization_config.weight_block_size'"),
    ({**FP8, "activation_scheme": "per-token"}, "'quantization_config.activation_scheme'"),
    ({**AWQ, "bits": 8}, "'quantization_config.bits' is 8"),
    ({**GPTQ, "bits": 3}, "'quantization_config.bits' is 3"),
    ({**GPTQ, "group_size": 0}, "'quantization_config.group_size'"),
    ({**CT_FP8, "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}},
     "'quantization_config.config_groups.group_0.weights' (int 8-bit)"),
    ({**CT_FP8, "config_groups": {"group_0": {**CT_FP8["config_groups"]["group_0"], "input_activations": None}}},
     "'quantization_config.config_groups.group_0.input_activations'"),
    ({**CT_FP8, "config_groups": {"a": {}, "b": {}}}, "'quantization_config.config_groups'"),
    ({**CT_FP8, "kv_cache_scheme": {"num_bits": 4, "type": "int"}}, "'quantization_config.kv_cache_scheme'"),
    ({**CT_FP8, "sparsity_config": {"format": "sparse-24-bitmask", "sparsity_structure": "2:4"}},
     "'quantization_config.sparsity_config'"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "'quantization_config.quant_method' is 'bitsandbytes'"),
    ("awq", "'quantization_config' must be an object"),
])
def test_unmodelled_quantization_is_refused_naming_the_field(quant, field):
    with pytest.raises(UserError) as err:
        load_config(cfg(quant))
    assert field in str(err.value) and "\n" not in str(err.value)


def test_precision_refuses_combinations_it_does_not_model():
    with pytest.raises(UserError, match="w8a8"):
        Precision(weights="int4", activations="fp8")
    with pytest.raises(UserError, match="'kv'"):
        Precision(kv="int8")
    with pytest.raises(UserError, match="--weights 'fp32'"):
        Precision().with_flags(weights="fp32")


def test_precision_survives_the_json_of_a_measurement_row():
    from dataclasses import asdict

    arch = load_config(cfg(AWQ))
    assert ArchSpec(**json.loads(json.dumps(asdict(arch)))) == arch


# -- memory, by hand ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision,want", [
    (Precision(), (LINEAR + EMBED + HEAD) * 2),                                           # 11,485,184
    (Precision(weights="fp8", activations="fp8"), LINEAR * 1 + (EMBED + HEAD) * 2),       # 6,766,592
    (Precision(weights="int4"), 2_433_024 + (EMBED + HEAD) * 2),                            # 0.5 + 2/128 a weight
    (Precision(weights="int4", zero_points=True), 2_451_456 + (EMBED + HEAD) * 2),          # 0.5 + 2.5/128
    (Precision(weights="int4", group_size=0), 2_377_728 + (EMBED + HEAD) * 2),              # 0.5 + 2/512
])
def test_weight_bytes_per_dtype(precision, want):
    arch = load_config(cfg()).with_(precision=precision)
    assert weight_bytes_per_gpu(arch, 1) == want == arch.weight_bytes()


def test_weights_split_over_t_and_kv_cache_per_dtype():
    arch = load_config(cfg())
    assert weight_bytes_per_gpu(arch, 2) == (LINEAR / 2 + HEAD / 2) * 2 + EMBED * 2  # lookup table replicated
    # 2 requests of 100 + 28 tokens: 256 tokens x 2 (K, V) x 2 layers x 256 (KV width) x bytes
    bf16 = memory_per_gpu(arch, 2, 100, 28, 1).kv_cache_bytes
    fp8 = memory_per_gpu(arch.with_(precision=Precision(kv="fp8")), 2, 100, 28, 1).kv_cache_bytes
    assert (float(bf16), float(fp8)) == (256 * 2 * 2 * 256 * 2, 256 * 2 * 2 * 256 * 1)


# -- op list and times --------------------------------------------------------------------------------------
def test_op_list_gives_gemms_and_decode_attention_their_dtypes():
    arch = get_arch("mixtral-8x7b").with_(precision=Precision(weights="fp8", activations="fp8", kv="fp8"))
    gemms = {op.name: op for op in decode_ops(arch, 4, 1024, 2) if op.op_class.startswith("gemm")}
    assert gemms["router"].op_class == gemms["lm_head"].op_class == "gemm"  # left in the checkpoint's dtype
    assert {gemms[n].op_class for n in ("qkv", "attn_out", "expert_gate_up", "expert_down")} == {"gemm_fp8"}
    m, n, k = (gemms["qkv"].shape[x] for x in "mnk")
    assert gemms["qkv"].bytes == m * k + n * k + 2 * m * n  # fp8 A and W, bf16 C
    attn = next(op for op in decode_ops(arch, 4, 1024, 2) if op.name == "attn")
    assert attn.op_class == "decode_attn_fp8"


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b", "gpt2-xl", "falcon-7b"])
@pytest.mark.parametrize("weights,kv", [("bf16", "fp8"), ("fp8", "bf16"), ("fp8", "fp8"), ("int4", "bf16")])
def test_predictions_at_each_precision_are_finite_and_flagged(model, weights, kv):
    pred = idealrt.predict(model, "h200", np.array([16, 900]), 64, batch=np.array([[1], [8]]), weights=weights, kv=kv)
    bf16 = idealrt.predict(model, "h200", np.array([16, 900]), 64, batch=np.array([[1], [8]]))
    for x in (pred.prefill_s, pred.decode_s, pred.total_s, pred.cost_usd, pred.energy_j):
        assert np.all(np.isfinite(x)) and np.all(x > 0)
    assert float(pred.memory.weights_bytes) <= float(bf16.memory.weights_bytes)
    assert all(f"{c}: derived, not measured" in " ".join(pred.warnings) for c in pred.derived_classes)
    assert not pred.derived_classes  # the H200 table measures FP8 and int4 GEMMs and FP8-KV decode attention


def fake_table() -> dict:
    """FAKE times (not measurements) of bf16 and fp8 GEMMs on a small torch-stack grid."""
    pts = []
    for op, rate in (("gemm", 1.0), ("gemm_fp8", 0.6)):
        for m in (1, 16, 256):
            for n in (1024, 4096):
                for k in (1024, 4096):
                    us = rate * (5.0 + 2e-6 * m * n * k / 1e3 + 2e-6 * n * k / 1e2)  # FAKE
                    pts.append({"op": op, "stack": "torch", "shape": {"m": m, "n": n, "k": k}, "median_us": us})
    return {"provenance": {"gpu": "h200"}, "derived": None, "points": pts}


def test_a_measured_low_precision_class_is_looked_up_and_a_missing_one_derived():
    model = TableModel(fake_table(), get_gpu("h200"), "torch")
    shape = {"m": 16, "n": 4096, "k": 4096}
    fp8 = model.op_time_s("gemm_fp8", shape)
    assert fp8 == pytest.approx(0.6 * model.op_time_s("gemm", shape)) and not model.derived_classes
    int4 = model.op_time_s("gemm_int4", shape)
    assert model.derived_classes == {"gemm_int4"} and 0 < int4 < model.op_time_s("gemm", shape)
    assert any(w.startswith("gemm_int4: derived, not measured") for w in model.warnings)


def test_derived_table_of_a_gpu_without_fp8_drops_fp8_points():
    table = derive_table(fake_table(), get_gpu("h200"), get_gpu("a100-80gb"), "h200.json")
    assert {p["op"] for p in table["points"]} == {"gemm"}
    h100 = derive_table(fake_table(), get_gpu("h200"), get_gpu("h100-sxm"), "h200.json")
    assert {p["op"] for p in h100["points"]} == {"gemm", "gemm_fp8"}


# -- CLI and API -------------------------------------------------------------------------------------------
def one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


BASE = ["--gpu", "h200", "--prompt", "512", "--output", "16"]


@pytest.mark.parametrize("argv,needle", [
    (["predict", "--model", "llama-3.2-1b", *BASE, "--weights", "fp4"], "--weights 'fp4'"),
    (["predict", "--model", "llama-3.2-1b", *BASE, "--kv", "int8"], "--kv 'int8'"),
    (["predict", "--model", "llama-3.2-1b", *BASE, "--weights", "fp32"], "--weights 'fp32'"),
    (["predict", "--model", "llama-3.2-1b", "--gpu", "a100-80gb", "--prompt", "8", "--output", "2", "--weights", "fp8"],
     "no FP8 tensor cores"),
    (["sweep", "--model", "llama-3.2-1b", *BASE, "--weights", "bf16,,fp8"], "--weights ''"),
    (["sweep", "--model", "llama-3.2-1b", *BASE, "--kv", "fp8,x"], "--kv 'x'"),
])
def test_bad_precision_flags_are_one_line(capsys, argv, needle):
    one_line_error(capsys, argv, needle)


@pytest.mark.parametrize("gpu,derived", [("h100-sxm", ["decode_attn_fp8", "gemm_int4"]),  # no low-precision points
                                          ("h200", [])])  # int4 GEMMs and FP8-KV decode attention measured
def test_predict_json_says_derived_not_measured(capsys, gpu, derived):
    assert main(["predict", "--model", "llama-3.2-1b", "--gpu", gpu, *BASE[2:], "--weights", "int4", "--kv", "fp8",
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["precision"]["weights"] == "int4" and rec["precision"]["kv"] == "fp8"
    assert rec["precision"]["times"] == ("derived, not measured" if derived else "measured")
    assert rec["precision"]["derived_classes"] == derived


def test_sweep_axis_of_weights_gives_rows_side_by_side(capsys):
    assert main(["sweep", "--model", "llama-3.1-8b", *BASE, "--batch", "1,8", "--weights", "bf16,fp8,int4",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["weights"], r["b"]) for r in rows] == [(w, b) for w in ("bf16", "fp8", "int4") for b in (1, 8)]
    mem = {r["weights"]: r["mem_per_gpu_gib"] for r in rows if r["b"] == 1}
    assert mem["int4"] < mem["fp8"] < mem["bf16"]
    assert [r["derived_not_measured"] for r in rows if r["b"] == 1] == ["", "", ""]  # all measured on the H200


def test_whatif_report_shows_precision_side_by_side():
    from bs4 import BeautifulSoup

    from reports.whatif_report import render_whatif

    rows = idealrt.sweep(["llama-3.2-1b"], ["h100-sxm"], [512], [16], weights=["bf16", "int4"], kvs=["bf16", "fp8"])
    sec = BeautifulSoup(render_whatif(rows), "html.parser").find(id="precision")
    cells = [tr.get_text(" ", strip=True) for tr in sec.find_all("tr")[1:]]
    # the H100 table measures neither int4 GEMMs nor FP8-KV decode attention
    assert len(cells) == 4 and any("derived, not measured (decode_attn_fp8)" in c for c in cells)
    assert any("derived, not measured (gemm_int4)" in c for c in cells)
    assert cells[0].split()[6] == "bf16" and "measured" in cells[0]


# -- calibration grid --------------------------------------------------------------------------------------
def test_calibration_grid_measures_low_precision_gemms():
    from calibration.grids import estimate_s, grid_points

    fp8 = grid_points("full", ("triton", "torch"), ("gemm_fp8",))
    int4 = grid_points("full", ("triton", "torch"), ("gemm_int4",))
    assert {p.stack for p in fp8} == {"triton", "torch"} and {p.stack for p in int4} == {"triton"}
    assert sum(estimate_s(p) for p in fp8 + int4) < 35  # the budget the grids were sized to (FP8 ours: ~17 s more)


@pytest.mark.parametrize("op,stack,rows", [("gemm_fp8", "torch", 16), ("gemm_fp8", "triton", 3),
                                           ("gemm_int4", "triton", 3)])
def test_low_precision_builders_run_on_cpu(op, stack, rows):
    import torch

    from calibration import opbench

    bench = opbench.build(op, stack, {"m": 3, "n": 32, "k": 256}, device="cpu")
    out = bench.call(0)
    assert tuple(out.shape) == (rows, 32) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_measure_refuses_a_quantized_config_the_engine_would_run_in_bf16(capsys, tmp_path):
    path = tmp_path / "awq.json"
    path.write_text(json.dumps(cfg(AWQ)))
    one_line_error(capsys, ["measure", "--config", str(path), "--device", "cpu", "--out", str(tmp_path / "m.jsonl")],
                   "the reference engine runs bf16 only")


def test_study_runs_the_mix_at_each_precision():
    from reports.study import mix_row, precision_rows, setting

    rows = precision_rows(["llama-3.1-8b", "llama-3.1-70b"], setting("h200", "triton"))
    assert [(r["model"], r["weights"]) for r in rows] == [(m, w) for w in ("bf16", "fp8", "int4")
                                                          for m in ("llama-3.1-8b", "llama-3.1-70b")]
    by = {(r["model"], r["weights"]): r for r in rows}
    assert by[("llama-3.1-8b", "bf16")]["times"] == "measured"
    assert by[("llama-3.1-8b", "fp8")]["times"] == "measured"  # the H200 table has the FP8 GEMM points
    arch = get_arch("llama-3.1-8b").with_(precision=Precision(weights="int4"))
    want = mix_row(arch, setting("h200", "triton"))["runtime_s"]
    assert by[("llama-3.1-8b", "int4")]["runtime_s"] == pytest.approx(want)


def test_derived_against_measured_low_precision_times():
    from calibration.lowp_derived import compare, summary

    fake = {"rows": [{"shape": [8192, 8192, 8192], "bf16_ours": {"us": 1000.0}, "fp8_row_default": {"us": 600.0},
                      "bf16_cublas": {"us": 900.0}, "fp8_row_scaled_mm": {"error": "refused"},
                      "int4_default": {"us": 2000.0}}]}  # FAKE times, not measurements
    rows = compare(fake)
    assert [(r["op"], r["stack"]) for r in rows] == [("gemm_fp8", "triton"), ("gemm_int4", "triton")]
    fp8, int4 = rows
    assert fp8["roofline_ratio"] == pytest.approx(989.4 / 1979)  # compute-bound: the datasheet peaks' ratio
    assert fp8["ratio_us"] == pytest.approx(1000 * fp8["roofline_ratio"])
    assert fp8["ratio_err_pct"] == pytest.approx(100 * (fp8["ratio_us"] / 600 - 1))
    assert int4["roofline_ratio"] == pytest.approx(1.0) and int4["ratio_err_pct"] == pytest.approx(-50.0)
    assert summary(rows)[1]["ratio_median_abs_pct"] == pytest.approx(50.0)


def test_a_derived_prediction_claims_no_validated_error_band():
    from simulator.predict import predict

    band = {"by_t": {"1": {"median_pct": 3.0, "p95_pct": 9.0, "n": 10}},  # FAKE band
            "archs": {"llama-3.1-8b": {"head_dim": 128, "gqa": 4, "moe": False}}}
    arch, gpu = get_arch("llama-3.1-8b"), get_gpu("h100-sxm")  # its table has no FP8-KV points
    bf16 = predict(arch, gpu, 512, 64, coefficients={"error_band": band})
    kv8 = predict(arch.with_(precision=Precision(kv="fp8")), gpu, 512, 64, coefficients={"error_band": band})
    assert bf16.expected_error == band["by_t"]["1"] and kv8.expected_error is None
    assert any("decode_attn_fp8 derived, not measured" in s for s in kv8.outside_validated)
