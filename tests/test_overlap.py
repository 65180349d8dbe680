"""An eager host and the GPU as a queue (simulator.overlap), the kernels of transformers' eager forward
(simulator.hf_ops), and the graph stacks' time left as it was. Kernel and host times here are FAKE."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.hf_ops import hf_kernels
from simulator.hostmodel import ENGINE, HOST_SECTION
from simulator.ops import Op, decode_ops, prefill_ops
from simulator.overlap import exposed_s
from simulator.paths import TABLES_DIR
from simulator.predict import predict
from simulator.tables import TableModel, load_table, table_model_for
from simulator.timemodel import phase_time

L = 5


def _op(name: str, count: int, op_class: str = "elementwise") -> Op:
    return Op(name, op_class, {"bytes": 1.0}, 0.0, 1.0, count)


def _runs(g_pre, g_layer, g_post, call_s, layer_s):
    """FAKE runs of a layer-periodic phase: the embedding, len(g_layer) kernels a layer, the head and the host."""
    runs = [(_op("embed", 1), np.asarray(g_pre))]
    runs += [(_op(f"k{i}", L), np.asarray(g)) for i, g in enumerate(g_layer)]
    runs += [(_op(n, 1), np.asarray(g)) for n, g in zip(("norm_final", "lm_head", "sample"), g_post)]
    host = [(Op("launch", "launch", {"mode": f"hf_eager_decode_{part}:llama"}, 0.0, 0.0, n), np.asarray(s))
            for part, n, s in (("call", 1, call_s), ("layer", L, layer_s))]
    return runs + host


def _queue(g_pre, g_layer, g_post, call_s, layer_s):
    """The phase kernel by kernel: the call's host work first (the GPU idle), then the embedding issued at once,
    each layer kernel issued layer_s / kernels after the one before, the head issued after the last; a kernel
    starts at the later of its issue and the previous kernel's end."""
    h = layer_s / len(g_layer)
    clock, end = call_s, call_s + g_pre
    for _ in range(L):
        for g in g_layer:
            clock += h
            end = max(end, clock) + g
    for g in g_post:
        end = max(end, clock) + g
    return end


@pytest.mark.parametrize("g_layer", [[1e-5, 3e-4, 2e-5, 5e-4], [1e-5, 1e-5, 1e-5, 1e-5], [4e-4, 1e-6, 1e-6, 2e-4],
                                     [1e-6, 1e-6, 6e-4, 1e-6]])
def test_queue_formula_is_the_kernel_by_kernel_queue(g_layer):
    g_pre, g_post, call_s = 2e-5, [1e-5, 2e-4, 3e-5], 1e-3
    for layer_s in (1e-4, 4e-4, 8e-4, 3e-3):  # GPU-bound, balanced and host-bound layers
        runs = _runs(g_pre, g_layer, g_post, call_s, layer_s)
        x, y = exposed_s(runs, L)
        g = g_pre + L * sum(g_layer) + sum(g_post)
        h = call_s + L * layer_s
        by_class = {"elementwise": np.asarray(g), "launch": np.asarray(h)}
        unit = {"elementwise": 1.0, "launch": 1.0}
        assert phase_time(by_class, unit, (x, y)) == pytest.approx(_queue(g_pre, g_layer, g_post, call_s, layer_s))
        assert max(g, h) <= phase_time(by_class, unit, (x, y)) <= g + h + 1e-12


def test_queue_formula_broadcasts_over_shapes():
    g_layer = [np.array([1e-5, 3e-4]), np.array([5e-4, 1e-6])]
    x, y = exposed_s(_runs(np.array([1e-5, 2e-5]), g_layer, [1e-5, 1e-4, 1e-5], 1e-3, 4e-4), L)
    for j in range(2):
        xj, yj = exposed_s(_runs(2e-5 if j else 1e-5, [g[j] for g in g_layer], [1e-5, 1e-4, 1e-5], 1e-3, 4e-4), L)
        assert (x[j], y[j]) == pytest.approx((float(xj), float(yj)))


def _h200_with_host():
    table = copy.deepcopy(load_table(TABLES_DIR / "h200.json"))
    table[HOST_SECTION] = {ENGINE: {"llama": {"prefill": {"call_s": 0.004, "layer_s": 0.0005},
                                              "decode": {"call_s": 0.002, "layer_s": 0.0004}}}}
    return TableModel(table, get_gpu("h200"), "torch")


