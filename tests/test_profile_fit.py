"""The per-model profile T(p, o) = F(p) + g·(o − 1): known curves are recovered, the constraints hold, the
linear form's breakdown shows in its error, and degenerate grids are refused. All data here is FAKE."""
from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.profile_fit import profile
from simulator.profile import ProfileForm
from idealrt.cli import main
from simulator.errors import UserError

PS = np.array([1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192])
OS = np.array([1, 16, 64, 256])
# flat while latency-bound, then linear from p = 512, a small p² term (made-up numbers)
TRUE = ProfileForm("true", (512.0,), 0.02, (0.0, 3e-5), 1e-9, 0.006)


def grid(form=TRUE):
    p, o = (a.ravel() for a in np.meshgrid(PS, OS))
    return p, o, form(p, o)


def by_name(fits):
    return {f["form"]["name"]: f for f in fits}


def test_piecewise_quadratic_recovers_the_curve():
    fits = by_name(profile(*grid()))
    quad = fits["piecewise+quadratic"]
    form = quad["form"]
    assert 512.0 in form["knots"]
    assert form["g_s"] == pytest.approx(TRUE.g_s, rel=1e-3)
    assert form["quad_s"] == pytest.approx(TRUE.quad_s, rel=0.02)
    assert form["intercept_s"] == pytest.approx(TRUE.intercept_s, rel=1e-3)
    assert quad["max_pct"] < 0.05


def test_linear_form_breaks_down_and_the_error_shows_where():
    p, o, y = grid(ProfileForm("true", (512.0,), 0.02, (0.0, 3e-5), 0.0, 0.006))
    fits = by_name(profile(p, o, y))
    assert fits["piecewise"]["form"]["knots"] == [512.0] and fits["piecewise"]["max_pct"] < 0.05
    assert fits["linear"]["max_pct"] > 5.0  # a straight F misses the flat part
    worst = fits["linear"]["worst_by_p"]
    assert set(worst) == set(PS.tolist()) and max(worst, key=worst.get) in (1, 16, 512)


def test_constraints_hold_on_a_decreasing_curve():
    p, o = (a.ravel() for a in np.meshgrid(PS, OS))
    y = 0.05 - 4e-6 * p + 0.003 * (o - 1) + 0.001  # F would decrease: the fit must not follow it
    for fit in profile(p, o, y):
        form = fit["form"]
        assert form["intercept_s"] >= 0 and form["g_s"] >= 0 and form["quad_s"] >= 0
        assert min(form["slopes_s"]) >= 0


@pytest.mark.parametrize("p, o, match", [
    ([512] * 6, [1, 2, 4, 8, 16, 32], "all queries have p=512"),
    ([1, 2, 4, 8, 16, 32], [8] * 6, "all queries have o=8"),
    ([1, 2, 4], [1, 2, 3], "at least 4 queries"),
])
def test_degenerate_grids_are_refused(p, o, match):
    with pytest.raises(UserError, match=match):
        profile(np.array(p), np.array(o), np.ones(len(p)))


def test_cli_profile_measured(tmp_path, capsys):
    p, o, y = grid()
    path = tmp_path / "m.jsonl"
    rows = [{"arch": "llama-3.1-8b", "gpu": "h100-sxm", "t": 1, "b": 1, "p": int(a), "o": int(b),
             "prefill_s": float(TRUE.prefill_s(a)), "decode_s": float(c - TRUE.prefill_s(a)), "total_s": float(c),
             "split": "fit", "engine": "idealrt", "backend": "triton"} for a, b, c in zip(p, o, y)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["profile", "--model", "llama-3.1-8b", "--measurements", str(path), "--json"]) == 0
    (res,) = json.loads(capsys.readouterr().out)
    assert res["source"] == "measured" and res["queries"] == len(rows)
    assert by_name(res["fits"])["piecewise+quadratic"]["form"]["g_s"] == pytest.approx(TRUE.g_s, rel=1e-3)
    assert main(["profile", "--model", "llama-3.1-8b", "--measurements", str(path), "--gpu", "h200"]) == 2
    assert "no 'triton' measurements of llama-3.1-8b" in capsys.readouterr().err


def test_cli_profile_simulated_prints_every_form(capsys):
    assert main(["profile", "--model", "llama-3.1-8b", "--simulated", "--prompts", "1,64,512,2048,8192",
                 "--outputs", "1,32,128"]) == 0
    out = capsys.readouterr().out
    for name in ("linear", "piecewise", "piecewise+quadratic", "worst absolute % error"):
        assert name in out
