"""Tests of the what-if report (`idealrt sweep --html`, `idealrt report --whatif`) and of the example pages that
reports/examples/regenerate.sh makes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup

from reports.pareto import pareto_front
from reports.render import write_html
from reports.whatif_report import render_whatif, rows_from_prediction
from idealrt.cli import main
from simulator.errors import UserError
from report_fakes import (WHATIF_SECTIONS, assert_chart, assert_self_contained, chart_title, charts, fake_sweep_rows,
                          sections)

EXAMPLES = Path(__file__).resolve().parents[1] / "reports" / "examples"


def test_whatif_report_from_fake_rows_has_every_section_and_chart():
    soup = assert_self_contained(render_whatif(fake_sweep_rows()))
    secs = sections(soup)
    assert set(WHATIF_SECTIONS) <= set(secs)
    for var in "tbp":
        titles = [chart_title(c) for c in charts(secs[f"by-{var}"])]
        assert titles == [f"Latency against {var}", f"Throughput against {var}", f"Cost against {var}"]
    assert_chart(charts(secs["form"])[0], "F(p)")
    assert_chart(charts(secs["form"])[1], "F(p) + g")
    mem = charts(secs["memory"])
    assert len(mem) == 2 and all(m.find("svg").find("line", attrs={"stroke": "#D00"}) for m in mem)  # capacity
    assert_chart(charts(secs["pareto"])[0], "cost")
    assert len(secs["table"].find_all("tr")) == len(fake_sweep_rows()) + 1


def test_whatif_pareto_table_lists_exactly_the_frontier():
    rows = fake_sweep_rows()
    soup = BeautifulSoup(render_whatif(rows), "html.parser")
    listed = len(sections(soup)["pareto"].find_all("tr")) - 1
    assert listed == len(pareto_front([r["total_s"] for r in rows], [r["cost_usd"] for r in rows]))


def test_whatif_rows_from_the_simulator_render():
    from simulator.catalog import get_arch
    from simulator.gpus import get_gpu
    from simulator.predict import predict

    rows = []
    for t in (1, 2, 4):
        pred = predict(get_arch("llama-3.1-70b"), get_gpu("h100-sxm"), np.array([[256], [2048]]), 32,
                       np.array([1, 16]), t)
        rows += rows_from_prediction(pred, stack="triton")
    assert len(rows) == 12 and [r["total_s"] for r in rows[-4:]] == pred.total_s.ravel().tolist()
    assert [(r["p"], r["b"]) for r in rows[-4:]] == [(256, 1), (256, 16), (2048, 1), (2048, 16)]
    assert not rows[0]["fits"]  # 70B in bf16 does not fit one 80 GiB GPU
    soup = assert_self_contained(render_whatif(rows))
    assert "do not fit in GPU memory" in soup.get_text()
    assert set(WHATIF_SECTIONS) <= set(sections(soup))


@pytest.mark.parametrize("change, needle", [({"total_s": float("nan")}, "'total_s'"), ({"p": None}, None)])
def test_whatif_bad_rows_are_clear_errors(change, needle):
    row = fake_sweep_rows()[0]
    row.update(change)
    if change.get("p", 0) is None:
        del row["p"]
        needle = "key(s) p missing"
    with pytest.raises(UserError, match=re.escape(needle)):
        render_whatif([row])
    with pytest.raises(UserError, match="no rows"):
        render_whatif([])


def test_write_html_is_atomic_and_refuses_a_folder(tmp_path):
    out = write_html(tmp_path / "a.html", "<p>x</p>")
    assert out.read_text() == "<p>x</p>" and [p.name for p in tmp_path.iterdir()] == ["a.html"]
    with pytest.raises(UserError, match="is a folder"):
        write_html(tmp_path, "<p>x</p>")


def test_report_command_renders_a_sweeps_rows_file(tmp_path, capsys):
    rows = tmp_path / "rows.json"
    assert main(["sweep", "--model", "llama-3.1-8b", "--gpu", "h100-sxm,h200", "--prompt", "128,1024", "--output", "64",
                 "--batch", "1,8", "--tp", "1,2", "-o", str(rows)]) == 0
    out = tmp_path / "w.html"
    assert main(["report", "--whatif", str(rows), "-o", str(out)]) == 0
    assert "16 rows" in capsys.readouterr().out
    secs = sections(assert_self_contained(out.read_text()))
    assert {"by-t", "by-b", "by-p", "form", "memory", "pareto"} <= set(secs)
    assert len(secs["table"].find_all("tr")) == 17


@pytest.mark.parametrize("text, needle", [('{"a": 1}', "expected a JSON list of row objects"),
                                          ("[1, 2", "not valid JSON"), ('[{"model": "x"}]', "missing")])
def test_report_command_bad_rows_file_is_one_line(tmp_path, capsys, text, needle):
    rows = tmp_path / "rows.json"
    rows.write_text(text)
    assert main(["report", "--whatif", str(rows), "-o", str(tmp_path / "w.html")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and not (tmp_path / "w.html").exists()


def test_the_example_pages_render(tmp_path, capsys):
    """reports/examples/regenerate.sh's what-if and study commands (the calibration page: test_reports.py)."""
    whatif, study = tmp_path / "whatif.html", tmp_path / "study.html"
    assert main(["sweep", "--model", "llama-3.1-8b,llama-3.1-70b,mixtral-8x7b", "--gpu", "h100-sxm,h200",
                 "--prompt", "128:8192:x4", "--output", "128", "--batch", "1,8,32", "--tp", "1,2,4,8",
                 "--html", str(whatif)]) == 0
    assert main(["study", "--accuracy", str(EXAMPLES / "accuracy-mmlu.csv"), "--csv", str(tmp_path / "study.csv"),
                 "--html", str(study)]) == 0
    capsys.readouterr()
    assert set(WHATIF_SECTIONS) <= set(sections(assert_self_contained(whatif.read_text())))
    assert {"mix", "study", "capability"} <= set(sections(assert_self_contained(study.read_text())))
