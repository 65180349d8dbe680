"""The what-if report of a sweep: latency, throughput and cost against t, b and p; the F(p) + g·(o − 1)
form; memory per GPU against capacity; and the cost/latency Pareto frontier.

Input is the sweep's tidy rows, one dict per configuration, as `simulator/cli_sweep.py` builds them (keys in
docs/CONTRACTS.md, "What-if rows"); `idealrt sweep ... --html FILE` calls `write_whatif(FILE, rows)`.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict

import numpy as np

from reports.charts import PALETTE, Bar, BarChart, Series, XYChart, bar_chart, fmt_num, xy_chart
from reports.pareto import pareto_front
from reports.render import Section, Table, render_page, write_html
from reports.whatif_precision import precision_of, precision_section
from simulator.errors import UserError

REQUIRED = ("arch", "gpu", "t", "b", "p", "o", "prefill_s", "decode_step_s", "total_s")
SWEPT = ("t", "b", "p", "o")
AXES = {"t": "tensor-parallel degree t", "b": "batch b (requests)", "p": "prompt length p (tokens)"}
METRICS = (("total_s", "latency (s)", "Latency"),
           ("tokens_per_gpu_s", "throughput (output tokens/s per GPU)", "Throughput"),
           ("usd_per_1k_tokens", "cost (USD per 1,000 prompt + output tokens)", "Cost"))
SWEEP_NAMES = {"model": "arch", "tp": "t", "batch": "b", "prompt": "p", "output": "o"}  # idealrt sweep's columns
MAX_BARS = 40
MAX_LINES = 12
NOTHING = "Nothing to draw."
GIB = 2**30


def normalize_rows(rows: list[dict]) -> list[dict]:
    """Check the required keys and add the derived ones (n_gpus, tokens per second per GPU, cost per 1k
    tokens, GPU capacity). Accepts the sweep's own column names too (model, tp, batch, prompt, output,
    mem_per_gpu_gib, warnings joined by " | ")."""
    if not rows:
        raise UserError("the sweep produced no rows: nothing to report; widen the sweep's ranges")
    out = []
    for i, r in enumerate(rows):
        r = {SWEEP_NAMES.get(k, k): v for k, v in r.items()}
        if "mem_per_gpu_gib" in r:
            r["mem_per_gpu_bytes"] = r.pop("mem_per_gpu_gib") * GIB
        if isinstance(r.get("warnings"), str):
            r["warnings"] = [w for w in r["warnings"].split(" | ") if w]
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise UserError(f"what-if row {i}: key(s) {', '.join(missing)} missing; rows need {', '.join(REQUIRED)}")
        for k in ("prefill_s", "decode_step_s", "total_s"):
            if not (isinstance(r[k], (int, float)) and math.isfinite(r[k]) and r[k] >= 0):
                raise UserError(f"what-if row {i}: '{k}' is {r[k]!r}; it must be a finite time >= 0")
        n = r.setdefault("n_gpus", r["t"])
        r.setdefault("tokens_per_s", r["b"] * r["o"] / r["total_s"] if r["total_s"] else math.nan)
        r["tokens_per_gpu_s"] = r["tokens_per_s"] / n
        cost = r.get("cost_usd")  # of the whole batch; per 1,000 tokens counts prompt and output, as API prices do
        r["usd_per_1k_tokens"] = 1000 * cost / (r["b"] * (r["p"] + r["o"])) if cost is not None else math.nan
        if "gpu_mem_bytes" not in r:
            r["gpu_mem_bytes"] = _capacity(r["gpu"])
        out.append(r)
    return out


def _capacity(gpu: str) -> int | None:
    """Memory of a catalog GPU, or None for a name the catalog does not know."""
    from simulator.gpus import get_gpu

    try:
        return get_gpu(gpu).mem_bytes
    except UserError:
        return None


def rows_from_prediction(pred, stack: str | None = None) -> list[dict]:
    """What-if rows of a `simulator.predict.Prediction` (one per element of its p, o, b arrays)."""
    mem = pred.memory
    cols = {"p": pred.p, "o": pred.o, "b": pred.b, "prefill_s": pred.prefill_s, "decode_step_s": pred.decode_step_s,
            "total_s": pred.total_s, "tokens_per_s": pred.tokens_per_s, "cost_usd": pred.cost_usd,
            "energy_j": pred.energy_j, "mem_per_gpu_bytes": mem.total_bytes, "mem_kv_bytes": mem.kv_cache_bytes,
            "mem_act_bytes": mem.activation_bytes, "mem_weights_bytes": mem.weights_bytes, "fits": pred.fits}
    flat = {k: np.broadcast_to(v, np.shape(pred.p)).ravel() for k, v in cols.items()}
    fixed = {"arch": pred.arch, "gpu": pred.gpu, "t": pred.t, "n_gpus": pred.n_gpus,
             "gpu_mem_bytes": pred.mem_capacity_bytes, "precision": pred.precision.label,
             "derived_not_measured": " ".join(pred.derived_classes)}
    warned = {w: np.broadcast_to(m, np.shape(pred.p)).ravel() for w, m in pred.warned.items()}  # each row's own
    if stack:
        fixed["stack"] = stack
    kinds = {"p": int, "o": int, "b": int, "fits": bool}
    return [{**fixed, **{k: kinds.get(k, float)(v[i]) for k, v in flat.items()},
             "warnings": [w for w, m in warned.items() if m[i]]} for i in range(len(flat["p"]))]


def _mode(values: list) -> object:
    return Counter(values).most_common(1)[0][0]


def _along(rows: list[dict], var: str) -> list[tuple[str, list[dict]]]:
    """Per (arch, gpu, stack): the rows that vary only in `var`, the other swept values held at their most
    common value. Shows one line per model and GPU."""
    groups = defaultdict(list)
    multi = len({precision_of(r) for r in rows}) > 1  # a line per precision when the sweep has several
    for r in rows:
        groups[(r["arch"], r["gpu"], r.get("stack", ""), precision_of(r) if multi else "")].append(r)
    out = []
    for key, grp in groups.items():
        base = {k: _mode([r[k] for r in grp]) for k in SWEPT if k != var}
        sel = {}  # var value -> first row with it (a sweep may hold the same configuration twice)
        for r in grp:
            if all(r[k] == v for k, v in base.items()):
                sel.setdefault(r[var], r)
        sel = [sel[v] for v in sorted(sel)]
        if len(sel) > 1:
            fixed = ", ".join(f"{k}={v}" for k, v in base.items())
            out.append((" · ".join(x for x in key if x) + f" ({fixed})", sel))
    return out


def _hover(r: dict) -> str:
    cost = f", ${r['cost_usd']:.3g}" if r.get("cost_usd") is not None else ""
    return (f"{r['arch']} ({precision_of(r)}) on {r['n_gpus']}× {r['gpu']} t={r['t']} b={r['b']} p={r['p']} "
            f"o={r['o']}: "
            f"{r['total_s']:.4g} s, {fmt_num(r['tokens_per_s'])} tok/s{cost}")


def _sweeps(rows: list[dict]) -> list[Section]:
    secs = []
    for var, axis in AXES.items():
        lines = _along(rows, var)
        if not lines:
            continue
        charts = []
        for key, label, name in METRICS:
            series = [Series(lbl, [r[var] for r in sel], [r[key] for r in sel], mode="both",
                             hover=[_hover(r) for r in sel], color=PALETTE[i % len(PALETTE)])
                      for i, (lbl, sel) in enumerate(lines)]
            charts.append(xy_chart(XYChart(f"{name} against {var}", axis, label, series, x_log=var != "t",
                                           y_log=True)))
        secs.append(Section(f"by-{var}", f"Against {axis}", charts=charts))
    if not secs:
        secs.append(Section("by-var", "Against t, b and p", missing_label=NOTHING,
                            missing="the sweep varies none of t, b, p: give a list or range for one of them."))
    return secs


def _form(rows: list[dict]) -> Section:
    """F(p) against p and T = F(p) + g·(o − 1) against o, one line per model, GPU, t and b (the first
    MAX_LINES of them in the charts, all in the table)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["arch"], r["gpu"], r["t"], r["b"], precision_of(r))].append(r)
    f_series, t_series, table = [], [], []
    for i, ((arch, gpu, t, b, prec), grp) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        label = f"{arch} · {gpu} · t={t} b={b}" + (f" · {prec}" if prec != "bf16" else "")
        by_p = {r["p"]: r for r in sorted(grp, key=lambda r: r["p"])}
        ps = list(by_p)
        f = [by_p[p]["prefill_s"] for p in ps]
        g = float(np.median([r["decode_step_s"] for r in grp]))
        p0 = ps[0]
        if i < MAX_LINES:
            f_series.append(Series(label, ps, f, mode="both", color=color,
                                   hover=[f"{label} p={p}: F = {v * 1e3:.4g} ms" for p, v in zip(ps, f)]))
            os_ = np.unique(np.geomspace(1, max(max(r["o"] for r in grp), 2), 24).round().astype(int))
            t_series.append(Series(f"{label}, p={p0}", os_, by_p[p0]["prefill_s"] + g * (os_ - 1), mode="line",
                                   color=color))
        slope = np.polyfit(ps, f, 1)[0] if len(ps) > 1 else float("nan")
        table.append([arch, gpu, t, b, by_p[p0]["prefill_s"] * 1e3, p0, slope * 1e6, g * 1e3])
    charts = [xy_chart(XYChart("F(p): prefill time against prompt length", "prompt length p (tokens)",
                               "F(p) (s)", f_series, x_log=True, y_log=True)),
              xy_chart(XYChart("T(p, o) = F(p) + g·(o − 1)", "output tokens o", "runtime (s)", t_series,
                               x_log=True, y_log=True))]
    notes = [f"the charts show the first {MAX_LINES} of {len(groups)} lines; the table lists all"] \
        if len(groups) > MAX_LINES else []
    return Section("form", "F(p) + g·(o − 1)", "The paper's runtime form: F(p) is flat while the GPU is latency-"
                   "bound and then grows linearly in p; g is the per-token decode time.", charts=charts, notes=notes,
                   tables=[Table(["arch", "gpu", "t", "b", "F at smallest p (ms)", "smallest p",
                                  "F slope (ms per 1k tokens)", "g (ms/token)"], table)])


