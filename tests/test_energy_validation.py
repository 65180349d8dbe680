"""Energy validation (calibration/energy_validation.py): summaries by hand, and the command on one committed row."""
import json

import pytest

from calibration.energy_validation import ERRORS, main, summarize
from simulator.paths import MEASUREMENTS_DIR


def record(energy, time, power, stack="triton"):
    return {"gpu": "h200", "t": 1, "stack": stack, "method": "table", "energy_err_pct": energy,
            "time_err_pct": time, "power_err_pct": power, "baseline_energy_err_pct": energy, "meter_err_pct": 0.0}


def test_summary_gives_median_p95_and_bias_of_each_error():
    recs = [record(-10.0, 1.0, -11.0), record(20.0, 2.0, 18.0), record(-30.0, 3.0, -32.0), record(5.0, 0, 0, "torch")]
    torch, triton = summarize(recs, ["gpu", "t", "stack"])
    assert triton["n"] == 3 and torch["n"] == 1
    assert triton["energy"] == {"median_abs_pct": 20.0, "p95_abs_pct": 29.0, "median_pct": -10.0}
    assert triton["time"]["median_pct"] == 2.0 and set(triton) >= set(ERRORS)


def energy_row() -> dict:
    """The first committed H200 row with a measured energy."""
    for line in (MEASUREMENTS_DIR / "h200_t1.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("energy_j") and row["engine"] == "idealrt":
            return row
    pytest.skip("no committed row with energy_j")


def test_command_writes_records_of_every_row_with_energy(tmp_path, capsys):
    row = energy_row()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(row) + "\n" + json.dumps({k: v for k, v in row.items() if k != "energy_j"}) + "\n")
    out = tmp_path / "energy.json"
    assert main(["--measurements", str(rows), "--out", str(out), "--any-engine-version"]) == 0
    result = json.loads(out.read_text())
    table = [r for r in result["records"] if r["method"] == "table"]
    window_j = row["mean_power_w"] * row["total_s"]  # all timed runs' energy over their time, per run
    assert len(table) == 1 and table[0]["measured_j"] == pytest.approx(window_j, rel=1e-3)
    rec = table[0]
    assert rec["median_run_j"] == pytest.approx(row["energy_j"], rel=1e-3)
    assert rec["energy_err_pct"] == pytest.approx(100 * (rec["predicted_j"] / window_j - 1), rel=1e-3, abs=0.01)
    assert rec["predicted_w"] == pytest.approx(rec["predicted_j"] / rec["predicted_s"], rel=1e-3)
    assert result["summary"][0]["stack"] == row["backend"] and result["provenance"]["measurements"]


def test_rows_without_energy_are_one_line_and_exit_2(tmp_path, capsys):
    row = {k: v for k, v in energy_row().items() if k != "energy_j"}
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(row) + "\n")
    assert main(["--measurements", str(rows), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --measurements: no row") and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()


def test_windowed_rows_are_reported_apart_with_their_window(tmp_path):
    window = json.loads((MEASUREMENTS_DIR / "energy_windows" / "h200_t1_triton.jsonl").read_text().splitlines()[0])
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(energy_row()) + "\n" + json.dumps(window) + "\n")
    out = tmp_path / "energy.json"
    assert main(["--measurements", str(rows), "--out", str(out), "--any-engine-version"]) == 0
    result = json.loads(out.read_text())
    by = {r["metering"]: r for r in result["records"] if r["method"] == "table"}
    assert set(by) == {"runs", "window"}
    assert by["window"]["window_s"] == pytest.approx(window["energy_window"]["seconds"], rel=1e-3)
    assert by["window"]["measured_w"] == pytest.approx(window["mean_power_w"], rel=1e-3)
    assert {s["metering"] for s in result["summary"]} == {"runs", "window"}
