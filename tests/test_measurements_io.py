"""The one measurement reader (JSON Lines and CSV, checked, rows of any engine), arch_of, the engine-version rule,
and the query statistic (median of >= 3 runs, measured again when wide, NVML energy) with FAKE runs and a FAKE
energy counter; `fit` on a CSV of another engine. All numbers here are FAKE."""
from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from calibration import fit, measurements_io as mio, query_timing as qt, validate
from calibration.engine_version import engine_version
from idealrt.cli import main
from simulator.catalog import get_arch
from simulator.errors import UserError
from test_fit import FakeSimulatorFeatures, make_rows
from test_validate import fake_flop_only

MINIMUM = {"arch": "llama-3.1-8b", "gpu": "h100-sxm", "t": 1, "b": 1, "p": 512, "o": 9, "prefill_s": 0.02,
           "total_s": 0.1, "engine": "mine", "backend": "triton"}


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_file"}) + "\n" for r in rows))


def test_minimum_row_is_completed(tmp_path):
    path = tmp_path / "m.jsonl"
    write_jsonl(path, [MINIMUM, {**MINIMUM, "o": 1, "total_s": 0.02, "split": "heldout"}])
    first, second = mio.read_measurements([path])
    assert first["decode_s"] == pytest.approx(0.08) and first["split"] in ("fit", "heldout")
    assert second["decode_s"] == 0 and second["split"] == "heldout" and first["_file"] == str(path)


@pytest.mark.parametrize("change, match", [
    ({"p": -4}, r"m.jsonl:2: field 'p' is -4"),
    ({"total_s": "fast"}, "field 'total_s' is 'fast'; it must be a float"),
    ({"total_s": 0.01}, "field 'decode_s'"),
    ({"split": "train"}, "field 'split' is 'train'"),
    ({"t": 1.5}, "field 't' is 1.5"),
    ({"engine": None}, "field 'engine'"),
    ({"arch_spec": {"name": "x", "bogus": 1}}, "unknown field 'bogus'"),
    ({"arch_spec": {"name": "x", "n_layers": 2}}, "field 'arch_spec' is incomplete"),
])
def test_bad_rows_are_one_line_errors_naming_file_line_and_field(tmp_path, change, match):
    path = tmp_path / "m.jsonl"
    bad = {k: v for k, v in {**MINIMUM, **change}.items() if v is not None}
    write_jsonl(path, [MINIMUM, bad])
    with pytest.raises(UserError, match=match) as e:
        mio.read_measurements([path])
    assert "\n" not in str(e.value)


def test_missing_engine_is_taken_from_the_caller_and_bad_json_is_named(tmp_path):
    path = tmp_path / "m.jsonl"
    write_jsonl(path, [{k: v for k, v in MINIMUM.items() if k != "engine"}])
    with pytest.raises(UserError, match="field 'engine' is missing.* or pass --engine"):
        mio.read_measurements([path])
    assert mio.read_measurements([path], engine="vllm")[0]["engine"] == "vllm"
    path.write_text("{oops\n")
    with pytest.raises(UserError, match="m.jsonl:1: not valid JSON"):
        mio.read_measurements([path])
    with pytest.raises(UserError, match="no such file"):
        mio.read_measurements([tmp_path / "nope.jsonl"])


