"""The FP8 engine variant on the CPU (Triton's interpreter): its quantization kernel against the torch reference,
its weights, its logits against the bf16 engine's, its rows' precision and the simulator's FP8 op list."""
from __future__ import annotations

import json

import pytest
import torch

from calibration import measurements_io as mio
from calibration.engine.runner import Engine
from calibration.engine_variants import fp8
from calibration.fit import SimulatorFeatures
from idealrt.cli import main
from kernels.quant_fp8 import quantize_rows, quantize_rows_ref
from simulator.catalog import get_arch
from simulator.errors import UserError
from simulator.ops import decode_ops, prefill_ops
from simulator.precision import Precision
from tests.test_decode_attention_fp8 import only_interpreter_rounding
from tests.test_engine import tiny
from tests.test_engine_fused import logits_in_lockstep
from tests.test_queries import TINY_CONFIG


@pytest.mark.parametrize("t,k", [(3, 100), (5, 4500), (1, 2048)])  # ragged K, several loop blocks, one row
def test_quantize_rows_matches_reference(t: int, k: int) -> None:
    x = (torch.randn(t, k, generator=torch.Generator().manual_seed(k)) * 3).to(torch.bfloat16)
    x[0] = 0  # an all-zero row: finite scale, zero codes
    q, s = quantize_rows(x)
    qr, sr = quantize_rows_ref(x)
    assert q.dtype == torch.float8_e4m3fn and q.shape == (t, k) and s.shape == (t,)
    assert torch.equal(s, sr) and torch.isfinite(s).all() and not q[0].float().any()
    # Triton's interpreter rounds ties away from zero (-42 -> -44, not -40) and does not carry a rounding up into
    # the next binade (31.8 -> 16, not 32); benchmarks/gpu_h200_fp8.sh checks the codes for equality on the GPU
    assert only_interpreter_rounding(q.float(), qr.float(), x.float() / s[:, None])


def test_quantize_rows_refuses_a_strided_last_dim() -> None:
    with pytest.raises(ValueError, match="contiguous last dim"):
        quantize_rows(torch.zeros(4, 8, dtype=torch.bfloat16).t())


def test_layer_weights_become_fp8_and_the_head_stays() -> None:
    engine = fp8.make_engine(tiny("llama"), device="cpu", seed=3)
    bf16 = Engine(tiny("llama"), "triton", device="cpu", dtype=torch.bfloat16, seed=3)
    for layer, ref in zip(engine.model.layers, bf16.model.layers):
        for w, r in ((layer.wqkv, ref.wqkv), (layer.wo, ref.wo), (layer.mlp.w_up, ref.mlp.w_up), (layer.mlp.w2, ref.mlp.w2)):
            assert isinstance(w, fp8.Fp8Weight) and w.q.dtype == torch.float8_e4m3fn and w.scale.shape == (r.shape[0],)
            deq = w.q.float() * w.scale[:, None]
            assert 1e-3 < float((deq - r.float()).norm() / r.float().norm()) < 5e-2  # e4m3's rounding, no more
    assert isinstance(engine.model.lm_head, torch.nn.Parameter) and engine.model.lm_head.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in engine.model.parameters())  # only embeddings, norms, head left


def test_fp8_engine_logits_follow_the_bf16_engine() -> None:
    arch = tiny("llama")
    prompt = torch.randint(0, arch.vocab, (2, 5), generator=torch.Generator().manual_seed(1))
    engines = [Engine(arch, "triton", device="cpu", dtype=torch.bfloat16, seed=3),
               fp8.make_engine(arch, device="cpu", seed=3),
               fp8.make_engine(arch, device="cpu", seed=3, kernels=fp8.reference_kernels())]
    ref, got, torch_ref = logits_in_lockstep(engines, prompt, steps=3)
    cos = torch.nn.functional.cosine_similarity(got, ref, dim=-1)
    assert cos.min() > 0.98 and (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.5
    assert float((got - ref).norm() / ref.norm()) > 1e-2  # the weights are FP8: not the bf16 engine in disguise
    # the Triton kernels against their torch references in the same engine
    assert torch.nn.functional.cosine_similarity(got, torch_ref, dim=-1).min() > 0.98


def test_fp8_engine_refuses_moe() -> None:
    with pytest.raises(UserError, match="mixture of experts"):
        fp8.make_engine(tiny("moe"), device="cpu")


def test_measure_fp8_rows_carry_their_precision_and_predict_at_fp8(tmp_path) -> None:
    cfg, out = tmp_path / "tiny.json", str(tmp_path / "cpu_t1.jsonl")
    cfg.write_text(json.dumps(TINY_CONFIG))
    assert main(["measure", "--arch", str(cfg), "--device", "cpu", "--backend", "fp8", "--out", out,
                 "--queries", "5,2,1", "--repeats", "3"]) == 0
    (row,) = mio.read_rows(out)
    assert row["backend"] == "fp8" and row["engine_variant"] == "fp8" and row["fused"] is True
    assert row["arch_spec"]["precision"]["weights"] == "fp8" and row["arch_spec"]["precision"]["kv"] == "bf16"
    arch = mio.arch_of(row)
    assert arch.precision == fp8.PRECISION
    # validate --stack fp8 predicts the row on the triton table at FP8: the FP8 classes carry the GEMM time
    row = dict(mio.check_row(row, "row"), gpu="h200")
    (ct,) = SimulatorFeatures("fp8")([row])
    assert ct.prefill["gemm_fp8"] > 0 and ct.prefill["quant_fp8"] > 0 and ct.prefill["gemm"] > 0  # LM head bf16


def test_fp8_activations_add_one_quantization_per_layer_gemm() -> None:
    from dataclasses import replace

    arch = get_arch("llama-3.1-8b")
    w8a8 = replace(arch, precision=Precision(weights="fp8", activations="fp8"))
    for ops_of in (lambda a: decode_ops(a, 4, 100, 1), lambda a: prefill_ops(a, 1, 64, 2)):
        bf, q = ops_of(arch), ops_of(w8a8)
        assert not [op for op in bf if op.op_class == "quant_fp8"]
        quants = {op.name: op for op in q if op.op_class == "quant_fp8"}
        gemms = {op.name: op for op in q if op.op_class == "gemm_fp8"}
        assert set(quants) == {f"{name}_quant" for name in gemms} and len(gemms) == 4
        for name, g in gemms.items():  # the GEMM's input: m rows of k
            assert quants[f"{name}_quant"].shape == {"rows": g.shape["m"], "k": g.shape["k"]}
            assert quants[f"{name}_quant"].count == g.count
        assert [op.name for op in bf] == [op.name for op in q if op.op_class != "quant_fp8"]
