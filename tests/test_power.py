"""Board power per op class (simulator/power.py) on a synthetic op_power section (tests/data), hand-computed:
the activity model fitted to the points, the fallback chain, the energy of a phase, predict's energy fields with and
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
    fit_activity,
    from_section,
    phase_energy,
    power_model,
    times_and_energy,
    utilisation,
)
from simulator.predict import predict
from simulator.timemodel import TimeModel, phase_time

SECTION = json.loads((Path(__file__).parent / "data" / "op_power_synthetic.json").read_text())
H100 = get_gpu("h100-sxm")


def gemv(count: float = 1) -> Op:
    """The fixture's lowest GEMM point: 1 x 4096 x 4096."""
    return _op("g", "gemm", {"m": 1, "n": 4096, "k": 4096}, count)


def at(op: Op, u_mem: float) -> float:
    """Seconds a run of `op` takes when it uses the fraction u_mem of the H100's HBM bandwidth."""
    return float(op.bytes) / H100.hbm_bw_bytes_s / u_mem


def by_hand(op: Op, seconds: float, a: float, b: float) -> float:
    """min(700, 100 + a · u_mem + b · u_flop) on the H100's datasheet peaks."""
    u_mem, u_flop = float(op.bytes) / H100.hbm_bw_bytes_s / seconds, float(op.flops) / H100.peak_bf16_flops / seconds
    return min(700.0, 100.0 + a * u_mem + b * u_flop)


def elementwise(nbytes: float, count: float = 1) -> Op:
    return _op("e", "elementwise", {"bytes": nbytes, "t": 1}, count)


class ConstantModel(TimeModel):
    """Every op class a fixed time per run; `table` carries the op_power section as a measured table does."""

    source = "constant test model"

    def __init__(self, seconds: dict[str, float], section: dict | None, stack: str = "triton"):
        super().__init__()
        self.seconds, self.stack, self.gpu = seconds, stack, H100
        self.table = {"points": [], "derived": None, **({"op_power": section} if section is not None else {})}

    def op_time_s(self, op_class, shape):
        return np.asarray(self.seconds.get(op_class, 1e-6))


@pytest.mark.parametrize("shape, seconds", [({"m": 1, "n": 4096, "k": 4096}, 40e-6),
                                            ({"m": 256, "n": 8192, "k": 1024}, 30e-6),
                                            ({"m": 8192, "n": 8192, "k": 8192}, 1.5e-3)])
def test_the_fit_recovers_the_activity_model_the_points_follow(shape, seconds):
    """Triton GEMM points lie on 100 + 500 u_mem + 300 u_flop: the fit gives it back, and it holds between them."""
    op = _op("g", "gemm", shape, 1)
    curve = from_section(SECTION, "triton", H100).curves[("triton", "gemm")]
    assert (curve.a_w, curve.b_w) == (pytest.approx(500.0), pytest.approx(300.0))
    assert float(from_section(SECTION, "triton", H100).watts(op, seconds)) == pytest.approx(by_hand(op, seconds, 500, 300))


def test_power_is_capped_at_the_board_power():
    op = gemv()
    assert float(from_section(SECTION, "triton", H100).watts(op, at(op, 5.0))) == pytest.approx(H100.board_power_w)


def test_utilisation_is_bytes_and_flops_over_the_peaks():
    u_mem, u_flop = utilisation(989.4e12, 3.35e6, 4e-6, H100)  # 1 µs of HBM, 1 s of the dense peak, in 4 µs
    assert (float(u_mem), float(u_flop)) == (pytest.approx(0.25), pytest.approx(0.25e6))


def test_fit_activity_keeps_capped_points_out_of_the_slope():
    """Two points on 100 + 1000 u_mem and one at the 700 W cap far past it: the slope stays 1000."""
    u_mem, watts = np.array([0.1, 0.3, 2.0]), np.array([200.0, 400.0, 700.0])
    a, b = fit_activity(u_mem, np.zeros(3), watts, 100.0, 700.0)
    assert a == pytest.approx(1000.0) and b == 0.0


def test_a_class_without_points_takes_the_documented_neighbour():
    triton, torch = from_section(SECTION, "triton", H100), from_section(SECTION, "torch", H100)
    op = _op("g", "gemm", {"m": 64, "n": 4096, "k": 4096}, 1)
    assert float(torch.watts(op, at(op, 0.5))) == pytest.approx(450.0)  # its own stack's point, not triton's curve
    ew = elementwise(1e4)
    assert float(triton.watts(ew, at(ew, 0.5))) == pytest.approx(350.0)  # the other stack's elementwise
    norm = _op("n", "add_norm", {"rows": 10, "hidden": 1250}, 1)
    assert float(torch.watts(norm, at(norm, 0.25))) == pytest.approx(360.0)  # triton's add_norm
    rope = _op("r", "rope_kv_write", {"rows": 25, "d": 100}, 1)  # no points: its fallback class, elementwise
    assert float(triton.watts(rope, at(rope, 0.2))) == pytest.approx(200.0)
    allreduce = _op("a", "allreduce", {"bytes": 1e3, "t": 2}, 1)  # never measured: the element-wise curve
    assert float(triton.watts(allreduce, at(allreduce, 0.8))) == pytest.approx(500.0)
    assert triton.curve_key("decode_attn") == ("torch", "elementwise")
    only_gemm = from_section({**SECTION, "points": SECTION["points"][:3]}, "triton", H100)
    assert float(only_gemm.watts(allreduce, 1e-6)) == pytest.approx(float(np.median([p["watts"] for p in SECTION["points"][:3]])))


