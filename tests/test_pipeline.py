"""Beyond one node: pipeline stages (bubbles, sends between stages), tensor parallelism across nodes, the layout
memory picks, and models that need more than one node predicted instead of refused."""
from __future__ import annotations

import numpy as np
import pytest

import idealrt
from simulator.catalog import get_arch
from simulator.deployment import Deployment, serve
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.memory import memory_per_gpu, smallest_fitting_layout
from simulator.network import (
    NETWORK_LATENCY_S,
    NVLINK_LATENCY_S,
    p2p_s,
    stage_boundaries,
)
from simulator.ops import Op
from simulator.pipeline import bubble, pipeline_times, predict_parallel
from simulator.predict import predict
from simulator.stepcost import StepCost
from simulator.timemodel import ALLREDUCE_LATENCY_S, RooflineModel, op_burst_s
from simulator.workload import Workload

H100, A100 = get_gpu("h100-sxm"), get_gpu("a100-80gb")
LLAMA = get_arch("llama-3.1-8b")


def test_hand_computed_bubble():
    # 4 stages, 3 micro-batches: a pass takes 4 s (1 s a stage), a decode pass 40 s over 10 steps (10 s a stage).
    # Prefill: the first micro-batch leaves after 4 s, the next two 1 s apart: 6 s, of which each stage works 3 s
    # (idle half the time: (pp - 1) / (m + pp - 1) = 3 / 6). Decode: a micro-batch's next token waits for its
    # pass (40 s) while the stages work 3 x 10 s: 40 s; with 8 micro-batches the stages are the bound: 80 s.
    prefill, decode = pipeline_times((4.0, 40.0), (1.0, 10.0), 3, 10)
    assert (float(prefill), float(decode)) == (6.0, 40.0)
    assert bubble(3, 4) == 0.5 and 1 - 3 * 1.0 / prefill == 0.5
    assert float(pipeline_times((4.0, 40.0), (1.0, 10.0), 8, 10)[1]) == 80.0
    assert float(pipeline_times((4.0, 0.0), (1.0, 0.0), 8, 0)[1]) == 0.0  # one output token: no decode


def test_stage_boundaries_and_sends():
    # stages of 4 GPUs on nodes of 8: boundaries at GPU 4 (same node), 8 (next node), 12 (same node)
    assert stage_boundaries(H100, 4, 4) == (2, 1)
    assert stage_boundaries(H100, 8, 2) == (0, 1)
    assert stage_boundaries(H100, 1, 8) == (7, 0)
    assert float(p2p_s(H100, 450e9, False)) == pytest.approx(NVLINK_LATENCY_S + 1.0)  # 450 GB/s NVLink a GPU
    assert float(p2p_s(H100, 50e9, True)) == pytest.approx(NETWORK_LATENCY_S + 1.0)  # 400 Gb/s a GPU


