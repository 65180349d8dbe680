"""predict: the vectorised decode sum against an explicit loop, coefficients, memory and the tp rule,
cost and energy, the F(p) + g·(o − 1) profile, the fit reader and the time-model fallback."""
import json

import numpy as np
import pytest

from simulator import fits
from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.memory import memory_per_gpu, smallest_fitting_tp, valid_tps, weight_bytes_per_gpu
from simulator.ops import decode_ops
from simulator.predict import predict
from simulator.profile import fit_profile
from simulator.fits import check_coefficients
from simulator.tables import default_model
from simulator.timemodel import RooflineModel, phase_time, time_by_class

H100 = get_gpu("h100-sxm")
LLAMA = ArchSpec(name="llama-style", n_layers=4, hidden=1024, n_heads=16, n_kv_heads=8, head_dim=64,
                 ffn_hidden=2816, ffn_kind="swiglu", vocab=32000, max_positions=8192, norm="rmsnorm")
MOE = LLAMA.with_(name="moe-style", n_experts=8, experts_per_token=2, expert_ffn_hidden=1408, ffn_hidden=0)
BIG = LLAMA.with_(name="big", n_layers=96, hidden=16384, n_heads=128, n_kv_heads=8, head_dim=128,
                  ffn_hidden=53248)  # ~400B parameters: needs t > 1 on an 80 GiB GPU


def roofline():
    return RooflineModel(H100)


UNIT = check_coefficients({})  # every coefficient 1, no fixed costs


def step_s(ops) -> float:
    """One step's seconds on the roofline: the longer of the GPU's and the host's work."""
    return float(phase_time(time_by_class(ops, roofline()), UNIT))


@pytest.mark.parametrize("arch", [LLAMA, MOE], ids=lambda a: a.name)
@pytest.mark.parametrize("t", [1, 2])
def test_decode_sum_matches_an_explicit_loop(arch, t):
    p, o, b = np.array([1, 7, 300, 2000, 5]), np.array([1, 2, 64, 900, 3000]), np.array([1, 3, 1, 8, 2])
    pred = predict(arch, H100, p, o, b, t, model=roofline())
    for i in range(p.size):
        steps = [step_s(decode_ops(arch, int(b[i]), c, t)) for c in range(p[i] + 1, p[i] + o[i])]
        assert pred.decode_s[i] == pytest.approx(sum(steps), rel=1e-9, abs=1e-15)
        first = step_s(decode_ops(arch, int(b[i]), p[i] + 1, t))
        assert pred.decode_first_step_s[i] == pytest.approx(first, rel=1e-12)
        if o[i] > 1:
            assert pred.decode_last_step_s[i] == pytest.approx(steps[-1], rel=1e-12)
            assert pred.decode_step_s[i] == pytest.approx(np.mean(steps), rel=1e-9)


def test_vectorised_equals_one_call_per_request():
    p, o, b = np.array([[1], [129], [4000]]), np.array([1, 33, 200]), 2  # broadcast to (3, 3)
    pred = predict(MOE, H100, p, o, b, 1, model=roofline())
    assert pred.total_s.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            one = predict(MOE, H100, int(p[i, 0]), int(o[j]), b, 1, model=roofline())
            assert pred.total_s[i, j] == pytest.approx(float(one.total_s), rel=1e-12)
            assert pred.prefill_by_class["gemm"][i, j] == pytest.approx(float(one.prefill_by_class["gemm"]))


def test_totals_tokens_per_second_cost_and_energy():
    pred = predict(LLAMA, H100, 100, 50, 4, 2, model=roofline(), price_per_hour_usd=10.0)
    assert pred.total_s == pytest.approx(pred.prefill_s + pred.decode_s)
    assert pred.prefill_s == pytest.approx(phase_time(pred.prefill_by_class, UNIT))
    assert pred.tokens_per_s == pytest.approx(4 * 50 / pred.total_s)
    assert pred.cost_usd == pytest.approx(pred.total_s * 2 * 10.0 / 3600)
    assert pred.energy_j == pytest.approx(pred.total_s * 2 * H100.board_power_w)
    assert pred.n_gpus == 2 and pred.power_source == "datasheet board power"


def test_coefficients_scale_classes_and_add_fixed_costs():
    base = predict(LLAMA, H100, 256, 10, 1, 1, model=roofline())
    coef = {"gemm": 2.0, "prefill_fixed_s": 0.01, "decode_fixed_s": 0.001}
    fitted = predict(LLAMA, H100, 256, 10, 1, 1, model=roofline(), coefficients=coef)
    assert fitted.prefill_s == pytest.approx(base.prefill_s + base.prefill_by_class["gemm"] + 0.01)
    assert fitted.decode_s == pytest.approx(base.decode_s + base.decode_by_class["gemm"] + 9 * 0.001)
    assert fitted.decode_first_step_s > base.decode_first_step_s + 0.001
    assert fitted.fit == "given coefficients" and base.fit is None
    with pytest.raises(UserError, match="gemmm"):
        predict(LLAMA, H100, 1, 1, model=roofline(), coefficients={"gemmm": 1.0})
    with pytest.raises(UserError, match="decode_fixed_s"):
        predict(LLAMA, H100, 1, 1, model=roofline(), coefficients={"decode_fixed_s": -1.0})


