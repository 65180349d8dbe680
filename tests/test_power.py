"""Board power per op class (simulator/power.py) on a synthetic op_power section (tests/data), hand-computed:
interpolation in log intensity, the fallback chain, the energy of a phase, predict's energy fields with and
without the section."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from simulator.catalog import get_arch
from simulator.errors import UserError
from simulator.fits import check_coefficients
from simulator.gpus import get_gpu
from simulator.ops import Op, _op
from simulator.power import (
    SOURCE,
    from_section,
    phase_energy,
    power_model,
    times_and_energy,
)
from simulator.predict import predict
from simulator.timemodel import TimeModel, phase_time

SECTION = json.loads((Path(__file__).parent / "data" / "op_power_synthetic.json").read_text())
H100 = get_gpu("h100-sxm")


def gemm(n: float, count: float = 1) -> Op:
    """A square GEMM: 2n³ FLOPs over 6n² bytes, so its intensity is n / 3."""
    return _op("g", "gemm", {"m": n, "n": n, "k": n}, count)


def elementwise(nbytes: float, count: float = 1) -> Op:
    return _op("e", "elementwise", {"bytes": nbytes, "t": 1}, count)


class ConstantModel(TimeModel):
    """Every op class a fixed time per run; `table` carries the op_power section as a measured table does."""

    source = "constant test model"

    def __init__(self, seconds: dict[str, float], section: dict | None, stack: str = "triton"):
        super().__init__()
        self.seconds, self.stack = seconds, stack
        self.table = {"points": [], "derived": None, **({"op_power": section} if section is not None else {})}

    def op_time_s(self, op_class, shape):
        return np.asarray(self.seconds.get(op_class, 1e-6))


@pytest.mark.parametrize("n, watts", [(3, 300.0), (30, 400.0), (300, 500.0), (3000, 550.0), (30000, 600.0),
                                      (1, 300.0), (3e5, 600.0)])  # x = log10(n / 3): 0, 1, 2, 3, 4; clamped ends
def test_watts_are_piecewise_linear_in_log_intensity_and_clamped(n, watts):
    assert float(from_section(SECTION, "triton").watts(gemm(n))) == pytest.approx(watts)


def test_a_class_without_points_takes_the_documented_neighbour():
    triton, torch = from_section(SECTION, "triton"), from_section(SECTION, "torch")
    assert float(torch.watts(gemm(30))) == pytest.approx(450.0)  # its own stack's single point, not triton's
    assert float(triton.watts(elementwise(1e4))) == pytest.approx(250.0)  # the other stack's elementwise, x = -4
    norm = _op("n", "add_norm", {"rows": 10, "hidden": 1250}, 1)
    assert float(torch.watts(norm)) == pytest.approx(360.0)  # triton's add_norm: two points at one x, averaged
    rope = _op("r", "rope_kv_write", {"rows": 25, "d": 100}, 1)  # 1e4 bytes; no points: its fallback class
    assert float(triton.watts(rope)) == pytest.approx(250.0)
    allreduce = _op("a", "allreduce", {"bytes": 1e3, "t": 2}, 1)  # never measured: the element-wise curve
    assert float(triton.watts(allreduce)) == pytest.approx(300.0)
    assert triton.curve_key("decode_attn") == ("torch", "elementwise")
    only_gemm = from_section({**SECTION, "points": SECTION["points"][:3]}, "triton")
    assert float(only_gemm.watts(allreduce)) == pytest.approx(500.0)  # median of the measured points


def test_phase_energy_by_hand():
    """gemm 2 runs x 1 ms at 400 W, elementwise 1 ms at 250 W, host 5 ms: idle 100 W over the 2 ms the GPU waits."""
    power = from_section(SECTION, "triton")
    model = ConstantModel({"gemm": 1e-3, "elementwise": 1e-3, "launch": 5e-3}, SECTION)
    ops = [gemm(30, count=2), elementwise(1e4), Op("launch", "launch", {"mode": "eager"}, 0.0, 0.0, 1)]
    times, joules = times_and_energy(ops, model, power)
    assert times["gemm"] == pytest.approx(2e-3) and joules["gemm"] == pytest.approx(0.8)
    assert joules["elementwise"] == pytest.approx(0.25) and "launch" not in joules
    unit = check_coefficients({})
    out = phase_energy(times, joules, unit, phase_time(times, unit), power.idle_w)
    assert out["idle"] == pytest.approx(0.2) and sum(out.values()) == pytest.approx(1.25)
    coef = check_coefficients({"gemm": 1.5})  # gemm 3 ms busy at the same power; the host still 5 ms
    out = phase_energy(times, joules, coef, phase_time(times, coef), power.idle_w)
    assert out["gemm"] == pytest.approx(1.2) and out["idle"] == pytest.approx(0.1)
    assert sum(out.values()) == pytest.approx(1.55)


def flat(watts: float) -> dict:
    """The fixture with every point and the idle board at one power."""
    return {**SECTION, "idle_w": watts, "points": [{**p, "watts": watts} for p in SECTION["points"]]}


@pytest.mark.parametrize("t", [1, 2])
def test_energy_is_time_times_power_when_every_power_is_the_same(t):
    """At one power everywhere, energy = total time x t GPUs x power, whatever the host and fixed costs add."""
    model = ConstantModel({"gemm": 2e-4, "launch": 1e-5}, flat(321.0))
    pred = predict(get_arch("llama-3.2-1b"), H100, [16, 900], [1, 40], 2, t, model=model, host="eager",
                   coefficients={"gemm": 1.2, "prefill_fixed_s": 1e-3, "decode_fixed_s": 1e-4})
    assert pred.power_source.startswith(SOURCE)
    np.testing.assert_allclose(pred.energy_j, pred.total_s * t * 321.0, rtol=1e-12)
    np.testing.assert_allclose(pred.prefill_energy_j, pred.prefill_s * t * 321.0, rtol=1e-12)
    np.testing.assert_allclose(pred.power_w, 321.0, rtol=1e-12)
    np.testing.assert_allclose(sum(pred.energy_by_class.values()), pred.energy_j, rtol=1e-12)
    assert pred.energy_by_class["idle"][1] > 0  # fixed costs and host-bound steps: the board idles


def test_energy_sums_each_op_at_its_power():
    """Graph launches and no fixed costs: no idle time; each class's joules are its time at its power."""
    model = ConstantModel({}, SECTION)
    pred = predict(get_arch("llama-3.2-1b"), H100, 64, 8, 1, 1, model=model)
    assert float(pred.energy_by_class["idle"]) == pytest.approx(0.0, abs=1e-12)
    n_layers = get_arch("llama-3.2-1b").n_layers
    prefill_norms, decode_norms = 2 * n_layers + 1, 7 * (2 * n_layers + 1)  # per layer 2, plus the final norm
    by_hand = (prefill_norms + decode_norms) * 1e-6 * 360.0
    assert float(pred.energy_by_class["add_norm"]) == pytest.approx(by_hand)


