"""CPU tests of energy metered over a window of runs (calibration/energy_window.py) and `measure --energy-window`."""
from __future__ import annotations

import json
import time

import pytest

from calibration import measurements_io as mio
from calibration.energy_window import MIN_STEPS, run_window, window_power
from calibration.query_timing import RunTimes
from idealrt.cli import main
from simulator.hf_config import load_config
from tests.test_queries import TINY_CONFIG


def stepping_counter(watts: float, step_s: float):
    """A fake energy counter that advances every `step_s` of host time, at `watts`."""
    t0 = time.perf_counter()
    return lambda: watts * step_s * int((time.perf_counter() - t0) / step_s)


def test_window_power_keeps_whole_steps_inside_the_window() -> None:
    changes = [(0.1 * i, 50.0 * i) for i in range(1, 15)]  # 500 W, a step every 100 ms
    watts, steps = window_power(changes, 0.25, 1.32)  # changes at 0.3 .. 1.3 inside: 10 whole steps
    assert watts == pytest.approx(500.0) and steps == 10
    assert window_power(changes, 0.25, 0.25 + 0.1 * MIN_STEPS - 0.06) is None  # too few steps to count


def test_run_window_reads_the_power_of_runs_back_to_back() -> None:
    def run() -> RunTimes:
        time.sleep(0.004)
        return RunTimes(0.001, 0.003)

    fields = run_window(run, stepping_counter(400.0, 0.01), seconds=0.3)
    win = fields["energy_window"]
    assert fields["mean_power_w"] == pytest.approx(400.0, rel=0.05)
    assert fields["energy_j"] == pytest.approx(fields["mean_power_w"] * 0.004)
    assert win["runs"] >= 3 and win["seconds"] >= 0.3 and win["counter_steps"] >= 20
    assert run_window(run, lambda: 1.0, seconds=0.05) is None  # a counter that never steps meters nothing


def test_measure_queries_from_a_file_with_energy_windows(tmp_path, monkeypatch, capsys) -> None:
    from idealrt import cli_measure

    cfg, listed, out = tmp_path / "tiny.json", tmp_path / "q.jsonl", str(tmp_path / "e.jsonl")
    cfg.write_text(json.dumps(TINY_CONFIG))
    spec = mio.arch_spec_fields(load_config(str(cfg)))  # the listed rows carry the spec of their architecture
    listed.write_text("\n".join(json.dumps({"arch": "tiny", "arch_spec": spec, "t": 1, "b": b, "p": p, "o": o})
                                for b, p, o in [(1, 5, 3), (2, 9, 1), (1, 4, 2)]) + "\n")
    argv = ["measure", "--device", "cpu", "--backend", "torch", "--out", out, "--energy-window", "0.2"]
    monkeypatch.setattr(cli_measure, "_energy_counter", lambda device: stepping_counter(300.0, 0.005))
    assert main(argv + ["--queries-from", str(listed)]) == 0
    rows = mio.read_rows(out)
    assert [(r["b"], r["p"], r["o"]) for r in rows] == [(1, 5, 3), (1, 4, 2), (2, 9, 1)]
    for r in rows:
        assert mio.arch_of(r) == load_config(str(cfg))
        assert r["mean_power_w"] == pytest.approx(300.0, rel=0.1) and r["energy_window"]["seconds"] >= 0.2
    monkeypatch.setattr(cli_measure, "_energy_counter", lambda device: None)  # no counter: no energy fields
    assert main(argv + ["--config", str(cfg), "--queries", "6,2,1"]) == 0
    last = mio.read_rows(out)[-1]
    assert "energy_j" not in last and "energy window not metered" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--energy-window", "0"], "--energy-window 0.0: give a positive number"),
    (["--energy-window", "1", "--engine", "hf-eager"], "--energy-window 1.0"),
    (["--queries-from", "no/such.jsonl"], "--queries-from no/such.jsonl: no such file"),
])
def test_measure_energy_window_bad_input_is_one_line(extra, message, capsys) -> None:
    assert main(["measure", "--arch", "llama-3.2-1b", "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