def test_csv_rows_read_like_json_rows(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("arch,gpu,t,b,p,o,prefill_s,total_s,backend,split\n"
                    "llama-3.1-8b,h100-sxm,1,1,512,9,0.02,0.1,triton,fit\n"
                    "llama-3.1-8b,h100-sxm,1,8,128,1,0.03,0.03,triton,\n")
    rows = mio.read_measurements([path], engine="mine")
    assert [(r["b"], r["p"], r["engine"]) for r in rows] == [(1, 512, "mine"), (8, 128, "mine")]
    assert isinstance(rows[0]["t"], int) and rows[0]["decode_s"] == pytest.approx(0.08)
    path.write_text("arch,gpu,t,b,p,o,prefill_s,total_s,backend\nllama-3.1-8b,h100-sxm,one,1,512,9,0.02,0.1,triton\n")
    with pytest.raises(UserError, match="mine.csv:2: field 't' is 'one'; it must be a int"):
        mio.read_measurements([path], engine="mine")


def test_arch_of_rebuilds_a_spec_row_and_falls_back_to_the_catalog():
    spec = dataclasses.replace(get_arch("llama-3.2-1b"), name="unreleased-1b", head_dim=80)
    row = {**MINIMUM, "arch": spec.name, "arch_spec": mio.arch_spec_fields(spec)}
    assert mio.arch_of(json.loads(json.dumps(row))) == spec
    assert mio.arch_of(MINIMUM) == get_arch("llama-3.1-8b")
    with pytest.raises(UserError, match="unreleased-1b"):
        mio.arch_of({"arch": "unreleased-1b"})


def test_engine_version_is_stable_and_filters_rows():
    now = engine_version()
    assert now == engine_version() and len(now) == 12 and int(now, 16) >= 0
    old = [dict(MINIMUM)]
    assert mio.of_current_engine(old) == (old, None)  # no row has a version: all kept (the shipped files)
    mixed = old + [{**MINIMUM, "engine_version": now}, {**MINIMUM, "engine_version": "0123456789ab"}]
    kept, note = mio.of_current_engine(mixed)
    assert kept == [mixed[1]] and "left out 2 of 3 rows" in note and "1 without a version" in note
    assert mio.of_current_engine(mixed, any_version=True) == (mixed, None)


def fake_runs(totals):
    """A FAKE `run`: each call returns the next total, split 1:3 into prefill and decode."""
    it = iter(totals)

    def run():
        t = next(it)
        return qt.RunTimes(t / 4, 3 * t / 4)
    return run


def test_median_of_three_runs_and_no_remeasure_when_tight():
    res = qt.measure_query(fake_runs([1.0, 1.05, 0.98]), 3, o=5)
    assert res["repeats"] == 3 and res["total_s"] == pytest.approx(1.0) and "remeasured" not in res
    with pytest.raises(ValueError, match="at least 3"):
        qt.measure_query(fake_runs([1.0, 1.0]), 2, o=5)


def test_wide_runs_are_measured_again_and_flagged_when_still_wide():
    res = qt.measure_query(fake_runs([1.0, 6.5, 1.02, 1.01, 0.99, 1.0]), 3, o=5)  # one slow run, then tight
    assert res["repeats"] == 6 and res["remeasured"] and "wide_spread" not in res
    assert res["total_s"] == pytest.approx(1.005) and res["spread"]["total_s_max"] == 6.5
    res = qt.measure_query(fake_runs([1.0, 2.0, 1.0, 1.0, 2.0, 1.5]), 3, o=5)
    assert res["wide_spread"] is True and res["first_spread"] == pytest.approx(1.0)


def test_energy_from_a_fake_counter():
    counter = itertools.count(start=1000.0, step=50.0)  # FAKE counter: +50 J between any two reads
    energy = lambda: next(counter)  # noqa: E731

    def run():
        times, joules = qt.metered(energy, lambda: qt.RunTimes(0.1, 0.4))
        return dataclasses.replace(times, energy_j=joules)
    res = qt.measure_query(run, 3, o=5)
    assert res["energy_j"] == pytest.approx(50.0) and res["mean_power_w"] == pytest.approx(100.0)
    still = lambda: 7.0  # noqa: E731 — a counter that did not tick: no field, never a made-up number
    res = qt.measure_query(lambda: dataclasses.replace(qt.RunTimes(0.1, 0.4), energy_j=qt.metered(still, int)[1]),
                           3, o=5)
    assert "energy_j" not in res and "mean_power_w" not in res
    assert "energy_j" not in qt.measure_query(fake_runs([1.0] * 3), 3, o=5)  # no counter


def test_open_energy_counter_reads_millijoules_through_a_fake_nvml(monkeypatch):
    import sys
    import types

    from calibration import power

    fake = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: ("gpu", i),
                                 nvmlDeviceGetHandleByUUID=lambda u: ("gpu", u),
                                 nvmlDeviceGetTotalEnergyConsumption=lambda h: 123456)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert power.open_energy_counter(0)() == pytest.approx(123.456)
    assert power.open_energy_counter(0, "abc")() == pytest.approx(123.456)

    def unsupported(handle):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
    monkeypatch.setattr(fake, "nvmlDeviceGetTotalEnergyConsumption", unsupported)
    assert power.open_energy_counter(0) is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML at all
    assert power.open_energy_counter(0) is None


