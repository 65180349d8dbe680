"""The simulator fit recovers known coefficients from synthetic data, keeps its bounds, chooses spread-out
queries, and refuses degenerate or infeasible input with a one-line error. All data here is FAKE."""
from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import fit
from idealrt import cli_fit
from calibration.fit import ClassTimes, apply_coefficients
from idealrt.cli import main
from simulator.errors import UserError

TRUE = {"gemm": 1.12, "prefill_attn": 0.88, "decode_attn": 1.25, "elementwise": 0.95, "allreduce": 1.3,
        "prefill_fixed_s": 3e-4, "decode_fixed_s": 4e-5}  # launch (host time) stays hidden behind the GPU's here
ARCH_SCALE = {"fake-small": 1.0, "fake-wide": 2.5, "fake-deep": 4.0}  # made-up model sizes


def fake_class_times(row: dict) -> ClassTimes:
    """FAKE per-class times: smooth made-up functions of p, o, b, t (not a measurement of anything)."""
    s, p, b, t, steps = ARCH_SCALE[row["arch"]], row["p"], row["b"], row["t"], row["o"] - 1
    pre = {"gemm": s * (2e-3 + 4e-7 * b * p) / t, "prefill_attn": s * 3e-10 * b * p * p / t,
           "elementwise": s ** 0.5 * 2e-7 * b * p, "launch": 1e-3 * s ** 0.5}
    dec = {"gemm": steps * s * 6e-3 / t, "decode_attn": steps * s * b * 2e-8 * (p + steps / 2) / t,
           "elementwise": steps * b * 3e-4, "launch": steps * 1e-4 * s ** 0.5}
    if t > 1:
        pre["allreduce"] = s * (5e-5 + 1e-8 * b * p)
        dec["allreduce"] = steps * s * 4e-5
    return ClassTimes(pre, dec)


def fake_features(rows):
    return [fake_class_times(r) for r in rows]


def make_rows(coefs=TRUE, noise=0.0, seed=0, gpu="h100-sxm", ts=(1,), archs=tuple(ARCH_SCALE),
              ps=(64, 512, 2048, 8192), os_=(2, 32, 256), bs=(1, 8)) -> list[dict]:
    """FAKE measurement rows whose times are the fake class times under `coefs`, times (1 + noise·N(0,1))."""
    rng = np.random.default_rng(seed)
    rows = []
    for arch in archs:
        for t in ts:
            for p in ps:
                for o in os_:
                    for b in bs:
                        row = {"arch": arch, "gpu": gpu, "t": t, "b": b, "p": p, "o": o, "engine": "idealrt",
                               "backend": "triton", "split": "fit" if (p + o + b) % 3 else "heldout",
                               "_file": "fake.jsonl"}
                        pre, dec = apply_coefficients(fake_class_times(row), o - 1, coefs)
                        pre, dec = (x * (1 + noise * rng.standard_normal()) for x in (pre, dec))
                        rows.append({**row, "prefill_s": pre, "decode_s": dec, "total_s": pre + dec,
                                     "decode_step_s": dec / max(o - 1, 1)})
    return rows


def test_fit_recovers_known_coefficients():
    result = fit.fit_rows(make_rows(ts=(1, 2)), fake_features, max_queries=6)
    assert len(result.queries) <= 6
    for name, want in TRUE.items():
        assert result.coefficients[name] == pytest.approx(want, rel=0.02), name
    assert max(abs(r["rel_err"]) for r in result.residuals) < 1e-3


def test_fit_with_noise_stays_close_and_within_bounds():
    result = fit.fit_rows(make_rows(noise=0.01, seed=3), fake_features, max_queries=6)
    lo, hi = fit.MULTIPLIER_BOUNDS
    for name in ("gemm", "prefill_attn", "decode_attn"):
        assert lo <= result.coefficients[name] <= hi
        assert result.coefficients[name] == pytest.approx(TRUE[name], rel=0.08), name
    assert result.bounds["gemm"] == [lo, hi] and result.bounds["prefill_fixed_s"] == [0.0, None]
    assert "allreduce" not in result.coefficients  # no allreduce time at t = 1: not a coefficient at all


def test_bounds_hold_when_truth_is_outside():
    coefs = {**TRUE, "gemm": 2.0, "prefill_fixed_s": 0.0}
    result = fit.fit_rows(make_rows(coefs), fake_features, max_queries=6)
    assert result.coefficients["gemm"] == pytest.approx(1.5, abs=1e-6)
    assert result.coefficients["prefill_fixed_s"] >= 0
    assert all(-1e-9 <= v or k.endswith("_s") for k, v in result.coefficients.items())