def test_pipeline_prediction_from_its_parts():
    model = RooflineModel(H100)
    p, o, b, m = 1000, 20, 4, 2
    pred = predict_parallel(LLAMA, H100, p, o, b, 2, 2, m, model=model)
    whole = predict(LLAMA, H100, p, o, b // m, 2, model=model)
    stage = predict(LLAMA.with_(n_layers=16), H100, p, o, b // m, 2, model=model)
    send = lambda tokens: p2p_s(H100, 2 * LLAMA.hidden * tokens / 2, False)
    expected_prefill = whole.prefill_s + send(2 * p) + (m - 1) * (stage.prefill_s + send(2 * p))
    assert float(pred.prefill_s) == pytest.approx(float(expected_prefill), rel=1e-12)
    pass_dec = whole.decode_s + (o - 1) * send(2)
    stage_dec = stage.decode_s + (o - 1) * send(2)
    assert float(pred.decode_s) == pytest.approx(float(np.maximum(pass_dec, m * stage_dec)), rel=1e-12)
    assert (pred.n_gpus, pred.pp, pred.microbatches, pred.nodes) == (4, 2, 2, 1)
    assert pred.cost_usd == pytest.approx(pred.total_s * 4 * H100.price_per_hour_usd / 3600)
    assert any(w.startswith("network:") for w in pred.warnings)
    assert pred.memory.weights_bytes < predict(LLAMA, H100, p, o, b, 2, model=model).memory.weights_bytes
    # without a measured power model: board power on every GPU for the whole time, as predict
    assert float(pred.energy_j) == pytest.approx(float(pred.total_s) * 4 * H100.board_power_w)


def test_allreduce_across_nodes_adds_the_ring_over_nodes():
    model = RooflineModel(A100)
    nbytes = 1e8
    op = Op("ar", "allreduce", {"bytes": nbytes, "t": 16}, 0.0, nbytes, 1)
    within = 2 * 7 / 8 * nbytes / A100.interconnect_bw_bytes_s + ALLREDUCE_LATENCY_S
    across = 2 * NETWORK_LATENCY_S + 2 * 1 / 2 * nbytes / 8 / A100.network_bw_bytes_s
    assert float(op_burst_s(op, model)) == pytest.approx(within + across, rel=1e-12)
    assert any(w.startswith("network:") for w in model.warnings)


def test_models_beyond_one_node_are_predicted():
    pred = idealrt.predict("llama-3.1-405b", "h100-sxm", prompt=2000, output=128)
    assert (pred.t, pred.pp, pred.nodes) == (8, 2, 2) and bool(pred.fits)
    for x in (pred.prefill_s, pred.decode_s, pred.total_s, pred.energy_j, pred.cost_usd):
        assert np.all(np.isfinite(x)) and np.all(x > 0)
    wide = idealrt.predict("mt-nlg-530b", "a100-80gb", prompt=1000, output=64, tp=16)
    assert (wide.t, wide.pp, wide.nodes, wide.n_gpus) == (16, 1, 2, 16) and bool(wide.fits)
    assert np.all(np.isfinite(wide.total_s)) and float(wide.total_s) > 0
    assert any(w.startswith("network:") for w in wide.warnings)
    assert smallest_fitting_layout(get_arch("mt-nlg-530b"), A100, 1, 1000, 64) == (8, 2)  # t on a node first


def test_layout_rule_keeps_one_node_models_as_before():
    for name, t in (("llama-3.1-8b", 1), ("llama-3.1-70b", 2)):
        assert smallest_fitting_layout(get_arch(name), H100, 1, 2000, 256) == (t, 1)
    arch = get_arch("falcon-7b").with_(n_layers=200)  # MQA: t = 1 only; stages instead
    t, pp = smallest_fitting_layout(arch, get_gpu("l40s"), 1, 512, 64)
    assert t == 1 and pp > 1 and memory_per_gpu(arch, 1, 512, 64, t, pp).total_bytes <= get_gpu("l40s").mem_bytes


@pytest.mark.parametrize("kwargs, needle", [({"pp": 0}, "pp=0"), ({"pp": 1000}, "pp=1000"),
                                            ({"pp": 2, "microbatches": 3}, "microbatches=3"),
                                            ({"pp": 2, "microbatches": 0}, "microbatches"), ({"tp": 3}, "tp=3")])
def test_bad_layouts_are_user_errors(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        idealrt.predict("llama-3.1-8b", "h100-sxm", prompt=100, output=10, batch=4, **kwargs)


def test_sweep_rows_carry_the_layout():
    rows = idealrt.sweep(["llama-3.1-405b", "llama-3.1-8b"], ["h100-sxm"], [512], [16])
    assert [(r["arch"], r["t"], r["pp"], r["n_gpus"]) for r in rows] == [("llama-3.1-405b", 8, 2, 16),
                                                                         ("llama-3.1-8b", 1, 1, 1)]
    staged = idealrt.sweep(["llama-3.1-8b"], ["h100-sxm"], [512], [16], [4], [1], pps=[2], microbatches=2)
    assert (staged[0]["pp"], staged[0]["microbatches"], staged[0]["n_gpus"]) == (2, 2, 2)


def test_serving_on_stages_adds_the_sends():
    model = RooflineModel(H100)
    one, two = StepCost(LLAMA, H100, 1, model), StepCost(LLAMA, H100, 1, model, pp=2)
    for s in (one, two):
        s.prepare([300])
    assert two.one(0, 0, [(0, 300)]) == pytest.approx(one.one(0, 0, [(0, 300)]) + float(
        p2p_s(H100, 2 * LLAMA.hidden * 300, False)), rel=1e-12)
    w = Workload(np.zeros(2), np.full(2, 300), np.full(2, 8), "static")
    r = serve(LLAMA, H100, w, Deployment("h100-sxm", 1, 1, 2, pp=2), model=model)
    assert r.deployment.n_gpus == 2 and r.row()["pp"] == 2
    assert any(x.startswith("network:") for x in r.warnings)