def _memory(rows: list[dict]) -> Section:
    with_mem = [r for r in rows if r.get("mem_per_gpu_bytes") is not None]
    if not with_mem:
        return Section("memory", "Memory per GPU", missing_label=NOTHING,
                       missing="the sweep rows carry no memory figures ('mem_per_gpu_gib').")
    charts = []
    by_gpu = defaultdict(dict)
    for r in with_mem:  # one bar per distinct configuration, per GPU kind
        by_gpu[r["gpu"]].setdefault((r["arch"], r["t"], r["b"], r["p"] + r["o"], precision_of(r)), r)
    for gpu, confs in by_gpu.items():
        bars = []
        for (arch, t, b, ctx, prec), r in list(confs.items())[:MAX_BARS]:
            parts = {k: r[f"mem_{k}_bytes"] / GIB for k in ("weights", "kv", "act")
                     if r.get(f"mem_{k}_bytes") is not None}
            segs = parts if parts else {"total": r["mem_per_gpu_bytes"] / GIB}
            bars.append(Bar(f"{arch} t={t} b={b} ctx={ctx}" + (f" {prec}" if prec != "bf16" else ""), segs,
                            hover=f"total {r['mem_per_gpu_bytes'] / GIB:.1f} GiB"))
        cap = next((r["gpu_mem_bytes"] for r in confs.values() if r.get("gpu_mem_bytes")), None)
        charts.append(bar_chart(BarChart(f"Memory per GPU on {gpu}", "memory per GPU (GiB)", bars,
                                         limit=cap / GIB if cap else None, limit_label=f"{gpu} capacity")))
    return Section("memory", "Memory per GPU", "Weights, KV cache and activations per GPU for each configuration, "
                   "against the GPU's capacity (dashed).", charts=charts)


