"""Tests of `idealrt study`: its numbers are the simulator's, the accuracy CSV's bad rows get one-line
errors, and the CSV and HTML it writes hold every part of the study."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup

from reports.accuracy import frontier_changes, frontiers, read_accuracy
from idealrt.cli_study import collect
from reports.study import (BATCH_REQUEST, REQUEST_MIX, batch_rows, long_context_rows, mix_arrays, mix_row,
                           setting, study_rows)
from simulator.catalog import get_arch
from idealrt.cli import main
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.memory import smallest_fitting_tp
from simulator.metrics import flop_only_time_s, metrics
from simulator.predict import predict
from simulator.profile import fit_profile
from report_fakes import assert_self_contained, charts, sections

EXAMPLE_ACCURACY = Path(__file__).resolve().parents[1] / "reports" / "examples" / "accuracy-mmlu.csv"
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b"]


@pytest.mark.parametrize("name, gpu", [("llama-3.1-70b", "h100-sxm"), ("mixtral-8x7b", "h200"),
                                       ("gpt3-davinci-175b", "b200")])
def test_study_row_equals_the_simulator(name, gpu):
    arch, spec = get_arch(name), get_gpu(gpu)
    s = setting(gpu, "triton")
    row = mix_row(arch, s)
    p = np.array([k.p for k in REQUEST_MIX])
    o = np.array([k.o for k in REQUEST_MIX])
    w = np.array([k.weight for k in REQUEST_MIX]) / sum(k.weight for k in REQUEST_MIX)
    pred = predict(arch, spec, p, o, 1, None, model=s.model, coefficients=s.coefficients)
    assert row["t"] == pred.t == smallest_fitting_tp(arch, spec, 1, p, o)
    assert row["runtime_s"] == pytest.approx(float(w @ pred.total_s), rel=1e-12)
    assert row["cost_usd"] == pytest.approx(float(w @ pred.cost_usd), rel=1e-12)
    assert row["energy_j"] == pytest.approx(float(w @ pred.energy_j), rel=1e-12)
    flop = flop_only_time_s(arch, spec, p + o - 1, 1, pred.t)
    assert row["flop_only_s"] == pytest.approx(float(w @ flop), rel=1e-12)
    prof = fit_profile(arch, spec, pred.t, model=s.model, coefficients=s.coefficients, p_max=2048)
    with_profile = study_rows([name], [gpu], ["triton"])[0]
    assert with_profile["g_ms"] == pytest.approx(prof.g_s * 1e3, rel=1e-12)
    assert with_profile["f0_ms"] == pytest.approx(prof.f_knots_s[0] * 1e3, rel=1e-12)


def test_batch_and_long_context_rows_equal_the_simulator():
    s = setting("h100-sxm", "triton")
    rows = batch_rows(["llama-3.1-8b"], s, batches=(1, 16))
    p, o = BATCH_REQUEST
    for r in rows:
        m = metrics(get_arch("llama-3.1-8b"), s.gpu, p, o, r["b"], None, model=s.model, coefficients=s.coefficients)
        assert r["tokens_per_s_per_gpu"] == pytest.approx(float(m.output_tokens_per_s_per_gpu), rel=1e-12)
        assert r["usd_per_1k_tokens"] == pytest.approx(float(m.cost_per_1k_tokens_usd), rel=1e-12)
    assert rows[1]["tokens_per_s_per_gpu"] > rows[0]["tokens_per_s_per_gpu"]  # batching raises throughput
    base = study_rows(["llama-3.1-8b", "gpt-j-6b"], ["h100-sxm"], ["triton"])
    long = long_context_rows(base, s)
    assert [r["p"] for r in long] == [8192, 32768, 131072]  # gpt-j's 2048 positions allow none
    sim = predict(get_arch("llama-3.1-8b"), s.gpu, np.array([8192, 32768, 131072]), 1, 1, base[0]["t"], model=s.model,
                  coefficients=s.coefficients).prefill_s
    assert [r["simulator_s"] for r in long] == pytest.approx(sim.tolist(), rel=1e-12)
    assert long[1]["error_pct"] < 0  # the linear form misses attention's p² term at long context


def test_mix_is_clipped_for_short_context_models_and_a_model_that_does_not_fit_is_a_note():
    p, o, w, clipped = mix_arrays(get_arch("gpt2-xl"))
    assert clipped and np.all(p + o - 1 <= 1024) and w.sum() == pytest.approx(1.0)
    row = mix_row(get_arch("mt-nlg-530b"), setting("h100-sxm", "triton"))
    assert "runtime_s" not in row and "does not fit" in row["note"]


def test_example_accuracy_csv_reads_and_frontiers_change_with_the_metric():
    acc = read_accuracy(EXAMPLE_ACCURACY)
    assert acc["llama-3.1-70b"][0] == 79.3 and "Llama 3.1 model card" in acc["llama-3.1-70b"][1]
    rows = [{"model": "a", "x": 1.0, "y": 3.0}, {"model": "b", "x": 2.0, "y": 1.0}, {"model": "c", "x": 3.0, "y": 2.0}]
    front = frontiers(rows, {"a": (50.0, ""), "b": (60.0, ""), "c": (70.0, "")}, ("x", "y"))
    assert front == {"x": ["a", "b", "c"], "y": ["b", "c"]}
    assert frontier_changes(front) == ["from x to y: leave the frontier: a"]


@pytest.mark.parametrize("body, needle", [
    ("model,accuracy\nllama-3.1-8b,66.7\nno-such-model,50\n", ":3: unknown model 'no-such-model'"),
    ("model,accuracy\nllama-3.1-8b,sixty\n", ":2: accuracy 'sixty' of llama-3.1-8b is not a number"),
    ("model,accuracy\nllama-3.1-8b,nan\n", "must be a finite number"),
    ("model,score\nllama-3.1-8b,1\n", "must name columns 'model' and 'accuracy'"),
    ("model,accuracy\nllama-3.1-8b,1\nllama-3.1-8b,2\n", "listed twice"),
    ("# only a comment\n", "no rows"),
])
def test_bad_accuracy_rows_are_one_line_errors(tmp_path, capsys, body, needle):
    f = tmp_path / "acc.csv"
    f.write_text(body)
    with pytest.raises(UserError) as e:
        read_accuracy(f)
    assert needle in str(e.value)
    assert main(["study", "--models", "llama-3.1-8b", "--gpus", "h100-sxm", "--stack", "triton", "--accuracy", str(f)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [(["--stack", "cuda"], "'cuda' is not a stack"),
                                          (["--gpus", "h900"], "unknown GPU 'h900'"),
                                          (["--models", "gpt5"], "unknown model 'gpt5'")])
def test_study_bad_options_are_one_line_errors(capsys, argv, needle):
    assert main(["study", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_study_command_writes_csv_and_html(tmp_path, capsys):
    out_csv, out_html = tmp_path / "study.csv", tmp_path / "study.html"
    assert main(["study", "--models", ",".join(MODELS + ["gpt-j-6b"]), "--gpus", "h100-sxm,b200",
                 "--stack", "triton,torch", "--accuracy", str(EXAMPLE_ACCURACY), "--csv", str(out_csv),
                 "--html", str(out_html)]) == 0
    screen = capsys.readouterr().out
    assert "llama-3.1-70b" in screen and "Pareto frontier" in screen
    with out_csv.open() as f:
        records = list(csv.DictReader(f))
    rows = [r for r in records if r["view"] == "study"]
    assert len(rows) == 4 * 2 * 2 and {r["stack"] for r in rows} == {"triton", "torch"}
    precision = [r for r in records if r["view"] == "precision"]  # the open models on the base GPU and stack
    assert sorted((r["model"], r["weights"]) for r in precision) == sorted(
        (m, w) for m in MODELS for w in ("bf16", "fp8", "int4"))
    assert {(r["gpu"], r["stack"]) for r in precision} == {("h100-sxm", "triton")}
    assert all(float(r["usd_per_1k_tokens"]) > 0 and float(r["mem_per_gpu_gib"]) > 0 for r in precision)
    first = next(r for r in rows if r["model"] == "llama-3.1-70b" and r["gpu"] == "h100-sxm" and r["stack"] == "triton")
    assert float(first["runtime_s"]) == pytest.approx(mix_row(get_arch("llama-3.1-70b"),
                                                              setting("h100-sxm", "triton"))["runtime_s"], rel=1e-6)
    soup = assert_self_contained(out_html.read_text())
    secs = sections(soup)
    for sid in ("mix", "study", "capability", "gpus", "stacks", "tp", "batch", "long-context", "precision"):
        assert sid in secs and (charts(secs[sid]) or secs[sid].find("table")), sid
    assert len(charts(secs["capability"])) == 3 and not soup.find_all(class_="missing")
    heads = [th.get_text() for th in secs["precision"].find("table").find_all("th")]
    assert {"USD per 1k tokens", "memory per GPU (GiB)", "cost / request (USD)"} <= set(heads)


def test_mix_cost_per_1k_tokens_and_memory_are_the_simulators():
    """The mix's cost per 1,000 tokens is its mean cost over its mean tokens (from simulator.metrics' per-request
    figure), its memory per GPU its largest request's; the precision what-if's rows carry both."""
    from reports.study import precision_rows
    from simulator.gpus import GIB
    from simulator.metrics import from_prediction

    s = setting("h200", "triton")
    arch = get_arch("mixtral-8x7b")
    fp8 = arch.with_(precision=arch.precision.with_flags(weights="fp8"))
    by = {r["weights"]: r for r in precision_rows(["mixtral-8x7b"], s)}
    p, o, w, _ = mix_arrays(fp8)
    pred = predict(fp8, s.gpu, p, o, 1, None, model=setting("h200", "triton").model, coefficients=s.coefficients)
    assert by["fp8"]["runtime_s"] == pytest.approx(float(w @ pred.total_s), rel=1e-12)
    m = from_prediction(pred, fp8, s.gpu)
    tokens = w * (p + o)
    assert by["fp8"]["usd_per_1k_tokens"] == pytest.approx(float(tokens @ m.cost_per_1k_tokens_usd / tokens.sum()),
                                                           rel=1e-12)
    assert by["fp8"]["usd_per_1k_tokens"] == pytest.approx(1000 * by["fp8"]["cost_usd"] / float(tokens.sum()),
                                                           rel=1e-12)
    assert by["fp8"]["mem_per_gpu_gib"] == pytest.approx(float(pred.mem_per_gpu_bytes.max()) / GIB, rel=1e-12)
    assert [by[k]["t"] for k in ("bf16", "fp8", "int4")] == [1, 1, 1]
    assert by["int4"]["mem_per_gpu_gib"] < by["fp8"]["mem_per_gpu_gib"] < by["bf16"]["mem_per_gpu_gib"]


def test_study_html_without_accuracy_says_so():
    from reports.study_report import render_study

    data = collect(["llama-3.1-8b"], ["h100-sxm"], ["triton"])
    soup = BeautifulSoup(render_study(data), "html.parser")
    assert "--accuracy FILE" in sections(soup)["capability"].find(class_="missing").get_text()


def test_study_refuses_an_unwritable_output_before_computing(tmp_path, capsys):
    assert main(["study", "--models", "llama-3.1-8b", "--html", str(tmp_path / "no" / "s.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serving_view_beside_the_single_request_cost():
    from reports.study_report import render_study
    from reports.study_serving import ServingStudy, serving_rows, single_usd_per_1k

    s = setting("h200", "triton")
    base = study_rows(["llama-3.2-1b", "gpt-j-6b"], ["h200"], ["triton"])
    study = ServingStudy(requests=60, replicas=(1,), batches=(16,))
    rows = serving_rows(["llama-3.2-1b", "gpt-j-6b"], s, base, study)
    small, short = rows
    assert small["ttft_p95"] <= 1.0 and small["tpot_p95"] <= 0.1 and small["usd_per_1k_tokens"] > 0
    _, o, w, _ = mix_arrays(get_arch("llama-3.2-1b"))
    assert small["single_usd_per_1k_tokens"] == pytest.approx(base[0]["cost_usd"] / float(np.sum(w * o)) * 1000)
    assert single_usd_per_1k({}, get_arch("gpt-j-6b")) != single_usd_per_1k({}, get_arch("gpt-j-6b"))  # NaN
    assert "max_positions" in short["note"] and "usd_per_1k_tokens" not in short  # gpt-j: 2,048 positions
    none = serving_rows(["llama-3.2-1b"], s, base, ServingStudy(requests=60, slo="ttft_p50=0.000001", replicas=(1,),
                                                                 batches=(16,)))
    assert none[0]["note"] == "no deployment searched meets the target"
    data = {**collect(["llama-3.2-1b"], ["h200"], ["triton"]), "serving": rows, "serving_label": study.label()}
    section = sections(BeautifulSoup(render_study(data), "html.parser"))["serving"]
    assert "llama-3.2-1b" in section.get_text() and "one request at a time" in section.get_text()


@pytest.mark.parametrize("argv, needle", [(["--slo", "ttft_p95=1"], "add --serving"),
                                          (["--serving", "--rate", "0"], "--rate"),
                                          (["--serving", "--slo", "ttft=1"], "--slo")])
def test_serving_view_options_are_checked(capsys, argv, needle):
    assert main(["study", "--models", "llama-3.2-1b", "--gpus", "h200", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
