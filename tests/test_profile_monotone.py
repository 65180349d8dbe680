"""The simulator's F(p) + g·(o − 1) is fitted under profile_fit's constraints (F(0) ≥ 0, F non-decreasing) for every
model, MoE included, and `idealrt study` reports the form's error against the simulation beside it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.study import PROFILE_P_MAX, mix_arrays, setting, study_rows
from simulator.catalog import ARCHS, get_arch
from simulator.nnls import nonneg_lstsq
from simulator.predict import predict
from simulator.profile import fit_profile, p_grid
from simulator.timemodel import RooflineModel


def _non_decreasing(prof) -> None:
    assert prof.intercept_s >= 0 and min(prof.slopes_s) >= 0, prof
    f = prof.f_s(np.arange(1, PROFILE_P_MAX + 1))
    assert np.all(np.diff(f) >= -1e-12 * f[1:])  # rounding of the hinge sum only


@pytest.mark.parametrize("gpu", ["h200", "h100-sxm"])
def test_mixtral_study_slope_is_not_negative(gpu):
    """The simulator's prefill of mixtral-8x7b falls between p = 1603 and 2048 on these tables: F stays flat there,
    where unconstrained least squares gave a slope of about −27 ms per 1,000 tokens."""
    (row,) = study_rows(["mixtral-8x7b"], [gpu], ["triton"])
    assert row["f_slope_ms_per_1k"] >= 0
    _non_decreasing(row["profile"])
    s = setting(gpu, "triton")
    sim = predict(get_arch("mixtral-8x7b"), s.gpu, np.array([1603, 2048]), 1, 1, row["t"], model=s.model,
                  coefficients=s.coefficients).prefill_s
    assert sim[1] < sim[0]  # the simulator does fall there: the constraint is what keeps F from following it


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(sorted(ARCHS)), gpu=st.sampled_from(["h200", "h100-sxm"]))
def test_every_models_study_profile_is_non_decreasing(name, gpu):
    (row,) = study_rows([name], [gpu], ["triton"])
    if "profile" in row:  # else the model does not fit on 8 GPUs
        assert row["f_slope_ms_per_1k"] >= 0
        _non_decreasing(row["profile"])
    else:
        assert "does not fit" in row["note"]


def test_the_fit_is_unconstrained_least_squares_where_that_is_monotone():
    """A smooth, rising prefill (the roofline's): the same knots and F as least squares without constraints."""
    arch, gpu = get_arch("llama-3.1-8b"), setting("h100-sxm", "triton").gpu
    prof = fit_profile(arch, gpu, 1, model=RooflineModel(gpu), p_max=PROFILE_P_MAX)
    p = p_grid(PROFILE_P_MAX).astype(float)
    y = predict(arch, gpu, p, 1, 1, 1, model=RooflineModel(gpu)).prefill_s
    basis = np.column_stack([np.ones_like(p), p] + [np.maximum(p - k, 0.0) for k in prof.knots])
    w = np.linalg.lstsq(basis / y[:, None], np.ones_like(y), rcond=None)[0]
    np.testing.assert_allclose(prof.f_s(p), basis @ w, rtol=1e-9)
    assert prof.max_rel_err < 0.03


def test_study_reports_the_forms_error_against_the_simulation():
    (row,) = study_rows(["llama-3.1-8b"], ["h200"], ["triton"])
    prof, arch, s = row["profile"], get_arch("llama-3.1-8b"), setting("h200", "triton")
    p, o, w, _ = mix_arrays(arch)
    form = float(w @ prof.total_s(p, o))
    assert row["form_error_pct"] == pytest.approx(100 * (form - row["runtime_s"]) / row["runtime_s"], rel=1e-12)
    every_p = np.arange(1, PROFILE_P_MAX + 1)
    sim = predict(arch, s.gpu, every_p, 1, 1, row["t"], model=s.model, coefficients=s.coefficients).prefill_s
    assert row["f_max_error_pct"] == pytest.approx(100 * np.max(np.abs(prof.f_s(every_p) / sim - 1)), rel=1e-12)
    assert row["f_max_error_pct"] >= 100 * prof.max_rel_err  # the fit's own grid is a subset of every p


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(3, 40), cols=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_nonneg_lstsq_meets_the_optimality_conditions(rows, cols, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(rows, cols)) * rng.uniform(0.1, 1e3, size=cols), rng.normal(size=rows)
    c = nonneg_lstsq(x, y)
    grad = x.T @ (x @ c - y)  # Karush-Kuhn-Tucker: c ≥ 0, grad ≥ 0, grad = 0 where c > 0
    tol = 1e-7 * np.linalg.norm(x, axis=0) * (np.linalg.norm(y) + 1)
    assert np.all(c >= 0) and np.all(grad >= -tol) and np.all(np.where(c > 0, np.abs(grad) <= tol, True))


def test_nonneg_lstsq_is_least_squares_when_that_is_non_negative():
    x = np.column_stack([np.ones(5), np.arange(5.0)])
    y = 2 + 3 * np.arange(5.0) + np.array([0.1, -0.1, 0.0, 0.1, -0.1])
    np.testing.assert_array_equal(nonneg_lstsq(x, y), np.linalg.lstsq(x, y, rcond=None)[0])
    np.testing.assert_allclose(nonneg_lstsq(x, 5 - np.arange(5.0)), [3.0, 0.0])  # falling data: flat at the mean