def test_without_the_section_energy_is_time_times_one_power():
    pred = predict(get_arch("llama-3.2-1b"), H100, 64, 8, 1, 1, model=ConstantModel({}, None))
    assert pred.power_source == "datasheet board power" and pred.energy_by_class == {}
    assert float(pred.energy_j) == pytest.approx(float(pred.total_s) * H100.board_power_w)
    derived = ConstantModel({}, SECTION)
    derived.table["derived"] = {"from": "h100-sxm.json"}  # power measured on another GPU does not carry over
    assert power_model(derived) is None


@pytest.mark.parametrize("field, section", [
    ("idle_w", {**SECTION, "idle_w": -5}),
    ("points[0].watts", {**SECTION, "points": [{**SECTION["points"][0], "watts": "hot"}]}),
    ("points[0]", {**SECTION, "points": [{"op": "nope", "shape": {}}]}),
    ("points", {**SECTION, "points": None}),
])
def test_a_malformed_section_is_refused_by_field(field, section):
    with pytest.raises(UserError, match=re.escape(f"op_power.{field}" if field != "points" else "'points' list")):
        power_model(ConstantModel({}, section))


def test_predict_json_carries_the_energy_fields(tmp_path, monkeypatch, capsys):
    """On a copy of the shipped H100 table with the synthetic section: the JSON energy fields and their source."""
    from idealrt.cli import main
    from simulator import fits

    table = json.loads((Path(__file__).parents[1] / "calibration" / "tables" / "h100-sxm.json").read_text())
    (tmp_path / "h100-sxm.json").write_text(json.dumps({**table, "op_power": SECTION}))
    monkeypatch.setattr("simulator.tables.TABLES_DIR", tmp_path)
    monkeypatch.setattr(fits, "FITS_DIR", tmp_path)  # no fit
    assert main(["predict", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", "--prompt", "100", "--output", "9",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["power_source"].startswith(SOURCE)
    assert r["energy_j"] == pytest.approx(r["prefill_energy_j"] + r["decode_energy_j"])
    assert r["energy_j"] == pytest.approx(sum(r["energy_by_class"].values()))
    assert {"gemm", "decode_attn", "idle"} <= set(r["energy_by_class"])
    assert r["power_w"] == pytest.approx(r["energy_j"] / r["total_s"])
    assert 300.0 <= r["power_w"] <= 600.0  # between the fixture's lowest and highest kernel power


def test_predictor_gives_predicts_energy():
    from simulator.predictor import Predictor

    model = ConstantModel({"gemm": 2e-5, "launch": 3e-3}, SECTION)
    arch, coef = get_arch("llama-3.2-1b"), {"decode_fixed_s": 1e-4, "prefill_fixed_s": 2e-3}
    got = Predictor(arch, H100, 1, model=model, coefficients=coef)(100, 17, 2)
    want = predict(arch, H100, 100, 17, 2, 1, model=model, coefficients=coef)
    assert got.energy_j == pytest.approx(float(want.energy_j), rel=1e-9)
    assert got.total_s == pytest.approx(float(want.total_s), rel=1e-9)
