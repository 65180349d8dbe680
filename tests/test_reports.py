"""Tests of the HTML reports (charts, calibration report, what-if report, `idealrt report`), rendered from
the shipped data and from FAKE inputs built below from a made-up roofline (nothing here is measured)."""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.calibration_data import CalibrationInputs, load_inputs
from reports.calibration_report import render_calibration
from reports.charts import Bar, BarChart, Series, XYChart, bar_chart, fmt_num, linear_ticks, log_ticks, xy_chart
from reports.pareto import pareto_front
from reports.render import write_html
from reports.whatif_report import render_whatif, rows_from_prediction
from idealrt.cli import main
from simulator.errors import UserError
from simulator.ops import op_cost

CAL_SECTIONS = ("provenance", "roofline", "gemm", "attention", "allreduce", "launch", "fit", "accuracy", "errors",
                "heldout")
WHATIF_SECTIONS = ("by-t", "by-b", "by-p", "form", "memory", "pareto", "table")

# ---------------------------------------------------------------------------------------------------
# FAKE inputs
FAKE = {"note": "FAKE test data, not measured", "date": "2026-01-01T00:00:00+00:00", "command": "tests/test_reports.py"}
PEAK, BW = 8e14, 3e12  # made-up ceilings


def _time_us(op: str, shape: dict, stack: str) -> float:
    flops, nbytes = op_cost(op, shape)
    slow = 1.0 if stack == "torch" else 1.15
    return slow * max(flops / PEAK, nbytes / BW) * 1e6 + 4.0


def _point(op: str, shape: dict, stack: str) -> dict:
    us = _time_us(op, shape, stack)
    return {"op": op, "stack": stack, "kernel": f"fake.{op}.{stack}", "shape": shape, "median_us": us,
            "min_us": us * 0.98, "p10_us": us * 0.99, "p90_us": us * 1.02, "std_us": us * 0.01, "reps": 20,
            "flagged": False}


def fake_table() -> dict:
    """A small throughput table with every op class, both stacks."""
    pts = []
    for stack in ("triton", "torch"):
        for m, (n, k) in itertools.product((1, 16, 128, 1024, 4096), ((4096, 4096), (14336, 4096))):
            pts.append(_point("gemm", {"m": m, "n": n, "k": k}, stack))
        for s in (128, 512, 2048, 8192):
            pts.append(_point("prefill_attn", {"b": 1, "h": 32, "kv_h": 8, "s": s, "d": 128, "causal": True}, stack))
        for c in (128, 1024, 8192, 32768):
            pts.append(_point("decode_attn", {"b": 1, "h": 32, "kv_h": 8, "c": c, "d": 128}, stack))
        for nbytes in (2**14, 2**20, 2**26):
            pts.append(_point("elementwise", {"bytes": nbytes}, stack))
    for t, nbytes in itertools.product((2, 4), (2**12, 2**16, 2**20, 2**24, 2**28)):
        p = _point("allreduce", {"bytes": nbytes, "t": t}, "torch")
        p["median_us"] = 8.0 + nbytes / 1.5e11 * 1e6
        pts.append(p)
    for mode, us in (("eager", 5.1), ("graph", 1.3)):
        pts.append({**_point("launch", {"mode": mode}, "torch"), "median_us": us})
    return {"provenance": {**FAKE, "gpu": "h100-sxm", "gpu_name": "FAKE GPU"}, "derived": None,
            "ceilings": {"copy_bw_bytes_s": BW, "matmul_flops": PEAK}, "power_w": {"median": 600.0}, "points": pts}


def fake_measurements() -> list[dict]:
    """Configuration queries of two models, fit and held-out splits."""
    rows = []
    for i, (arch, b, p, o) in enumerate(itertools.product(("llama-3.1-8b", "llama-3.1-70b"), (1, 4),
                                                          (128, 512, 2048), (1, 16, 64))):
        pre = 0.004 * (10 if "70b" in arch else 1) + p * b * 2e-6
        step = 0.006 * (8 if "70b" in arch else 1)
        rows.append({"arch": arch, "gpu": "h100-sxm", "gpu_name": "FAKE GPU", "t": 1, "b": b, "p": p, "o": o,
                     "prefill_s": pre, "decode_s": step * (o - 1), "decode_steps": o - 1,
                     "decode_step_s": step if o > 1 else 0.0,
                     "total_s": pre + step * (o - 1), "repeats": 3, "engine": "idealrt", "backend": "triton",
                     "split": "heldout" if i % 3 == 0 else "fit", "provenance": FAKE})
    return rows