def test_phase_energy_by_hand():
    """GEMV 2 runs x 1 ms (u_mem = 0.01: 105 W), elementwise 1 ms (1e4 bytes: ~101.5 W), host 5 ms: idle 100 W
    over the 2 ms the GPU waits."""
    power = from_section(SECTION, "triton", H100)
    model = ConstantModel({"gemm": 1e-3, "elementwise": 1e-3, "launch": 5e-3}, SECTION)
    gemm_op, ew = gemv(count=2), elementwise(1e4)
    ops = [gemm_op, ew, Op("launch", "launch", {"mode": "eager"}, 0.0, 0.0, 1)]
    times, joules = times_and_energy(ops, model, power)
    gemm_j, ew_j = 2e-3 * by_hand(gemm_op, 1e-3, 500, 300), 1e-3 * by_hand(ew, 1e-3, 500, 0)
    assert times["gemm"] == pytest.approx(2e-3) and joules["gemm"] == pytest.approx(gemm_j)
    assert joules["elementwise"] == pytest.approx(ew_j) and "launch" not in joules
    unit = check_coefficients({})
    out = phase_energy(times, joules, unit, phase_time(times, unit), power.idle_w)
    assert out["idle"] == pytest.approx(0.2) and sum(out.values()) == pytest.approx(gemm_j + ew_j + 0.2)
    coef = check_coefficients({"gemm": 1.5})  # gemm 3 ms busy at the same power; the host still 5 ms
    out = phase_energy(times, joules, coef, phase_time(times, coef), power.idle_w)
    assert out["gemm"] == pytest.approx(1.5 * gemm_j) and out["idle"] == pytest.approx(0.1)
    assert sum(out.values()) == pytest.approx(1.5 * gemm_j + ew_j + 0.1)


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
    model = ConstantModel({}, SECTION)  # every run 1 µs
    arch = get_arch("llama-3.2-1b")
    pred = predict(arch, H100, 64, 8, 1, 1, model=model)
    assert float(pred.energy_by_class["idle"]) == pytest.approx(0.0, abs=1e-12)
    norm = lambda rows, count: _op("n", "add_norm", {"rows": rows, "hidden": arch.hidden}, count)
    layers = 2 * arch.n_layers  # per layer 2 norms over every token; the final norm over the last token only
    one_token = by_hand(norm(1, 1), 1e-6, 1040, 0)
    want = 1e-6 * (layers * by_hand(norm(64, 1), 1e-6, 1040, 0) + one_token + 7 * (layers + 1) * one_token)
    assert float(pred.energy_by_class["add_norm"]) == pytest.approx(want)


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
    ("points[0].table_us", {**SECTION, "points": [{**SECTION["points"][0], "table_us": 0}]}),
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
    assert 100.0 <= r["power_w"] <= 600.0  # between the fixture's idle and highest kernel power


def test_predictor_gives_predicts_energy():
    from simulator.predictor import Predictor

    model = ConstantModel({"gemm": 2e-5, "launch": 3e-3}, SECTION)
    arch, coef = get_arch("llama-3.2-1b"), {"decode_fixed_s": 1e-4, "prefill_fixed_s": 2e-3}
    got = Predictor(arch, H100, 1, model=model, coefficients=coef)(100, 17, 2)
    want = predict(arch, H100, 100, 17, 2, 1, model=model, coefficients=coef)
    assert got.energy_j == pytest.approx(float(want.energy_j), rel=1e-9)
    assert got.total_s == pytest.approx(float(want.total_s), rel=1e-9)


def test_shipped_h200_energy_adds_up_between_idle_and_the_board_limit():
    """On the shipped H200 table (op_power and sustained throttling measured): classes and idle sum to the energy,
    and the mean power lies between the idle board and its limit, long compute-bound prefills included."""
    import idealrt

    pred = idealrt.predict("llama-3.1-8b", "h200", prompt=[1, 512, 8000], output=[256, 16, 1], batch=[1, 8, 4])
    assert pred.power_source.startswith(SOURCE)
    np.testing.assert_allclose(sum(pred.energy_by_class.values()), pred.energy_j, rtol=1e-9)
    idle = power_model(idealrt.api.model_and_fit(get_gpu("h200"), "triton", True)[0]).idle_w
    assert np.all(pred.power_w > idle) and np.all(pred.power_w <= get_gpu("h200").board_power_w + 1e-9)


def test_a_resumed_runs_power_keeps_the_larger_sample_and_every_class():
    from calibration.power import merge_power

    sweep = {"median": 260.4, "p90": 451.6, "samples": 593, "by_op": {"gemm_fp8": {"median": 253.5}}}
    resume = {"median": 85.3, "p90": 92.0, "samples": 6, "by_op": {"strided": {"median": 85.3}}}
    merged = merge_power(sweep, resume)
    assert merged["p90"] == 451.6 and set(merged["by_op"]) == {"gemm_fp8", "strided"}
    assert merge_power(resume, sweep)["p90"] == 451.6 and merge_power(None, resume) == resume
