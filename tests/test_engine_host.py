"""The reference engine's host model (simulator.hostmodel engine_host): a graphed prefill starts after its graph's
launch, an eager one takes the longer of the host's launches and the GPU's work; its bench's line and merge."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from calibration import engine_host
from calibration.engine.model import MoE
from calibration.engine.runner import PREFILL_GRAPH_TOKENS as ENGINE_GRAPH_TOKENS
from calibration.fit import host_of
from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.hostmodel import (
    HOST_SECTION, MOE_SYNC_FREE_TOKENS, PREFILL_GRAPH_TOKENS, REFERENCE, engine_host as host_string,
    parse_engine_host,
)
from simulator.ops import kernel_count, prefill_ops
from simulator.paths import TABLES_DIR
from simulator.predict import predict
from simulator.tables import TableModel, load_table

PARTS = {"graph_start": {"call_s": 20e-6, "kernel_s": 0.5e-6},
         "graph_start_after_steps": {"call_s": 40e-6, "kernel_s": 1.0e-6},
         "eager": {"call_s": 100e-6, "kernel_s": 80e-6}}


def test_the_simulators_thresholds_are_the_engines():
    assert PREFILL_GRAPH_TOKENS == ENGINE_GRAPH_TOKENS
    assert MOE_SYNC_FREE_TOKENS == MoE.SYNC_FREE_TOKENS


def test_host_strings_round_trip_and_rows_get_theirs():
    assert parse_engine_host(host_string("torch")) == ("torch", False)
    assert parse_engine_host(host_string("fp8", True)) == ("fp8", True)
    for other in ("graph", "eager", "hf-eager", "idealrt", "idealrt:triton:later"):
        assert parse_engine_host(other) is None
    assert host_of({"engine": "idealrt", "backend": "best", "o": 1}) == "idealrt:best"
    assert host_of({"engine": "idealrt", "backend": "triton", "o": 8}) == "idealrt:triton:steps"
    assert host_of({"engine": "hf-eager", "backend": "transformers", "o": 8}) == "hf-eager"


def _model(section: bool = True) -> TableModel:
    table = copy.deepcopy(load_table(TABLES_DIR / "h200.json"))
    table.setdefault(HOST_SECTION, {}).pop(REFERENCE, None)
    if section:
        table[HOST_SECTION][REFERENCE] = {"triton": PARTS}
    return TableModel(table, get_gpu("h200"), "triton")


def test_graphed_prefill_waits_for_its_graphs_launch_and_eager_prefill_for_the_slower_side():
    arch, gpu = get_arch("llama-3.2-1b"), get_gpu("h200")
    p = np.array([1, 16, 2048, 4096])
    graph = predict(arch, gpu, p, 1, 1, 1, model=_model(), host="graph")
    alone = predict(arch, gpu, p, 1, 1, 1, model=_model(), host=host_string("triton"))
    steps = predict(arch, gpu, p, 8, 1, 1, model=_model(), host=host_string("triton", True))
    kernels = np.array([float(kernel_count([op for op in prefill_ops(arch, 1, int(x), 1) if op.op_class != "launch"]))
                        for x in p])
    graphed = p <= PREFILL_GRAPH_TOKENS
    start = PARTS["graph_start"]["call_s"] + PARTS["graph_start"]["kernel_s"] * kernels
    after = PARTS["graph_start_after_steps"]["call_s"] + PARTS["graph_start_after_steps"]["kernel_s"] * kernels
    device = graph.prefill_s  # the GPU's work: it outlasts one graph launch's host time
    assert np.allclose(alone.prefill_s[graphed], device[graphed] + start[graphed])
    assert np.allclose(steps.prefill_s[graphed], device[graphed] + after[graphed])
    host = PARTS["eager"]["call_s"] + PARTS["eager"]["kernel_s"] * kernels
    assert np.allclose(alone.prefill_s[~graphed], np.maximum(device, host)[~graphed])
    assert np.allclose(alone.decode_step_s, graph.decode_step_s)  # decode steps replay graphs either way
    assert np.all(np.isfinite(alone.energy_j)) and np.all(alone.energy_j > 0)


def test_a_table_without_the_engines_host_model_times_one_graph_launch_and_says_so():
    arch, gpu = get_arch("llama-3.2-1b"), get_gpu("h200")
    graph = predict(arch, gpu, 16, 1, 1, 1, model=_model(False), host="graph")
    engine = predict(arch, gpu, 16, 1, 1, 1, model=_model(False), host=host_string("triton"))
    assert engine.prefill_s == pytest.approx(graph.prefill_s)
    assert any("no measured host model of the reference engine" in w for w in engine.warnings)


def test_line_recovers_call_and_kernel_seconds():
    counts = [24, 84, 324, 25, 85, 325]
    seconds = [30e-6 + 0.45e-6 * k for k in counts]
    fit = engine_host.line(counts, seconds)
    assert fit["call_s"] == pytest.approx(30e-6) and fit["kernel_s"] == pytest.approx(0.45e-6)
    assert fit["max_abs_residual_s"] < 1e-12


def test_merge_adds_the_engine_and_keeps_the_rest(tmp_path):
    table = {"points": [], HOST_SECTION: {"hf-eager": {"llama": {}}}}
    (tmp_path / "t.json").write_text(json.dumps(table))
    (tmp_path / "m.json").write_text(json.dumps({REFERENCE: {"triton": PARTS}, "provenance": {"gpu_name": "x"}}))
    assert engine_host.main(["--out", str(tmp_path / "m.json"), "--merge", str(tmp_path / "t.json")]) == 0
    merged = json.loads((tmp_path / "t.json").read_text())
    assert merged[HOST_SECTION]["hf-eager"] == {"llama": {}}
    assert merged[HOST_SECTION][REFERENCE]["triton"] == PARTS
    assert merged[HOST_SECTION][REFERENCE]["provenance"] == {"gpu_name": "x"}


def test_unknown_stack_is_refused(capsys):
    assert engine_host.main(["--out", "x.json", "--stacks", "triton,nope"]) == 2
    assert "--stacks" in capsys.readouterr().out