def test_memory_parts_and_the_tp_rule():
    mem = memory_per_gpu(LLAMA, 2, 100, 28, 1)
    assert mem.kv_cache_bytes == 2 * 128 * LLAMA.kv_bytes_per_token()
    assert weight_bytes_per_gpu(LLAMA, 1) == LLAMA.weight_bytes()
    lookup = 2 * LLAMA.vocab * LLAMA.hidden  # the embedding table is replicated; the rest is split
    assert weight_bytes_per_gpu(LLAMA, 4) == (LLAMA.weight_bytes() - lookup) / 4 + lookup
    assert valid_tps(LLAMA) == [1, 2, 4, 8]
    assert valid_tps(LLAMA.with_(n_kv_heads=1)) == [1]  # MQA: kv heads cannot be split
    assert valid_tps(LLAMA.with_(n_heads=12, n_kv_heads=12)) == [1, 2, 4]
    t = smallest_fitting_tp(BIG, H100, 1, 512, 512)
    assert t > 1 and memory_per_gpu(BIG, 1, 512, 512, t).total_bytes <= H100.mem_bytes
    assert memory_per_gpu(BIG, 1, 512, 512, t // 2).total_bytes > H100.mem_bytes
    pred = predict(BIG, H100, 512, 512, model=roofline())
    assert pred.t == t and pred.fits
    forced = predict(BIG, H100, 512, 512, 1, 1, model=roofline())
    assert not forced.fits and any("memory" in w for w in forced.warnings)
    with pytest.raises(UserError, match="does not fit on 8"):
        predict(BIG.with_(n_layers=400), H100, 512, 512, model=roofline())


@pytest.mark.parametrize("kwargs, field", [
    (dict(p=0, o=1), "prompt"), (dict(p=1, o=0), "output"), (dict(p=1, o=1, b=-2), "batch"),
    (dict(p=1.5, o=1), "prompt"), (dict(p=8000, o=194), "max_positions"), (dict(p=1, o=1, t=3), "tp=3"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(UserError, match=field):
        predict(LLAMA, H100, model=roofline(), **kwargs)


def test_profile_reproduces_the_simulator():
    prof = fit_profile(LLAMA, H100, 1, model=roofline())
    assert prof.max_rel_err < 0.03
    assert list(prof.knots_p) == sorted(prof.knots_p) and len(prof.knots_p) >= 2
    assert all(s >= 0 for s in prof.slopes_s_per_token)
    p = np.array(prof.knots_p)
    direct = predict(LLAMA, H100, p, 1, 1, 1, model=roofline()).prefill_s
    np.testing.assert_allclose(prof.f_s(p), direct, rtol=0.03)
    step = predict(LLAMA, H100, prof.c_ref - 1, 2, 1, 1, model=roofline()).decode_s
    assert prof.g_s == pytest.approx(float(step))
    total = predict(LLAMA, H100, 700, 300, 1, 1, model=roofline()).total_s
    assert prof.total_s(700, 300) == pytest.approx(float(total), rel=0.03)


def test_load_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(fits, "FITS_DIR", tmp_path)
    assert fits.load_fit("h100-sxm") is None
    path = tmp_path / "h100-sxm_triton.json"
    path.write_text(json.dumps({"gpu": "h100-sxm", "coefficients": {"gemm": 1.1, "decode_fixed_s": 2e-4}}))
    fit = fits.load_fit("h100-sxm")
    assert fit["gemm"] == 1.1 and fit["path"] == str(path)
    pred = predict(LLAMA, H100, 10, 10, model=roofline(), coefficients=fit)
    assert pred.fit == str(path) and pred.coefficients["decode_fixed_s"] == 2e-4
    path.write_text("{not json")
    with pytest.raises(UserError, match="cannot be read as JSON"):
        fits.load_fit("h100-sxm")
    path.write_text(json.dumps({"coefficients": {"gemm": "fast"}}))
    with pytest.raises(UserError, match="'gemm'"):
        fits.load_fit("h100-sxm")


def test_default_model_falls_back_to_the_roofline(monkeypatch, tmp_path):
    monkeypatch.setattr("simulator.tables.TABLES_DIR", tmp_path)  # no table to measure or derive from
    model = default_model(H100)
    assert isinstance(model, RooflineModel) and model.source == "roofline"


def test_energy_uses_the_p90_of_the_measured_board_power():
    """The calibration's NVML p90 (board under load) sets the power, not the idle-diluted median."""
    from types import SimpleNamespace

    from simulator.predict import board_power

    model = SimpleNamespace(power_w={"median": 170.0, "p90": 650.0}, source="measured", derived_from=None)
    watts, source = board_power(model, H100)
    assert watts == 650.0 and "p90" in source
    assert board_power(SimpleNamespace(power_w=None), H100) == (H100.board_power_w, "datasheet board power")
