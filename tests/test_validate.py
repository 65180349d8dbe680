"""Validation: error records per GPU, t, architecture and phase; the method comparison; leave-one-architecture-
out; the CLI end to end on FAKE measurements with a fake simulator (see test_fit.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_fit import TRUE, FakeSimulatorFeatures, fake_features, make_rows

from calibration import fit, validate
from idealrt.cli import main
from simulator.errors import UserError

fake_roofline = FakeSimulatorFeatures(roofline=True)


def fake_flop_only(rows):
    return [(1e-4 * r["p"], 1e-4 * (r["o"] - 1)) for r in rows]


def test_phase_values_and_error_records():
    row = {"gpu": "g", "t": 1, "arch": "a", "o": 11, "prefill_s": 0.1, "decode_s": 1.0}
    assert validate.phase_values(row, 0.1, 1.0) == {"prefill": 0.1, "total": 1.1, "decode_step": 0.1}
    recs = validate.error_records([row], [(0.11, 0.9)], "fitted")
    ape = {r["phase"]: r["ape_pct"] for r in recs}
    assert ape == pytest.approx({"prefill": 10.0, "decode_step": 10.0, "total": 100 * 0.09 / 1.1})
    assert len(validate.error_records([{**row, "o": 1, "decode_s": 0.0}], [(0.1, 0.0)], "x")) == 2


def test_summarize_median_and_p95():
    recs = [{"gpu": "g", "phase": "total", "ape_pct": float(v)} for v in range(1, 101)]
    (s,) = validate.summarize(recs, ["gpu", "phase"])
    assert s["n"] == 100 and s["median_pct"] == pytest.approx(50.5)
    assert s["p95_pct"] == pytest.approx(np.percentile(np.arange(1, 101), 95))


def test_compare_ranks_the_methods():
    rows = make_rows(ts=(1, 2), noise=0.005, seed=4)
    coefs = fit.fit_rows(rows, fake_features).coefficients
    heldout = [r for r in rows if r["split"] == "heldout"]
    recs = validate.compare(heldout, coefs, fake_features, fake_roofline, fake_flop_only)
    summary = {(s["method"], s["phase"]): s for s in validate.summarize(recs, ["method", "phase"])}
    assert {m for m, _ in summary} == set(validate.METHODS)
    for phase in validate.PHASES:
        assert summary[("fitted", phase)]["median_pct"] < 1.5
        assert summary[("fitted", phase)]["p95_pct"] < 3.0
        assert summary[("roofline", phase)]["median_pct"] > 20
    assert summary[("table", "total")]["median_pct"] > summary[("fitted", "total")]["median_pct"]


def test_leave_one_arch_out_predicts_the_unseen_arch():
    rows = make_rows(noise=0.005, seed=5)
    coefs, recs = validate.leave_arch_out(rows, "fake-wide", fake_features)
    assert {r["arch"] for r in recs} == {"fake-wide"} and len(recs) > 40  # both splits of the left-out arch
    assert np.median([r["ape_pct"] for r in recs]) < 2.0
    assert coefs["gemm"] == pytest.approx(TRUE["gemm"], rel=0.05)
    with pytest.raises(UserError, match="no measured queries of it"):
        validate.leave_arch_out(rows, "fake-missing", fake_features)


def test_fit_on_one_arch_predicts_the_others_from_its_queries_alone(monkeypatch):
    rows = make_rows(noise=0.005, seed=5)
    pools = []
    real = validate.fit_rows
    monkeypatch.setattr(validate, "fit_rows", lambda pool, *a: pools.append(pool) or real(pool, *a))
    coefs, recs = validate.fit_on_archs(rows, frozenset({"fake-wide"}), fake_features)
    assert {r["arch"] for r in pools[0]} == {"fake-wide"} and all(r["split"] == "fit" for r in pools[0])
    assert len(pools[0]) == len([r for r in rows if r["arch"] == "fake-wide"])  # both splits to choose from
    assert {r["arch"] for r in recs} == {"fake-small", "fake-deep"}
    assert np.median([r["ape_pct"] for r in recs]) < 2.0
    assert coefs["gemm"] == pytest.approx(TRUE["gemm"], rel=0.05)
    with pytest.raises(UserError, match="fit on fake-wide alone"):
        validate.fit_on_archs(rows, frozenset({"fake-wide"}), fake_features, exclude_archs=frozenset({"fake-wide"}))


@pytest.fixture
def fake_setup(tmp_path, monkeypatch):
    """Measurement file and fit dir of FAKE data; the simulator and FLOP-only baseline replaced by fakes."""
    monkeypatch.setattr(fit, "SimulatorFeatures", FakeSimulatorFeatures)
    monkeypatch.setattr(validate, "flop_only_times", fake_flop_only)
    src = tmp_path / "m.jsonl"
    rows = make_rows(ts=(1, 2), noise=0.005, seed=6)
    src.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_file"}) + "\n" for r in rows))
    (tmp_path / "fits").mkdir()  # fit writes into an existing folder only
    return ["--measurements", str(src), "--fits-dir", str(tmp_path / "fits")]


def test_cli_validate_end_to_end(fake_setup, capsys):
    assert main(["validate", *fake_setup]) == 2
    assert "run 'idealrt fit --gpu h100-sxm" in capsys.readouterr().err
    fit_args = [a if a != "--fits-dir" else "--out-dir" for a in fake_setup]
    assert main(["fit", *fit_args]) == 0
    capsys.readouterr()
    assert main(["validate", *fake_setup, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {(s["t"], s["phase"]) for s in res["by_gpu"]} == {(t, ph) for t in (1, 2) for ph in validate.PHASES}
    assert {s["kind"] for s in res["by_gpu"]} == {"dense"}
    assert all(s["median_pct"] < 1.5 for s in res["by_gpu"])
    assert {s["method"] for s in res["comparison"]} == set(validate.METHODS)
    assert main(["validate", *fake_setup]) == 0
    out = capsys.readouterr().out
    assert "Same held-out queries" in out and "flop_only" in out and "fake-deep" in out


def test_cli_leave_each_arch_out(fake_setup, capsys):
    assert main(["validate", *fake_setup, "--leave-out-arch", "each", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    archs = {s["arch"] for s in res["by_arch"]}
    assert archs == {"fake-small", "fake-wide", "fake-deep"} and res["what"] == "leave-one-architecture-out"
    assert all(s["median_pct"] < 2.0 for s in res["by_arch"])


def test_cli_fit_on_each_pair_of_archs(fake_setup, capsys):
    assert main(["validate", *fake_setup, "--fit-on-archs", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["what"].startswith("fitted on 2 architecture(s) at a time")
    assert {s["arch"] for s in res["by_arch"]} == {"fake-small", "fake-wide", "fake-deep"}  # each one predicted
    assert all(s["median_pct"] < 2.0 for s in res["by_arch"])
    assert main(["validate", *fake_setup, "--fit-on-archs", "3"]) == 2  # none left to predict
    assert "no combination of that many architectures" in capsys.readouterr().err
    assert main(["validate", *fake_setup, "--fit-on-archs", "1", "--leave-out-arch", "each"]) == 2
    assert "give one" in capsys.readouterr().err


def test_cli_leave_out_an_unmeasured_arch(fake_setup, capsys):
    assert main(["validate", *fake_setup, "--leave-out-arch", "llama-3.1-8b"]) == 2
    assert "no measured queries of it; the data has fake-deep" in capsys.readouterr().err


def test_cli_leave_out_keeps_moe_out_of_the_refits(fake_setup, capsys, monkeypatch):
    monkeypatch.setattr(FakeSimulatorFeatures, "moe_archs", frozenset({"fake-deep"}))
    calls = []
    real = fit.fit_rows
    monkeypatch.setattr(validate, "fit_rows", lambda rows, *a: calls.append(a[-1]) or real(rows, *a))
    assert main(["validate", *fake_setup, "--leave-out-arch", "each", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {s["kind"] for s in res["by_gpu"]} == {"dense", "moe"}
    assert all("fake-deep" in excluded for excluded in calls) and len(calls) == 3


def test_cli_validate_every_stack_side_by_side(fake_setup, tmp_path, capsys):
    src = fake_setup[1]
    rows = [json.loads(line) for line in Path(src).read_text().splitlines()]
    with open(src, "a") as f:  # the same queries on a second stack, which has no fit
        f.writelines(json.dumps({**r, "backend": "torch"}) + "\n" for r in rows)
    fit_args = [a if a != "--fits-dir" else "--out-dir" for a in fake_setup]
    assert main(["fit", *fit_args]) == 0
    capsys.readouterr()
    assert main(["validate", *fake_setup, "--stack", "all", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {s["stack"] for s in res["comparison"]} == {"triton"}
    assert any(w.startswith("h100-sxm torch: left out: no fit") for w in res["warnings"])
    assert main(["fit", *fit_args, "--stack", "torch"]) == 0
    capsys.readouterr()
    assert main(["validate", *fake_setup, "--stack", "all", "--leave-out-arch", "each", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {(s["stack"], s["arch"]) for s in res["by_arch"]} == {
        (st, a) for st in ("triton", "torch") for a in ("fake-small", "fake-wide", "fake-deep")}
