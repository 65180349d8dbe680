"""Denoised runtime: a known curve under FAKE noise, queuing and outliers (high and lucky-low) is recovered
by the low-quantile envelope; bad log rows give one-line errors with their line number."""
from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.denoise import LatencyLog, denoise, read_log, summary
from idealrt.cli import main
from simulator.errors import UserError
from simulator.profile import ProfileForm

# a measured-like shape: 300 ms API overhead, prefill flat to p = 512 then 40 us/token, 20 ms per output token
TRUE = ProfileForm("true", (512.0,), 0.3, (0.0, 4e-5), 0.0, 0.02)


def noisy_log(n=800, seed=1) -> LatencyLog:
    """FAKE log: log-uniform prompt lengths; the true curve x (1 + |N(0, 3%)|), queuing delays on 30% of rows, 1% slow outliers x3,
    and 0.5% lucky rows 20% under the curve."""
    rng = np.random.default_rng(seed)
    p = np.round(np.exp(rng.uniform(0, np.log(4000), n)))  # prompt lengths skew short, as in real traffic
    o = rng.integers(1, 300, n).astype(float)
    true = TRUE(p, o)
    y = true * (1 + np.abs(rng.normal(0, 0.03, n)))
    y += (rng.random(n) < 0.3) * rng.exponential(0.3, n)
    y[rng.random(n) < 0.01] *= 3
    lucky = rng.random(n) < 0.005
    y[lucky] = 0.8 * true[lucky]
    return LatencyLog(p, o, y)


def test_known_curve_is_recovered_despite_noise_and_outliers():
    log = noisy_log()
    form = denoise(log)
    p, o = np.meshgrid([1, 256, 512, 1024, 2048, 3999], [1, 50, 299])
    err = np.abs(form(p, o) / TRUE(p, o) - 1)
    assert np.median(err) < 0.01 and np.max(err) < 0.04  # worst where rows are few: long prompts, o = 1
    assert form.g_s == pytest.approx(TRUE.g_s, rel=0.01)
    assert form.intercept_s == pytest.approx(TRUE.intercept_s, rel=0.03)
    assert len(form.knots) == 1 and abs(form.knots[0] - 512) < 100
    res = summary(form, log)
    assert res["below_envelope_share"] == pytest.approx(0.05, abs=0.02)
    assert res["median_excess_pct"] > 0


def test_the_minimum_would_be_fooled_by_a_lucky_row():
    log = noisy_log()
    lowest = np.argmin(log.latency_s / TRUE(log.p, log.o))
    assert log.latency_s[lowest] < 0.85 * TRUE(log.p, log.o)[lowest]  # a lucky row exists ...
    form = denoise(log)
    assert form(log.p[lowest], log.o[lowest]) > 0.95 * TRUE(log.p, log.o)[lowest]  # ... and is ignored


def write(tmp_path, text):
    path = tmp_path / "log.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, match", [
    ("prompt_tokens,output_tokens\n5,3\n", "no column latency_s"),
    ("prompt_tokens,output_tokens,latency_s\n5,3,0.1\n5,3\n", "line 3: 'latency_s' is missing"),
    ("prompt_tokens,output_tokens,latency_s\n5,3,0.1\n5,x,0.2\n", "line 3: 'output_tokens' is 'x', not a number"),
    ("prompt_tokens,output_tokens,latency_s\n-5,3,0.1\n", "line 2: 'prompt_tokens' is -5; it must be a whole"),
    ("prompt_tokens,output_tokens,latency_s\n5,3,-0.1\n", "line 2: 'latency_s' is -0.1; it must be a number > 0"),
    ("prompt_tokens,output_tokens,latency_s\n5,2.5,0.1\n", "'output_tokens' is 2.5"),
    ("prompt_tokens,output_tokens,latency_s\n", "no data rows"),
])
def test_bad_rows_are_named(tmp_path, text, match):
    with pytest.raises(UserError, match=match):
        read_log(write(tmp_path, text))


def test_cli_denoise(tmp_path, capsys):
    log = noisy_log(n=300, seed=2)
    rows = "".join(f"{int(a)},{int(b)},{c:.6f}\n" for a, b, c in zip(log.p, log.o, log.latency_s))
    path = write(tmp_path, "prompt_tokens,output_tokens,latency_s\n" + rows)
    assert main(["denoise", path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows"] == 300 and res["g_s_per_token"] == pytest.approx(TRUE.g_s, rel=0.03)
    assert main(["denoise", path, "--quantile", "0.7"]) == 2
    assert "--quantile is 0.7" in capsys.readouterr().err
    bad = write(tmp_path, "prompt_tokens,output_tokens,latency_s\n5,3,abc\n")
    assert main(["denoise", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2: 'latency_s' is 'abc'" in err


@pytest.mark.parametrize("quadratic", [False, True])
def test_linear_program_gives_the_cvxpy_fit(quadratic):
    """The LP solver (HiGHS) finds the fit the earlier cvxpy formulation of the same problem finds."""
    import cvxpy as cp

    from calibration.profile_fit import fit_knots, solve_form

    log, tau = noisy_log(n=400, seed=5), 0.05
    form = denoise(log, tau, quadratic=quadratic)

    def loss(r):
        return cp.sum(cp.maximum(tau * r, (tau - 1) * r))

    penalty = np.log(log.p.size) / (2 * log.p.size)
    ref = fit_knots(log.p, lambda knots, near: solve_form(log.p, log.o, log.latency_s, knots, quadratic, loss, "cvx"),
                    2, penalty)
    assert form.knots == ref.knots
    p, o = np.meshgrid(np.linspace(1, log.p.max(), 50), [1, 100, 299])
    np.testing.assert_allclose(form(p, o), ref(p, o), rtol=1e-4)
    assert form.g_s == pytest.approx(ref.g_s, rel=1e-4)


def test_merged_rows_give_the_exact_optimum():
    """Portnoy-Koenker preprocessing (many rows) reaches the optimum of one LP over every row."""
    from calibration import quantile_fit as qf
    from calibration.denoise import segment_basis

    log, tau = noisy_log(n=3 * qf.DIRECT_ROWS, seed=6), 0.05
    z, _, _ = segment_basis(log.p, log.o, [512.0], False)
    y = log.latency_s / np.median(log.latency_s)
    theta, loss = qf.quantile_fit(z, y, tau)
    direct = qf._solve_dual(z, y, tau)
    assert loss == pytest.approx(qf.pinball(y - z @ direct, tau), rel=1e-9)
    np.testing.assert_allclose(z @ theta, z @ direct, rtol=1e-6, atol=1e-9)
    _, loss2 = qf.quantile_fit(z, y, tau, guess=np.full(y.size, np.median(y)))  # a poor guess still gets there
    assert loss2 == pytest.approx(loss, rel=1e-9)


def test_long_log_fits_every_row_with_knots_from_a_subsample():
    """A log longer than SEARCH_ROWS: knots from a subsample, then the exact fit over all rows with them."""
    from calibration import denoise as dn

    log = noisy_log(n=dn.SEARCH_ROWS + 3000, seed=7)
    form = denoise(log)
    assert abs(form.knots[0] - 512) < 100 and form.g_s == pytest.approx(TRUE.g_s, rel=0.01)
    z, _, _ = dn.segment_basis(log.p, log.o, form.knots, False)
    y = log.latency_s / np.median(log.latency_s)
    from calibration.quantile_fit import _solve_dual
    direct = z @ _solve_dual(z, y, dn.QUANTILE) * np.median(log.latency_s)
    np.testing.assert_allclose(form(log.p, log.o), direct, rtol=1e-6)