def test_class_without_time_is_left_at_one():
    rows = make_rows(ts=(1,))
    times = [ClassTimes({**ct.prefill, "allreduce": 0.0}, ct.decode) for ct in fake_features(rows)]
    result = fit.fit_coefficients(rows[:12], times[:12])
    assert result.coefficients["allreduce"] == pytest.approx(1.0, abs=1e-3)
    assert result.unfitted == ["allreduce", "launch"]  # the host's launches never outlast the GPU's work here


def test_host_bound_phases_fit_the_launch_coefficient():
    """An eager stack whose decode steps wait for the host: the launch coefficient is fitted from those steps,
    and the GPU's classes from the phases the GPU bounds."""
    def host_bound(row):
        ct = fake_class_times(row)
        return ClassTimes(ct.prefill, {**ct.decode, "launch": ct.decode["launch"] * 500})

    true = {**TRUE, "launch": 1.2}
    rows = make_rows(coefs=true)
    for r in rows:  # measured times of the host-bound model
        pre, dec = apply_coefficients(host_bound(r), r["o"] - 1, true)
        r.update(prefill_s=pre, decode_s=dec, total_s=pre + dec)
    result = fit.fit_rows(rows, lambda rs: [host_bound(r) for r in rs], max_queries=6)
    assert result.coefficients["launch"] == pytest.approx(1.2, rel=0.02)
    assert max(abs(r["rel_err"]) for r in result.residuals) < 1e-3


def test_selection_is_spread_and_distinct():
    rows = [r for r in make_rows(ts=(1, 2)) if r["split"] == "fit"]
    rows = rows + rows  # duplicates must never be picked twice over a distinct query
    picks = fit.select_queries(rows, fake_features(rows), 6)
    keys = {json.dumps(fit.query_key(rows[i]), sort_keys=True) for i in picks}
    assert len(picks) == 6 and len(keys) == 6
    for key in ("p", "o", "b", "t"):  # both ends of every axis are covered
        assert {min(r[key] for r in rows), max(r[key] for r in rows)} <= {rows[i][key] for i in picks}, key
    assert len({rows[i]["arch"] for i in picks}) >= 2


@pytest.mark.parametrize("rows, match", [
    (lambda: make_rows()[:2], "at least 3"),
    (lambda: make_rows(ps=(512,)), "all .* have p=512"),
])
def test_degenerate_input_is_refused(rows, match):
    with pytest.raises(UserError, match=match):
        fit.fit_rows(rows(), fake_features)


def test_infeasible_bounds_and_max_queries_are_refused():
    with pytest.raises(UserError, match="infeasible"):
        fit.fit_rows(make_rows(), fake_features, multiplier_bounds=(1.5, 0.7))
    with pytest.raises(UserError, match="max-queries"):
        fit.fit_rows(make_rows(), fake_features, max_queries=2)


class FakeSimulatorFeatures:
    """Stand-in for fit.SimulatorFeatures in CLI tests: the fake class times, no simulator; its FAKE
    roofline makes every class 40% faster."""

    def __init__(self, stack="triton", roofline=False):
        self.warnings, self.factor = {"fake features (test)"}, 0.6 if roofline else 1.0

    def __call__(self, rows):
        return [ClassTimes({c: self.factor * v for c, v in ct.prefill.items()},
                           {c: self.factor * v for c, v in ct.decode.items()}) for ct in fake_features(rows)]

    moe_archs: frozenset = frozenset()  # fake architectures to treat as mixtures of experts

    def predictable(self, rows):
        return list(rows)

    def moe(self, row):
        return row["arch"] in self.moe_archs

    def table_info(self, gpu):
        return {"time_model": "fake", "table": None}

    def without_layers_of(self, rows):
        return self  # the fake has no table, so no layer points to hide


def test_cli_fit_writes_the_fit_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit, "SimulatorFeatures", FakeSimulatorFeatures)
    src = tmp_path / "h100-sxm_t1.jsonl"
    src.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_file"}) + "\n" for r in make_rows()))
    out = tmp_path / "fits"
    out.mkdir()  # fit writes into an existing folder only
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--max-queries", "5"]) == 0
    data = json.loads((out / "h100-sxm_triton.json").read_text())
    assert data["gpu"] == "h100-sxm" and data["stack"] == "triton" and len(data["queries"]) == 5
    assert data["coefficients"]["gemm"] == pytest.approx(TRUE["gemm"], rel=0.02)
    assert data["provenance"]["measurements"][0]["rows_used"] > 5
    assert data["provenance"]["time_model"]["time_model"] == "fake"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left behind
    assert "h100-sxm (triton)" in capsys.readouterr().out
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--gpu", "h200"]) == 2
    assert "no 'triton' measurements for GPU 'h200'" in capsys.readouterr().err


