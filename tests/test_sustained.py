"""The sustained-compute model: slowdown scaled by FLOP-rate utilisation, reached along the measured onset curve."""
import numpy as np
import pytest

from simulator.ops import Op
from simulator.sustained import class_throttle, extra_s, mean_onset, throttles
from simulator.timemodel import TimeModel, time_by_class

# A GEMM of 2·1000·1000·1000 = 2e9 FLOPs: 1000 us burst (2e12 FLOP/s), 1200 us settled (R = 1.2), the slowdown
# reached linearly over the first 0.1 s (curve points at 0.05 s and 0.1 s, then flat).
OP = {"op": "gemm", "stack": "triton", "shape": {"m": 1000, "n": 1000, "k": 1000}, "burst_us": 1000.0,
      "settled_us": 1200.0, "curve": [[0.05, 1100.0], [0.1, 1200.0], [0.5, 1200.0]]}


def test_onset_mean_is_the_integral_of_the_normalised_curve():
    th = class_throttle(OP)
    assert th.ratio == pytest.approx(1.2)
    assert th.burst_flops_s == pytest.approx(2e12)
    # g rises linearly to 1 at 0.1 s: mean over 0.1 s = 0.5; over 0.5 s = (0.05 + 0.4) / 0.5 = 0.9; past the curve g = 1
    assert th.mean_onset(np.array(0.1)) == pytest.approx(0.5)
    assert th.mean_onset(np.array(0.5)) == pytest.approx(0.9)
    assert th.mean_onset(np.array(1.0)) == pytest.approx((0.45 + 0.5) / 1.0)
    assert 0.0 <= th.mean_onset(np.array(0.0)) <= 0.5  # within the first segment's values


def test_extra_time_scales_with_utilisation_and_is_zero_for_other_classes():
    ths = {"gemm": class_throttle(OP)}
    # same FLOP rate as the measured op: the full 20 %; half the rate: 10 %
    assert float(extra_s(ths, "gemm", 2e9, np.array(1e-3))) == pytest.approx(0.2e-3)
    assert float(extra_s(ths, "gemm", 2e9, np.array(2e-3))) == pytest.approx(0.2e-3)
    assert float(extra_s(ths, "elementwise", 0.0, np.array(1e-3))) == 0.0
    assert mean_onset({}, np.array(1.0)) == 0.0


def test_a_table_without_the_section_has_no_throttle():
    assert throttles({"points": []}, "triton") == {}
    assert set(throttles({"sustained": {"ops": [OP]}}, "triton")) == {"gemm"}
    assert throttles({"sustained": {"ops": [OP]}}, "torch") == {}


class _Flat(TimeModel):
    """Every op takes 1 ms (burst)."""

    def op_time_s(self, op_class, shape):
        return np.asarray(1e-3)


def test_phase_time_adds_the_slowdown_at_the_mean_onset_of_its_burst_time():
    model = _Flat()
    ops = [Op("up", "gemm", OP["shape"], 2e9, 6e6, 100), Op("act", "elementwise", {"bytes": 1e6}, 0, 1e6, 100)]
    assert time_by_class(ops, model) == {"gemm": pytest.approx(0.1), "elementwise": pytest.approx(0.1)}
    model.throttles = {"gemm": class_throttle(OP)}
    by = time_by_class(ops, model)
    # phase burst time 0.2 s: onset mean (0.05 + 0.1) / 0.2 = 0.75; gemm extra 0.1 · 0.2 · 0.75
    assert by["gemm"] == pytest.approx(0.1 + 0.1 * 0.2 * 0.75)
    assert by["elementwise"] == pytest.approx(0.1)


def test_recovery_adds_the_measured_excess_area_scaled_by_the_prefills_onset():
    from simulator.sustained import onset_level, recovery, recovery_factor

    # FAKE runs: excess 0.2 for the first 0.05 s after a 1 s prefill, then 0 (area 0.01 s)
    run = {"prefill_s": 1.0, "curve": [[0.0, 0.2], [0.05, 0.2], [0.0501, 0.0], [0.2, 0.0]]}
    table = {"sustained": {"ops": [OP], "recovery": [run]}}
    rec = recovery(table, "triton")
    th = class_throttle(OP)
    assert float(onset_level(th, np.array(1.0))) == pytest.approx(1.0)
    assert float(rec.extra_s(1.0, np.array(0.5))) == pytest.approx(0.01, rel=1e-2)
    assert float(rec.extra_s(1.0, np.array(0.025))) == pytest.approx(0.005, rel=2e-2)

    class _Model:
        throttles, recovery = {"gemm": th}, rec

    # a 1 s prefill then 0.5 s of decode: 0.01 s more; no prefill to speak of (onset 0): nothing added
    assert float(recovery_factor(_Model, np.array(1.0), np.array(0.5))) == pytest.approx(1.02, rel=1e-3)
    assert float(recovery_factor(_Model, np.array(0.0), np.array(0.5))) == pytest.approx(1.0)
    assert float(recovery_factor(_Flat(), np.array(1.0), np.array(0.5))) == 1.0  # no measured recovery