def fake_fit(rows: list[dict]) -> dict:
    queries = [{k: r[k] for k in ("arch", "gpu", "t", "b", "p", "o")} for r in rows if r["split"] == "fit"][:5]
    residuals = [{**q, "phase": ph, "measured_s": 1.0, "fitted_s": 1.01, "rel_err": 0.01}
                 for q in queries for ph in ("prefill", "decode")]
    return {"gpu": "h100-sxm", "stack": "triton", "coefficients": {"gemm": 1.03, "prefill_attn": 0.97,
            "prefill_fixed_s": 1e-4, "decode_fixed_s": 2e-5}, "bounds": {"gemm": [0.7, 1.5], "prefill_attn": [0.7, 1.5],
            "prefill_fixed_s": [0.0, None], "decode_fixed_s": [0.0, None]}, "unfitted": [], "queries": queries,
            "residuals": residuals, "provenance": FAKE}


def fake_predicted(rows: list[dict]) -> list[dict]:
    """Made-up predictions a few percent off the fake measurements."""
    out = []
    for i, r in enumerate(rows):
        f = 1 + 0.02 * ((i % 5) - 2)
        out.append({"prefill_s": r["prefill_s"] * f, "decode_step_s": r["decode_step_s"] / f,
                    "total_s": r["total_s"] * f})
    return out


def fake_inputs() -> CalibrationInputs:
    rows = fake_measurements()
    return CalibrationInputs("h100-sxm", "triton", "FAKE H100", table=fake_table(), measurements=rows,
                             fit=fake_fit(rows), predicted=fake_predicted(rows))


def fake_sweep_rows() -> list[dict]:
    """What-if rows over two models, two GPUs, t, b and p (contract: docs/CONTRACTS.md, 'What-if rows')."""
    rows = []
    for arch, gpu, t, b, p in itertools.product(("llama-3.1-8b", "llama-3.1-70b"), ("h100-sxm", "h200"),
                                               (1, 2, 4), (1, 8), (128, 1024, 4096)):
        big = 9 if "70b" in arch else 1
        pre = (0.005 + p * b * 1e-6) * big / t
        step = 0.006 * big / t ** 0.8 * (1 + b / 64)
        o = 64
        total = pre + step * (o - 1)
        rows.append({"arch": arch, "gpu": gpu, "stack": "triton", "t": t, "b": b, "p": p, "o": o, "n_gpus": t,
                     "prefill_s": pre, "decode_step_s": step, "total_s": total, "cost_usd": total * t * 4.0 / 3600,
                     "energy_j": total * t * 700, "mem_per_gpu_bytes": (16e9 * big / t + 1e6 * b * (p + o)),
                     "mem_weights_bytes": 16e9 * big / t, "mem_kv_bytes": 1e6 * b * (p + o), "mem_act_bytes": 0.0,
                     "gpu_mem_bytes": 80 * 2**30 if gpu == "h100-sxm" else 141 * 2**30,
                     "warnings": ["FAKE rows for tests"]})
    return rows


# ---------------------------------------------------------------------------------------------------
# helpers
EXTERNAL = re.compile(r"(https?:|ftp:|//[a-z0-9.-]+\.[a-z]{2,})", re.I)


def assert_self_contained(html: str) -> BeautifulSoup:
    """Parse the page and check that it references nothing outside itself."""
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    soup = BeautifulSoup(html, "html.parser")
    assert not soup.find_all(["link", "img", "iframe", "object", "embed"])
    assert all(not s.get("src") for s in soup.find_all("script"))
    for tag in soup.find_all(href=True):
        assert tag["href"].startswith("#"), tag["href"]
    return soup


def charts(tag) -> list:
    """The charts (div.chart) inside a parsed page or section."""
    return tag.find_all("div", class_="chart")


def chart_title(chart) -> str:
    return chart.find("svg").find("text", class_="ttl").get_text()


def legend(chart) -> list[str]:
    return [li.get_text() for li in chart.select("ul.legend li")]


def assert_chart(chart, title_word: str) -> None:
    """A chart has an SVG with a viewBox, a title containing `title_word`, axis labels, and a legend."""
    svg = chart.find("svg")
    assert svg.get("viewbox") or svg.get("viewBox")
    assert title_word.lower() in chart_title(chart).lower()
    assert len(svg.find_all("text", class_="ax")) >= 1
    assert legend(chart)


def sections(soup: BeautifulSoup) -> dict:
    return {s["id"]: s for s in soup.find_all("section")}


# ---------------------------------------------------------------------------------------------------
# charts
def test_linear_ticks_are_nice_and_cover_the_range():
    ticks = linear_ticks(0.13, 9.7)
    assert ticks[0] <= 0.13 and ticks[-1] >= 9.7
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (1.0, 2.0)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(1e-6, 1e6))
def test_linear_ticks_cover_any_range(lo, span):
    ticks = linear_ticks(lo, lo + span)
    slack = 1e-6 * span  # float noise at the ends is allowed
    assert ticks[0] <= lo + slack and ticks[-1] >= lo + span - slack and 2 <= len(ticks) <= 12