def test_cli_fit_needs_measurements(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_fit, "MEASUREMENTS_DIR", tmp_path)
    assert main(["fit"]) == 2
    assert "no measurement files" in capsys.readouterr().err


def test_only_reference_engine_rows_of_the_stack_are_used():
    rows = make_rows(archs=("fake-small",))
    hf = [{**r, "engine": "hf"} for r in rows]
    groups = cli_fit.rows_by_gpu(rows + hf, "triton", None)
    assert list(groups) == ["h100-sxm"] and len(groups["h100-sxm"]) == len(rows)
    with pytest.raises(UserError, match="--stack is one of triton"):
        cli_fit.rows_by_gpu(rows, "torch", None)


def test_simulator_features_match_predict_and_leave_out_refused_rows():
    from simulator.catalog import get_arch
    from simulator.gpus import get_gpu
    from simulator.predict import predict
    from simulator.timemodel import RooflineModel

    features = fit.SimulatorFeatures(roofline=True)
    rows = [{"arch": "olmoe-1b-7b", "gpu": "h100-sxm", "t": 1, "b": b, "p": p, "o": o, "_file": "x.jsonl"}
            for b, p, o in ((1, 128, 8), (4, 5000, 8), (8, 512, 1))]
    kept = features.predictable(rows)
    assert [r["p"] for r in kept] == [128, 512]
    assert any("x.jsonl" in w and "'p': 5000" in w for w in features.warnings)
    gpu = get_gpu("h100-sxm")
    for fused in (False, True):  # rows without the field were measured before the engine fused its kernels
        rows_f = [dict(r, fused=True) for r in kept] if fused else kept
        pred = predict(get_arch("olmoe-1b-7b"), gpu, [128, 512], [8, 1], [1, 8], 1, model=RooflineModel(gpu),
                       fused=fused)
        for j, ct in enumerate(features(rows_f)):
            pre, dec = apply_coefficients(ct, kept[j]["o"] - 1, {})
            assert pre == pytest.approx(pred.prefill_s[j]) and dec == pytest.approx(pred.decode_s[j])


def test_cli_fit_leaves_moe_out_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit, "SimulatorFeatures", FakeSimulatorFeatures)
    monkeypatch.setattr(FakeSimulatorFeatures, "moe_archs", frozenset({"fake-deep"}))
    src = tmp_path / "m.jsonl"
    src.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_file"}) + "\n" for r in make_rows()))
    out = tmp_path / "fits"
    out.mkdir()
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out)]) == 0
    data = json.loads((out / "h100-sxm_triton.json").read_text())
    assert "fake-deep" not in {q["arch"] for q in data["queries"]}
    assert list(data["provenance"]["excluded_archs"]) == ["fake-deep"]
    assert "left out of the fit: fake-deep" in capsys.readouterr().out
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--include-moe"]) == 0
    data = json.loads((out / "h100-sxm_triton.json").read_text())
    assert "fake-deep" in {q["arch"] for q in data["queries"]} and data["provenance"]["excluded_archs"] == {}


def test_an_eager_host_stack_fits_its_host_alone():
    true = {"launch": 1.07}  # FAKE: the GPU's classes as the table times them, the host 7 % slower than measured

    def host_bound(row):
        ct = fake_class_times(row)
        return ClassTimes(ct.prefill, {**ct.decode, "launch": ct.decode["launch"] * 500})

    rows = make_rows()
    for r in rows:
        pre, dec = apply_coefficients(host_bound(r), r["o"] - 1, true)
        r.update(engine="hf-eager", prefill_s=pre, decode_s=dec, total_s=pre + dec)
    assert fit.free_coefficients(rows) == ("launch",) and fit.free_coefficients(make_rows()) is None
    result = fit.fit_rows(rows, lambda rs: [host_bound(r) for r in rs], max_queries=6)
    assert result.coefficients["launch"] == pytest.approx(1.07, rel=1e-3)
    assert all(v == pytest.approx(1.0) for n, v in result.coefficients.items() if n not in ("launch",)
               and not n.endswith("_s"))
    assert result.coefficients["prefill_fixed_s"] == pytest.approx(0.0, abs=1e-9)
    assert result.coefficients["decode_fixed_s"] == pytest.approx(0.0, abs=1e-9)
    assert "gemm" in result.unfitted and "launch" not in result.unfitted
