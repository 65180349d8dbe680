"""FAKE inputs for the report tests, built from a made-up roofline (nothing here is measured), and the checks
every rendered page passes (self-contained, sections, charts)."""
from __future__ import annotations

import itertools
import json
import re

from bs4 import BeautifulSoup

from reports.calibration_data import CalibrationInputs
from simulator.ops import op_cost

CAL_SECTIONS = ("provenance", "roofline", "gemm", "attention", "allreduce", "launch", "fit", "accuracy", "errors",
                "heldout")
WHATIF_SECTIONS = ("by-t", "by-b", "by-p", "form", "memory", "pareto", "table")

# ---------------------------------------------------------------------------------------------------
# FAKE inputs
FAKE = {"note": "FAKE test data, not measured", "date": "2026-01-01T00:00:00+00:00", "command": "tests/report_fakes.py"}
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


def _write_fake_data(root):
    rows = fake_measurements()
    for sub in ("tables", "measurements", "fits"):
        (root / sub).mkdir()
    (root / "tables" / "h100-sxm.json").write_text(json.dumps(fake_table()))
    (root / "measurements" / "h100-sxm_t1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "fits" / "h100-sxm_triton.json").write_text(json.dumps(fake_fit(rows)))
    return rows
