"""Serving runs without a GPU: serve_run's bad input, the workloads and rates of a run, reading run files, and
validate_serving on a synthetic run file whose "measured" times are the simulator's own."""
from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import serve_run, serving_validation
from calibration.serving_runs import load_runs, parse_rates, replay, run_workload
from simulator.catalog import get_arch
from simulator.errors import UserError
from simulator.gpus import get_gpu

GOOD = ["--arch", "llama-3.2-1b", "--lengths", "uniform:p=32-64,o=8-16", "--requests", "10"]


@pytest.mark.parametrize("args,needle", [
    (["--rate", "fast"], "--rate 'fast'"),
    (["--rate", "-3"], "--rate '-3'"),
    (["--max-batch", "0"], "--max-batch 0"),
    (["--requests", "0"], "--requests 0"),
    (["--span-s", "0"], "--span-s"),
    (["--lengths", "zipf:p=3"], "unknown distribution"),
    (["--arch", "llama-9"], "llama-9"),
    (["--out", "/no/such/folder/f.json"], "does not exist"),
    (["--arch", "phi-3-mini", "--lengths", "fixed:p=5000,o=10"], "max_positions"),
])
def test_serve_run_bad_input_one_line_exit_2(tmp_path, capsys, args, needle):
    argv = GOOD + ["--out", str(tmp_path / "f.json")] + args
    assert serve_run.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_serve_run_needs_one_architecture(tmp_path, capsys):
    assert serve_run.main(["--lengths", "fixed:p=8,o=4", "--out", str(tmp_path / "f.json")]) == 2
    assert "--arch / --config" in capsys.readouterr().err


def test_rates_are_fractions_of_capacity_or_numbers():
    assert parse_rates("light,near,over,2.5") == [("light", 0.3, None), ("near", 0.9, None), ("over", 1.5, None),
                                                  ("2.5/s", None, 2.5)]


def test_runs_of_one_distribution_serve_prefixes_of_the_same_requests():
    slow, fast = (run_workload("lognormal:p=100,o=20", r, 50, 4.0, seed=3) for r in (2.0, 40.0))
    assert len(slow) == 8 and len(fast) == 50  # rate x span, at most the requests asked for
    np.testing.assert_array_equal(slow.prompt, fast.prompt[:8])
    np.testing.assert_array_equal(slow.output, fast.output[:8])
    np.testing.assert_allclose(slow.arrival_s, fast.arrival_s[:8] * 20)


def _run_file(tmp_path, name="llama-3.2-1b", **run_changes):
    """A run file whose measured times are the fitted simulator's for its workload."""
    arch, gpu = get_arch(name), get_gpu("h200")
    w = run_workload("uniform:p=32-256,o=8-64", 30.0, 40, 2.0, seed=1)
    res = replay(arch, gpu, w, 8)
    run = {"lengths": "uniform:p=32-256,o=8-64", "rate_label": "30/s", "rate_per_s": 30.0, "complete": True,
           "workload": {"arrival_s": w.arrival_s.tolist(), "prompt_tokens": w.prompt.tolist(),
                        "output_tokens": w.output.tolist()},
           "measured": {"first_token_s": (w.arrival_s + res.ttft_s).tolist(),
                        "finish_s": (w.arrival_s + res.e2e_s).tolist()},
           "iterations": {"kind": [int(w.prompt[0]), -1], "context_sum": [0, int(w.prompt[0]) + 1],
                          "start_s": [0.0, 0.05], "end_s": [0.05, 0.06]}}
    run.update(run_changes)
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"arch": name, "gpu": "h200", "max_batch": 8, "engine_version": "x", "runs": [run]}))
    return path


def test_validate_recovers_its_own_predictions(tmp_path):
    result = serving_validation.validate([_run_file(tmp_path)])
    assert result["runs"] == 1
    fitted = result["overall"]["fitted"]["median_abs_pct"]
    assert all(v < 1e-6 for v in fitted.values()), fitted
    assert result["rows"][0]["fitted"]["iterations"]["decode_iterations"] == 1
    out = tmp_path / "val.json"
    assert serving_validation.main(["--runs", str(_run_file(tmp_path)), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["overall"]["fitted"]["within_bar"]["ttft_p95"]


def test_incomplete_runs_are_left_out_and_bad_files_named(tmp_path, capsys):
    _, runs = load_runs(_run_file(tmp_path, complete=False))
    assert runs == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"arch": "llama-3.2-1b", "gpu": "h200", "max_batch": 8, "engine_version": "x",
                               "runs": [{"workload": {}}]}))
    with pytest.raises(UserError, match="'measured' is missing"):
        load_runs(bad)
    assert serving_validation.main(["--runs", str(bad), "--out", str(tmp_path / "v.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