def _pareto(rows: list[dict]) -> Section:
    sel = [r for r in rows if r.get("cost_usd") is not None and math.isfinite(r["cost_usd"])]
    if not sel:
        return Section("pareto", "Cost against latency", missing_label=NOTHING,
                       missing="the sweep rows carry no cost ('cost_usd').")
    front = pareto_front([r["total_s"] for r in sel], [r["cost_usd"] for r in sel])
    archs = list(dict.fromkeys((r["arch"], precision_of(r)) for r in sel))
    series = []
    for i, (arch, prec) in enumerate(archs):
        mine = [r for r in sel if (r["arch"], precision_of(r)) == (arch, prec)]
        name = arch if len({a[1] for a in archs}) == 1 else f"{arch} ({prec})"
        series.append(Series(name, [r["total_s"] for r in mine], [r["cost_usd"] for r in mine],
                             hover=[_hover(r) for r in mine], color=PALETTE[i % len(PALETTE)]))
    series.append(Series("Pareto frontier", [sel[i]["total_s"] for i in front], [sel[i]["cost_usd"] for i in front],
                         mode="line", color="#000", dashed=True))
    table = Table(["arch", "gpu", "precision", "n GPUs", "t", "b", "p", "o", "latency (s)", "cost (USD)"],
                  [[sel[i]["arch"], sel[i]["gpu"], precision_of(sel[i])]
                   + [sel[i][k] for k in ("n_gpus", "t", "b", "p", "o", "total_s", "cost_usd")] for i in front],
                  "configurations on the frontier (no other is both faster and cheaper)")
    return Section("pareto", "Cost against latency", charts=[xy_chart(XYChart(
        "Cost per request against latency", "latency (s)", "cost per request (USD)", series, x_log=True, y_log=True))],
        tables=[table])