def test_fit_and_validate_keep_to_the_current_engine_version(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit, "SimulatorFeatures", FakeSimulatorFeatures)
    monkeypatch.setattr(validate, "flop_only_times", fake_flop_only)
    rows = make_rows()
    src = tmp_path / "m.jsonl"
    write_jsonl(src, [{**r, "engine_version": engine_version()} for r in rows] + rows[:7])
    out = tmp_path / "fits"
    out.mkdir()
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"left out 7 of {len(rows) + 7} rows" in err and "7 without a version" in err
    assert json.loads((out / "h100-sxm_triton.json").read_text())["provenance"]["measurements"][0]["rows_used"] \
        == len([r for r in rows if r["split"] == "fit"])
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--any-engine-version"]) == 0
    assert "left out" not in capsys.readouterr().err
    assert main(["validate", "--measurements", str(src), "--fits-dir", str(out), "--json"]) == 0
    assert "left out 7" in capsys.readouterr().err
    write_jsonl(src, [{**r, "engine_version": "0123456789ab"} for r in rows])
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out)]) == 2
    assert "--any-engine-version" in capsys.readouterr().err


def test_fit_another_engine_from_a_csv(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit, "SimulatorFeatures", FakeSimulatorFeatures)
    monkeypatch.setattr(validate, "flop_only_times", fake_flop_only)
    src = tmp_path / "mine.csv"
    cols = ["arch", "gpu", "t", "b", "p", "o", "prefill_s", "total_s", "backend", "split"]
    src.write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in make_rows()))
    out = tmp_path / "fits"
    out.mkdir()
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out)]) == 0  # engine-less rows: idealrt's
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--engine", "mine"]) == 0
    data = json.loads((out / "h100-sxm_triton_mine.json").read_text())  # never replaces the reference fit
    assert data["coefficients"]["gemm"] == pytest.approx(1.12, rel=0.02)
    assert main(["validate", "--measurements", str(src), "--fits-dir", str(out), "--engine", "mine", "--json"]) == 0
    capsys.readouterr()
    assert main(["fit", "--measurements", str(src), "--out-dir", str(out), "--engine", "vllm", "--stack", "torch"]) == 2
    assert "no 'vllm' engine measurements" in capsys.readouterr().err