def test_log_ticks_are_decades_over_wide_ranges_and_add_2_5_over_narrow():
    assert log_ticks(3e-3, 4e2) == [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
    assert log_ticks(1.5, 30.0) == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-12, 1e12), st.floats(1.0001, 1e15))
def test_log_ticks_cover_any_positive_range(lo, ratio):
    ticks = log_ticks(lo, lo * ratio)
    assert ticks[0] <= lo * (1 + 1e-9) and ticks[-1] >= lo * ratio * (1 - 1e-9)
    assert ticks == sorted(ticks) and len(ticks) <= 16


def test_fmt_num_uses_si_prefixes():
    assert [fmt_num(v) for v in (0, 2.5e14, 1500, 0.004, 12)] == ["0", "250T", "1.5k", "4m", "12"]


def test_xy_chart_has_title_axes_legend_hover_and_skips_non_positive_points_on_log_axes():
    chart = XYChart("Latency & co", "p (tokens)", "time (s)",
                    [Series("a<b", [1, 10, 0, -1], [0.1, 0.2, 0.3, 0.4], hover=["h1", "h2", "h3", "h4"])],
                    x_log=True, y_log=True)
    div = charts(BeautifulSoup(xy_chart(chart), "html.parser"))[0]
    assert_chart(div, "latency & co")
    assert [t.get_text() for t in div.find_all("title")] == ["h1", "h2"]  # 0 and -1 cannot sit on a log axis
    assert legend(div) == ["a<b"]


def test_empty_chart_says_no_data():
    assert "no data" in xy_chart(XYChart("Empty", "x", "y", []))


def test_bar_chart_draws_stacked_segments_and_the_limit_line():
    div = charts(BeautifulSoup(bar_chart(BarChart("Memory", "GiB", [Bar("m1", {"weights": 40, "kv": 10})], limit=80,
                                                   limit_label="capacity")), "html.parser"))[0]
    rects = div.find_all("rect", class_="bar")
    assert len(rects) == 2 and float(rects[1]["width"]) < float(rects[0]["width"])
    assert legend(div) == ["weights", "kv", "capacity"]


def test_pareto_front_keeps_only_undominated_points():
    cost, acc = [1.0, 2.0, 3.0, 2.5, 4.0], [0.5, 0.7, 0.6, 0.8, 0.8]
    assert pareto_front(cost, acc, maximize_value=True) == [0, 1, 3]
    assert pareto_front([3.0, 1.0, 2.0], [1.0, 3.0, 2.0]) == [1, 2, 0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=30))
def test_no_point_dominates_a_pareto_point(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    front = pareto_front(xs, ys)
    for i in front:
        assert not any(xs[j] <= xs[i] and ys[j] <= ys[i] and (xs[j], ys[j]) != (xs[i], ys[i]) for j in range(len(xs)))


# ---------------------------------------------------------------------------------------------------
# calibration report
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


def _write_fake_data(root):
    rows = fake_measurements()
    for sub in ("tables", "measurements", "fits"):
        (root / sub).mkdir()
    (root / "tables" / "h100-sxm.json").write_text(json.dumps(fake_table()))
    (root / "measurements" / "h100-sxm_t1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "fits" / "h100-sxm_triton.json").write_text(json.dumps(fake_fit(rows)))
    return rows


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


def test_calibration_report_from_the_shipped_data():
    inp = load_inputs("h100-sxm", "triton")
    soup = assert_self_contained(render_calibration(inp))
    secs = sections(soup)
    assert set(CAL_SECTIONS) <= set(secs)
    for sid in CAL_SECTIONS:  # each section shows its data or says it is missing
        assert charts(secs[sid]) or secs[sid].find("table") or secs[sid].find(class_="missing"), sid
    if inp.table:
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


# ---------------------------------------------------------------------------------------------------
# what-if report
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


def test_committed_examples_are_self_contained():
    """The same checks as assert_self_contained, by regular expression (the pages are megabytes)."""
    examples = sorted((Path(__file__).resolve().parents[1] / "reports" / "examples").glob("*.html"))
    assert examples, "reports/examples/*.html are missing: run reports/examples/regenerate.sh"
    for page in examples:
        html = page.read_text()
        assert "<section" in html and not EXTERNAL.search(html), page.name
        assert not re.search(r"<(link|img|iframe|object|embed)\b|<script[^>]*\bsrc=", html, re.I), page.name
        assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html)), page.name


def test_a_gpu_without_its_own_table_shows_the_derived_one(tmp_path):
    _write_fake_data(tmp_path)
    inp = load_inputs("a100-80gb", "triton", data_dir=tmp_path)
    assert inp.table["derived"]["from"] == "h100-sxm.json" and inp.table_path is None
    soup = assert_self_contained(render_calibration(inp))
    assert "DERIVED table: scaled from h100-sxm.json" in sections(soup)["provenance"].get_text()
    assert charts(sections(soup)["roofline"])
