"""The measured host model of transformers' eager generate (simulator.hostmodel) and its use in predict."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from calibration.engine.hf_eager import hf_config_kwargs
from calibration.fit import host_of
from simulator.catalog import get_arch, list_archs
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.hostmodel import (
    ENGINE,
    HOST_SECTION,
    hf_family,
    host_mode_seconds,
    host_modes,
)
from simulator.paths import TABLES_DIR
from simulator.predict import predict
from simulator.tables import TableModel, load_table, table_model_for

CLASS_OF = {"llama": "LlamaConfig", "opt": "OPTConfig", "neox": "GPTNeoXConfig"}
HOST = {"llama": {"prefill": {"call_s": 0.004, "layer_s": 0.0005}, "decode": {"call_s": 0.002, "layer_s": 0.0004}}}


def test_family_is_the_engines_mapping_for_every_catalog_model():
    for name in list_archs():
        arch = get_arch(name)
        try:
            expected = hf_config_kwargs(arch)[0]
        except UserError:
            expected = None
        family = hf_family(arch)
        assert (CLASS_OF[family] if family else None) == expected, name


def test_host_modes_and_their_seconds():
    arch = get_arch("llama-3.1-8b")
    modes = host_modes(arch, "decode")
    assert modes == [("hf_eager_decode_call:llama", 1), ("hf_eager_decode_layer:llama", 32)]
    table = {HOST_SECTION: {ENGINE: HOST}}
    assert sum(runs * host_mode_seconds(table, m) for m, runs in modes) == pytest.approx(0.002 + 32 * 0.0004)
    with pytest.raises(UserError, match="no measured host model"):
        host_mode_seconds({}, "hf_eager_decode_call:opt")
    with pytest.raises(UserError, match="no family"):
        host_modes(get_arch("olmoe-1b-7b"), "prefill")


def _model_with_host(gpu):  # the H200's table with a made-up host section
    table = copy.deepcopy(load_table(TABLES_DIR / "h200.json"))
    table[HOST_SECTION] = {ENGINE: HOST}
    return TableModel(table, gpu, "torch")


def test_hf_eager_phase_is_at_least_the_longer_of_host_and_gpu():
    gpu, arch = get_gpu("h200"), get_arch("llama-3.1-8b")
    model = _model_with_host(gpu)
    hf = predict(arch, gpu, [1, 4000], 9, 1, 1, model=model, host=ENGINE)
    gpu_only = predict(arch, gpu, [1, 4000], 9, 1, 1, model=model, host="graph")
    host_pre, host_step = 0.004 + 32 * 0.0005, 0.002 + 32 * 0.0004
    assert hf.prefill_by_class["launch"] == pytest.approx([host_pre, host_pre])
    # a short prefill is host-bound (plus the head after the last issue), a long one GPU-bound (HF's kernels, more
    # than the graph stack's, plus the host's call it waits for: simulator.overlap)
    assert host_pre < hf.prefill_s[0] < 1.05 * host_pre
    assert hf.prefill_s[1] > gpu_only.prefill_s[1] + 0.004
    assert np.all(hf.decode_step_s >= host_step) and not any("host" in w for w in hf.warnings)


def test_hf_eager_without_a_host_model_falls_back_and_says_so():
    gpu = get_gpu("h100-sxm")  # its table has no host section
    pred = predict(get_arch("llama-3.1-8b"), gpu, 64, 4, model=table_model_for(gpu, "torch"), host=ENGINE)
    assert any("no measured host model" in w for w in pred.warnings)
    assert pred.prefill_s > 0


def test_rows_of_transformers_generate_are_timed_with_its_host_model():
    assert host_of({"engine": "hf-eager"}) == ENGINE
    assert host_of({"engine": "idealrt", "backend": "triton", "o": 1}) == "idealrt:triton"  # its own host model
