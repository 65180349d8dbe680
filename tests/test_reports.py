"""Tests of the calibration report and `idealrt report --gpu`, rendered from the shipped data and from the FAKE
inputs of tests/report_fakes.py."""
from __future__ import annotations

import pytest

from reports.calibration_data import load_inputs
from reports.calibration_report import render_calibration
from idealrt.cli import main
from report_fakes import (CAL_SECTIONS, _write_fake_data, assert_chart, assert_self_contained, charts, fake_inputs,
                          legend, sections)


def test_calibration_report_from_fake_inputs_has_every_section_and_chart():
    soup = assert_self_contained(render_calibration(fake_inputs()))
    secs = sections(soup)
    assert set(CAL_SECTIONS) <= set(secs)
    assert not soup.find_all(class_="missing")
    expect = {"roofline": ["roofline"], "gemm": ["gemm"], "attention": ["prefill", "decode"],
              "allreduce": ["latency", "bus bandwidth"], "accuracy": ["total", "prefill", "decode"],
              "errors": ["against p", "against o"]}
    for sid, words in expect.items():
        found = charts(secs[sid])
        assert len(found) >= len(words), sid
        for chart, word in zip(found, words):
            assert_chart(chart, word)
    labels = legend(charts(secs["roofline"])[0])
    assert {"gemm · ours (Triton)", "gemm · vendor (torch)", "measured ceilings"} <= set(labels)
    assert secs["accuracy"].find("line", attrs={"stroke-dasharray": "4,4"})  # the y = x line
    heading = [th.get_text() for th in secs["heldout"].find_all("th")]
    assert "median |error| (%)" in heading and len(secs["heldout"].find_all("tr")) == 4
    by = [c.get_text() for c in secs["errors"].find_all("caption")]
    assert by == [f"total-time error by {k}" for k in ("p", "o", "b", "t", "arch")]
    assert "FAKE test data" in secs["provenance"].get_text()


def test_calibration_report_flags_a_derived_table():
    inp = fake_inputs()
    inp.table["derived"] = {"from": "h100-sxm.json", "rule": "spec ratios"}
    html = render_calibration(inp)
    assert "derived table" in html.lower() and "DERIVED table: scaled from h100-sxm.json" in html


def test_calibration_report_without_data_says_not_measured_yet(tmp_path):
    inp = load_inputs("b200", "triton", data_dir=tmp_path)
    soup = assert_self_contained(render_calibration(inp))
    missing = soup.find_all(class_="missing")
    assert len(missing) == len(CAL_SECTIONS) and "Not measured yet" in missing[0].get_text()


def test_load_inputs_reads_table_measurements_fit_and_predicts_every_query(tmp_path):
    rows = _write_fake_data(tmp_path)
    inp = load_inputs("h100-sxm", "triton", data_dir=tmp_path)
    assert inp.gpu == "h100-sxm" and inp.table["points"] and inp.fit["coefficients"]["gemm"] == 1.03
    assert len(inp.measurements) == len(rows) == len(inp.predicted)
    assert all(p and p["total_s"] > 0 for p in inp.predicted), inp.predict_note
    soup = assert_self_contained(render_calibration(inp))
    assert len(sections(soup)["accuracy"].find_all("tr")) == len(rows) + 1


def test_load_inputs_keeps_only_the_rows_of_the_stack(tmp_path):
    _write_fake_data(tmp_path)
    assert load_inputs("h100-sxm", "torch", data_dir=tmp_path, predict=False).measurements == []


def test_calibration_report_from_the_shipped_data(tmp_path):
    """The example page reports/examples/calibration-h100-sxm_triton.html, as regenerate.sh makes it."""
    out = tmp_path / "calibration-h100-sxm_triton.html"
    assert main(["report", "--gpu", "h100-sxm", "--stack", "triton", "-o", str(out)]) == 0
    soup = assert_self_contained(out.read_text())
    secs = sections(soup)
    assert set(CAL_SECTIONS) <= set(secs)
    for sid in CAL_SECTIONS:  # each section shows its data or says it is missing
        assert charts(secs[sid]) or secs[sid].find("table") or secs[sid].find(class_="missing"), sid
    assert_chart(charts(secs["roofline"])[0], "roofline")


def test_report_command_writes_the_file(tmp_path, capsys):
    _write_fake_data(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", "--gpu", "h100-sxm", "--data-dir", str(tmp_path), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_self_contained(out.read_text())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.html")] == []  # no temp file left


@pytest.mark.parametrize("argv, needle", [
    (["report", "--gpu", "h900"], "unknown GPU 'h900'"),
    (["report", "-o", "/no/such/folder/r.html"], "does not exist"),
])
def test_report_command_bad_input_is_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_report_command_bad_measurement_file_is_one_line(tmp_path, capsys):
    _write_fake_data(tmp_path)
    (tmp_path / "measurements" / "h100-sxm_t2.jsonl").write_text('{"arch": "x"\n')
    assert main(["report", "--data-dir", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "not valid JSON" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def test_a_gpu_without_its_own_table_shows_the_derived_one(tmp_path):
    _write_fake_data(tmp_path)
    inp = load_inputs("a100-80gb", "triton", data_dir=tmp_path)
    assert inp.table["derived"]["from"] == "h100-sxm.json" and inp.table_path is None
    soup = assert_self_contained(render_calibration(inp))
    assert "DERIVED table: scaled from h100-sxm.json" in sections(soup)["provenance"].get_text()
    assert charts(sections(soup)["roofline"])