def test_graph_stacks_keep_the_longer_of_host_and_gpu():
    gpu, arch = get_gpu("h200"), get_arch("llama-3.1-8b")
    for host in ("graph", "eager"):
        pred = predict(arch, gpu, [16, 4000], [1, 9], [1, 8], 1, model=table_model_for(gpu, "triton"), host=host)
        assert pred.prefill_exposed is None and pred.decode_exposed is None
        assert np.allclose(pred.prefill_s, phase_time(pred.prefill_by_class, pred.coefficients))


def test_hf_eager_prefill_waits_for_the_host_call_and_exposes_the_head():
    gpu, arch = get_gpu("h200"), get_arch("llama-3.1-8b")
    pred = predict(arch, gpu, [1, 4000], 9, 1, 1, model=_h200_with_host(), host=ENGINE)
    device = sum(v for c, v in pred.prefill_by_class.items() if c != "launch")
    host = pred.prefill_by_class["launch"]
    assert host[0] > device[0] and device[1] > host[1]  # a short prefill host-bound, a long one GPU-bound
    x, y = pred.prefill_exposed
    assert x[1] >= 0.004 and pred.prefill_s[1] == pytest.approx(device[1] + x[1])  # the call never overlaps
    assert pred.prefill_s[0] == pytest.approx(host[0] + y[0]) and y[0] > 0  # the head runs after the last issue
    assert np.all(pred.decode_step_s > 0.002 + 32 * 0.0004)


def test_hf_kernels_are_the_modeling_codes():
    llama, opt, neox = get_arch("llama-3.1-8b"), get_arch("opt-6.7b"), get_arch("pythia-6.9b")
    pre = prefill_ops(llama, 1, 128, 1, fused=False)
    hf = hf_kernels(llama, pre)
    norm = next(op for op in pre if op.name == "norm_attn")
    rms = [op for op in hf if op.name.startswith("norm_attn_")]
    assert len(rms) == 8 and sum(op.bytes for op in rms) >= 9 * norm.bytes  # fp32: 36 bytes an element, not 4
    assert [op.name for op in hf if op.op_class == "gemm"][:3] == ["q_proj", "k_proj", "v_proj"]
    assert sum(op.shape["n"] for op in hf if op.name in ("q_proj", "k_proj", "v_proj")) == (32 + 16) * 128
    assert len([op for op in hf if op.name.startswith("rotary_")]) == 10
    gelu = [op for op in hf_kernels(opt, prefill_ops(opt, 1, 128, 1, fused=False)) if op.name.startswith("ffn_act")]
    assert len(gelu) == 8
    neox_ops = prefill_ops(neox, 1, 128, 1, fused=False)
    assert [op.name for op in hf_kernels(neox, neox_ops)] == [op.name for op in neox_ops]
    cat = [next(op for op in decode_ops(llama, 1, c, 1, fused=False, host=ENGINE) if op.name == "kv_cache_cat")
           for c in (100, 1000)]
    assert cat[1].bytes == pytest.approx(10 * cat[0].bytes)  # decode copies the whole cache a step


def test_hf_kernels_of_the_head_and_embedding_are_not_layer_kernels():
    from simulator.overlap import _split

    arch = get_arch("llama-3.1-8b")
    ops = decode_ops(arch, 1, np.arange(1, 5), 1, fused=False, host=ENGINE)
    pre, layer, post = _split([(op, np.ones(4)) for op in ops])
    assert [op.name for op, _ in pre] == ["embed"] and post[-2][0].name == "lm_head"
    assert len([op for op, _ in post if op.name.startswith("norm_final_")]) == 8
    assert all(op.count in (0, arch.n_layers, 2 * arch.n_layers) for op, _ in layer)  # 0: the other shape's kernel
    assert not [op for op, _ in layer if op.name.startswith("ffn_") and op.op_class == "strided"]  # gate, up apart


def test_profile_check_compares_busy_time_with_the_hf_op_list():
    from benchmarks.check_hf_profile import check

    fake = {"profiles": [{"arch": "llama-3.1-8b", "queries": [  # FAKE profile: a busy time of 1 s
        {"b": 1, "p": 64, "new_tokens": 3, "wall_s_median": 1.5, "profiled": {"gpu_busy_us": 1e6, "kernels": 10}}]}]}
    (rec,) = check(fake)
    assert rec["gpu_rel_err"] == pytest.approx(rec["simulated_gpu_s"] - 1.0)
    arch = get_arch("llama-3.1-8b")
    per_step = sum(op.count for op in decode_ops(arch, 1, 65, 1, fused=False, host=ENGINE) if op.op_class != "launch")
    assert rec["simulated_kernels"] > 2 * per_step and rec["gpu_idle_s"] == pytest.approx(0.5)
