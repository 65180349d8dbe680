"""The serving what-if page of `idealrt plan --html`: the Pareto front of tokens/s per GPU against tokens/s per
user, cost of each deployment, the latency distributions of the best deployments, and the table of all.

Input is a `simulator.plan.PlanResult` whose rows carry "pareto" (idealrt.api.plan sets it).
"""
from __future__ import annotations

import math
import os

import numpy as np

from reports.charts import PALETTE, Series, XYChart, xy_chart
from reports.render import Section, Table, render_page, write_html

COLUMNS = (("gpu", "gpu"), ("t", "t"), ("pp", "pp"), ("replicas", "replicas"), ("n_gpus", "GPUs"),
           ("max_batch", "max batch"),
           ("meets_slo", "meets target"), ("pareto", "Pareto"), ("usd_per_1k_tokens", "USD per 1k tokens"),
           ("joules_per_1k_tokens", "J per 1k tokens"), ("tokens_per_s_per_gpu", "tokens/s per GPU"),
           ("tokens_per_s_per_user", "tokens/s per user"), ("ttft_p50", "TTFT p50 (s)"), ("ttft_p95", "TTFT p95 (s)"),
           ("tpot_p50", "TPOT p50 (s)"), ("tpot_p95", "TPOT p95 (s)"), ("e2e_p95", "E2E p95 (s)"),
           ("queue_p95", "queueing p95 (s)"), ("gpu_hours", "GPU-hours"))


def _label(r: dict) -> str:
    stages = f" pp={r['pp']}" if r.get("pp", 1) > 1 else ""
    return f"{r['gpu']} t={r['t']}{stages} x{r['replicas']} b<={r['max_batch']}"


def _finite(rows: list[dict], *keys: str) -> list[dict]:
    return [r for r in rows if all(isinstance(r[k], (int, float)) and math.isfinite(r[k]) for k in keys)]


def _front(rows: list[dict]) -> Section:
    x, y = "tokens_per_s_per_user", "tokens_per_s_per_gpu"
    sel = _finite(rows, x, y)
    series = []
    for i, (name, keep) in enumerate((("meets the target", True), ("misses it", False))):
        mine = [r for r in sel if r["meets_slo"] == keep]
        series.append(Series(name, [r[x] for r in mine], [r[y] for r in mine], hover=[_label(r) for r in mine],
                             color=PALETTE[i], marker="circle" if keep else "square"))
    front = sorted((r for r in sel if r.get("pareto")), key=lambda r: r[x])
    series.append(Series("Pareto front", [r[x] for r in front], [r[y] for r in front], mode="line", color="#000",
                         dashed=True))
    chart = xy_chart(XYChart("Throughput per GPU against speed per user", "tokens/s per user (1 / TPOT)",
                             "output tokens/s per GPU", series, x_log=True, y_log=True))
    table = Table([n for _, n in COLUMNS], [[r.get(k) for k, _ in COLUMNS] for r in front],
                  "deployments on the front: no other has both more tokens/s per GPU and more per user")
    return Section("pareto", "Pareto front", charts=[chart], tables=[table])


def _cost(rows: list[dict]) -> Section:
    sel = _finite(rows, "ttft_p95", "usd_per_1k_tokens")
    gpus = list(dict.fromkeys(r["gpu"] for r in sel))
    series = [Series(g, [r["ttft_p95"] for r in sel if r["gpu"] == g],
                     [r["usd_per_1k_tokens"] for r in sel if r["gpu"] == g],
                     hover=[_label(r) for r in sel if r["gpu"] == g], color=PALETTE[i % len(PALETTE)])
              for i, g in enumerate(gpus)]
    return Section("cost", "Cost against latency", charts=[xy_chart(XYChart(
        "Cost per 1,000 output tokens against TTFT p95", "TTFT p95 (s)", "USD per 1,000 output tokens", series,
        x_log=True, y_log=True))])


def _cdf(values: np.ndarray) -> tuple[list[float], list[float]]:
    v = np.sort(values[np.isfinite(values)])
    return v.tolist(), (np.arange(1, v.size + 1) / max(v.size, 1)).tolist()


def _latencies(best: list) -> Section:
    charts = []
    for key, label in (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "end-to-end latency (s)"),
                       ("queue_s", "queueing delay (s)")):
        series = []
        for i, res in enumerate(best):
            xs, ys = _cdf(getattr(res, key))
            series.append(Series(_label(res.row()), xs, ys, mode="line", color=PALETTE[i % len(PALETTE)]))
        charts.append(xy_chart(XYChart(f"Distribution of {label.split(' (')[0]}", label, "fraction of requests",
                                       series)))
    return Section("latency", "Latency distributions", "Per request, for the first deployments of the ranking "
                   "(cheapest meeting the target first).", charts=charts)


def render_serving(result, arch: str, workload: str) -> str:
    """The serving what-if page of a plan as one self-contained HTML string."""
    rows = result.rows
    table = Table([n for _, n in COLUMNS], [[r.get(k) for k, _ in COLUMNS] for r in rows],
                  "every simulated deployment, those meeting the target first, cheapest first")
    sections = [_front(rows), _cost(rows), _latencies(result.best),
                Section("table", "All deployments", tables=[table])]
    if result.pruned:
        sections.append(Section("pruned", "Pruned by memory", tables=[Table(
            ["gpu", "t", "pp", "max batch", "reason"],
            [[p["gpu"], p["t"], p.get("pp", 1), p.get("max_batch"), p["reason"]] for p in result.pruned])]))
    slo = ", ".join(f"{k} <= {v:g} s" for k, v in result.slo.items())
    return render_page("serving.html.j2", f"idealrt plan: {arch}", sections, arch=arch, n_rows=len(rows),
                       n_meeting=len(result.meeting), workload=workload, slo=slo, warnings=list(result.warnings))


def write_serving(path: str | os.PathLike, result, arch: str, workload: str) -> None:
    """Render the serving page of a plan and write it atomically to `path`."""
    write_html(path, render_serving(result, arch, workload))