def test_a_spec_row_is_predicted_like_its_catalog_twin(tmp_path, capsys):
    spec = dataclasses.replace(get_arch("llama-3.2-1b"), name="twin-1b")
    twin = [{"arch": "llama-3.2-1b", "gpu": "h100-sxm", "t": 1, "b": b, "p": p, "o": o, "_file": "x.jsonl"}
            for b, p, o in ((1, 128, 8), (8, 512, 1))]
    rows = [{**r, "arch": "twin-1b", "arch_spec": mio.arch_spec_fields(spec)} for r in twin]
    features = fit.SimulatorFeatures(roofline=True)
    assert features(rows) == features(twin) and not features.moe(rows[0])
    assert validate.flop_only_times(rows) == validate.flop_only_times(twin)
    path = tmp_path / "m.jsonl"  # profile finds the unreleased architecture in its rows
    write_jsonl(path, [{**MINIMUM, "arch": "twin-1b", "arch_spec": mio.arch_spec_fields(spec), "engine": "idealrt",
                        "p": p, "o": o, "prefill_s": 1e-3 * p ** 0.5, "total_s": 1e-3 * p ** 0.5 + 0.01 * (o - 1)}
                       for p in (16, 128, 512, 2048) for o in (1, 17)])
    assert main(["profile", "--model", "twin-1b", "--measurements", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["model"] == "twin-1b"


def test_engine_version_covers_the_engine_and_the_kernels_it_imports(tmp_path, monkeypatch):
    import calibration.engine_version as ev

    (tmp_path / "calibration/engine").mkdir(parents=True)
    (tmp_path / "kernels").mkdir()
    (tmp_path / "calibration/engine/backends.py").write_text("from kernels.gemm import matmul\n")
    (tmp_path / "kernels/__init__.py").write_text("")
    (tmp_path / "kernels/gemm.py").write_text("from kernels import configs\n")
    (tmp_path / "kernels/configs.py").write_text("X = 1\n")
    (tmp_path / "kernels/fp8_gemm.py").write_text("Y = 2\n")  # a kernel the engine does not run yet
    monkeypatch.setattr(ev, "REPO", tmp_path)
    names = [p.relative_to(tmp_path).as_posix() for p in ev.sources()]
    assert names == ["calibration/engine/backends.py", "kernels/__init__.py", "kernels/configs.py", "kernels/gemm.py"]
    ev.engine_version.cache_clear()
    before = ev.engine_version()
    (tmp_path / "kernels/fp8_gemm.py").write_text("Y = 3\n")
    ev.engine_version.cache_clear()
    assert ev.engine_version() == before
    (tmp_path / "kernels/configs.py").write_text("X = 2\n")
    ev.engine_version.cache_clear()
    assert ev.engine_version() != before
    ev.engine_version.cache_clear()


def test_a_variant_has_its_own_version_and_leaves_the_engines_alone(tmp_path, monkeypatch):
    import calibration.engine_version as ev

    for d in ("calibration/engine", "calibration/engine_variants", "kernels"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "calibration/engine/runner.py").write_text("from kernels.gemm import matmul\n")
    (tmp_path / "kernels/__init__.py").write_text("")
    (tmp_path / "kernels/gemm.py").write_text("X = 1\n")
    (tmp_path / "kernels/slots.py").write_text("Y = 1\n")
    (tmp_path / "calibration/engine_variants/base.py").write_text("Z = 1\n")
    (tmp_path / "calibration/engine_variants/serving.py").write_text(
        "from calibration.engine_variants.base import Z\nfrom kernels import slots\n")
    monkeypatch.setattr(ev, "REPO", tmp_path)
    ev.engine_version.cache_clear()
    names = [p.relative_to(tmp_path).as_posix() for p in ev.sources("serving")]
    assert names == ["calibration/engine/runner.py", "calibration/engine_variants/base.py",
                     "calibration/engine_variants/serving.py", "kernels/__init__.py", "kernels/gemm.py",
                     "kernels/slots.py"]
    engine, serving = ev.engine_version(), ev.engine_version("serving")
    assert engine != serving
    (tmp_path / "kernels/slots.py").write_text("Y = 2\n")  # the variant's kernel: only its version moves
    ev.engine_version.cache_clear()
    assert ev.engine_version() == engine and ev.engine_version("serving") != serving
    rows = [{**MINIMUM, "engine_version": engine}, {**MINIMUM, "engine_version": serving, "engine_variant": "serving"},
            {**MINIMUM, "engine_version": ev.engine_version("serving"), "engine_variant": "serving"},
            {**MINIMUM, "engine_version": engine, "engine_variant": "gone"}]
    kept, note = mio.of_current_engine(rows)
    assert kept == [rows[0], rows[2]] and "left out 2 of 4" in note
    with pytest.raises(ValueError, match="gone"):
        ev.engine_version("gone")
    ev.engine_version.cache_clear()