def _summary(rows: list[dict]) -> Section:
    cols = [("arch", "arch"), ("gpu", "gpu"), ("precision", "precision"), ("stack", "stack"), ("n_gpus", "GPUs"),
            ("t", "t"), ("b", "b"),
            ("p", "p"), ("o", "o"), ("prefill_s", "F = prefill (s)"), ("decode_step_s", "g = decode step (s)"),
            ("total_s", "total (s)"), ("tokens_per_gpu_s", "tokens/s per GPU"), ("cost_usd", "cost (USD)"),
            ("usd_per_1k_tokens", "USD per 1k tokens"), ("energy_j", "energy (J)"), ("fits", "fits")]
    cols = [(k, n) for k, n in cols if any(r.get(k) is not None for r in rows)]
    return Section("table", "All configurations", tables=[Table([n for _, n in cols], [[r.get(k) for k, _ in cols]
                                                                                   for r in rows])])


def render_whatif(rows: list[dict], title: str = "idealrt what-if report") -> str:
    """The what-if report of the sweep rows as one self-contained HTML page; configurations that do not
    fit in GPU memory are left out of the curves and the Pareto chart (but kept in the memory bars and table)."""
    rows = normalize_rows(rows)
    warnings = sorted({w for r in rows for w in r.get("warnings") or [] if not w.startswith("memory:")})
    fit = [r for r in rows if r.get("fits", True)]
    if len(fit) < len(rows):
        warnings.insert(0, f"{len(rows) - len(fit)} of {len(rows)} configurations do not fit in GPU memory: "
                           "left out of the curves and the Pareto chart (see the memory bars and the table).")
    precision = precision_section(rows)
    sections = [*_sweeps(fit), _form(fit), *([precision] if precision else []), _memory(rows), _pareto(fit),
                _summary(rows)]
    return render_page("whatif.html.j2", title, sections, n_rows=len(rows), warnings=warnings,
                       models=list(dict.fromkeys(r["arch"] for r in rows)),
                       gpus=list(dict.fromkeys(r["gpu"] for r in rows)))


def write_whatif(path: str | os.PathLike, rows: list[dict], title: str = "idealrt what-if report") -> None:
    """Render the what-if report of `rows` and write it atomically to `path`."""
    write_html(path, render_whatif(rows, title))
