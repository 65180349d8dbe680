"""The calibration report of one GPU and software stack: where the numbers came from, what the kernels
achieve (roofline, GEMM, attention, all-reduce, launch), the fit, and how well the simulator predicts
the measured configuration queries.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np

from reports.calibration_data import CalibrationInputs, err_pct, points, stack_label
from reports.charts import MARKERS, PALETTE, Series, XYChart, fmt_num, xy_chart
from reports.render import Section, Table, render_page
from simulator.gpus import get_gpu
from simulator.opclasses import op_cost

TIMES = (("total_s", "total"), ("prefill_s", "prefill F(p)"), ("decode_step_s", "decode step g"))
GROUP_KEYS = ("p", "o", "b", "t", "arch")
MAX_SERIES = 8
MAX_SHAPES = 5  # shapes drawn per throughput chart (both stacks each)


def _marker(stack: str) -> str:
    return "circle" if stack == "triton" else "square"


def _value_text(v: object) -> str:
    """A provenance value on one line: nested records as compact JSON, cut at 400 characters."""
    text = json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else str(v)
    return text if len(text) <= 400 else text[:397] + "..."


def _shape_text(shape: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in shape.items())


def _provenance(inp: CalibrationInputs) -> Section:
    rows: list[list] = []
    notes = []
    if inp.table:
        t = inp.table
        rows += [["throughput table", k, _value_text(v)] for k, v in (t.get("provenance") or {}).items()]
        if inp.table_path:
            rows.append(["throughput table", "file", inp.table_path.name])
        rows.append(["throughput table", "points", f"{len(t.get('points') or [])} measured, "
                     f"{len(t.get('errors') or [])} failed; status {t.get('status', 'n/a')}"])
        if t.get("power_w"):
            rows.append(["throughput table", "board power (W, measured)", _value_text(t["power_w"])])
        if inp.table.get("derived"):
            d = inp.table["derived"]
            notes.append(f"DERIVED table: scaled from {d.get('from')} by rule '{d.get('rule')}'. Not measured "
                         "on this GPU; every number below that uses it is an estimate.")
    for f in inp.measurement_files:
        mine = [r for r in inp.measurements if r.get("_file") == str(f)]
        prov = (mine[0].get("provenance") or {}) if mine else {}
        facts = "; ".join(f"{k}={prov[k]}" for k in ("date", "driver", "torch", "triton", "command") if k in prov)
        rows.append(["measurements", f.name, f"{len(mine)} rows ({inp.stack}); {facts}"])
    if inp.fit:
        rows += [["fit", k, _value_text(v)] for k, v in (inp.fit.get("provenance") or {}).items()]
    missing = "" if rows else (f"no throughput table, measurements or fit for {inp.gpu} yet: run "
                               "'idealrt calibrate', 'idealrt measure' and 'idealrt fit' on that GPU.")
    return Section("provenance", "Provenance", "Where every number in this report came from.",
                   tables=[Table(["source", "field", "value"], rows)] if rows else [], missing=missing, notes=notes)


def _roofline(inp: CalibrationInputs) -> Section:
    series, hi_ai, lo_ai = [], 0.0, math.inf
    for ci, op in enumerate(("gemm", "prefill_attn", "decode_attn")):
        for stack in ("triton", "torch"):
            ai, fl, hov = [], [], []
            for p in points(inp.table, op):
                if p.get("stack") != stack:
                    continue
                flops, nbytes = op_cost(op, p["shape"])
                rate = flops / (p["median_us"] * 1e-6)
                ai.append(flops / nbytes)
                fl.append(rate)
                hov.append(f"{op} {_shape_text(p['shape'])} [{p.get('kernel', stack)}]: {fmt_num(rate)}FLOP/s, "
                           f"AI {flops / nbytes:.3g} FLOP/B, {p['median_us']:.4g} µs")
            if ai:
                lo_ai, hi_ai = min(lo_ai, *ai), max(hi_ai, *ai)
                series.append(Series(f"{op} · {stack_label(stack)}", ai, fl, hover=hov,
                                     color=PALETTE[ci], marker=_marker(stack)))
    if not series:
        return Section("roofline", "Roofline", missing="no GEMM or attention points in a throughput table yet.")
    grid = np.geomspace(lo_ai / 2, hi_ai * 2, 60)
    ceil = (inp.table or {}).get("ceilings") or {}
    if ceil.get("matmul_flops") and ceil.get("copy_bw_bytes_s"):
        measured = np.minimum(ceil["matmul_flops"], ceil["copy_bw_bytes_s"] * grid)
        series.append(Series("measured ceilings", grid, measured, mode="line", color="#000"))
    spec = get_gpu(inp.gpu)
    series.append(Series("datasheet ceilings", grid, np.minimum(spec.peak_bf16_flops, spec.hbm_bw_bytes_s * grid),
                         mode="line", dashed=True, color="#777"))
    chart = XYChart(f"Roofline, {inp.gpu_label}", "arithmetic intensity (FLOP/byte)", "achieved (FLOP/s)",
                    series, x_log=True, y_log=True)
    return Section("roofline", "Roofline",
                   "Every measured GEMM and attention point: achieved FLOP/s against FLOPs per byte moved. "
                   "Circles are our Triton kernels, squares the vendor's (cuBLAS / SDPA through torch).",
                   charts=[xy_chart(chart)])


def _grouped(pts: list[dict], key) -> list[tuple[str, list[dict]]]:
    """Points grouped by key(point), largest groups first, at most MAX_SERIES groups."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in pts:
        groups[key(p)].append(p)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_SERIES]


def _rate_chart(title: str, pts: list[dict], op: str, x_key: str, x_label: str, per_byte: bool) -> str:
    """Achieved FLOP/s (or bytes/s) against one shape dimension, for up to MAX_SHAPES of the measured
    shapes (spread from small to large), ours solid and the vendor's dashed in the same colour."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in pts:
        groups[tuple(sorted((k, v) for k, v in p["shape"].items() if k != x_key))].append(p)
    keys = sorted((k for k, g in groups.items() if len({p["shape"][x_key] for p in g}) > 1),
                  key=lambda k: math.prod(float(v) for _, v in k if not isinstance(v, bool)))
    picks = [keys[int(i)] for i in np.unique(np.linspace(0, len(keys) - 1, MAX_SHAPES).round())] if keys else []
    series = []
    for i, key in enumerate(picks):
        for stack in ("triton", "torch"):
            grp = sorted((p for p in groups[key] if p.get("stack") == stack), key=lambda p: p["shape"][x_key])
            if not grp:
                continue
            ys = [op_cost(op, p["shape"])[1 if per_byte else 0] / (p["median_us"] * 1e-6) for p in grp]
            label = f"{' '.join(f'{k}={v}' for k, v in key)} · {stack_label(stack)}"
            unit = "B/s" if per_byte else "FLOP/s"
            hov = [f"{label}, {x_key}={p['shape'][x_key]}: {fmt_num(y)}{unit}, {p['median_us']:.4g} µs "
                   f"(p10 {p.get('p10_us', math.nan):.4g}, p90 {p.get('p90_us', math.nan):.4g})"
                   for p, y in zip(grp, ys)]
            series.append(Series(label, [p["shape"][x_key] for p in grp], ys, mode="both", hover=hov,
                                 color=PALETTE[i % len(PALETTE)], marker=_marker(stack), dashed=stack != "triton"))
    shown = f" ({len(picks)} of {len(groups)} shapes; the table lists every point)" if len(groups) > len(picks) else ""
    return xy_chart(XYChart(title + shown, x_label, "achieved bandwidth (B/s)" if per_byte else "achieved (FLOP/s)",
                            series, x_log=True, y_log=True))


def _point_table(pts: list[dict], keys: tuple[str, ...]) -> Table:
    rows = [[p.get("stack"), p.get("kernel"), *[p["shape"].get(k) for k in keys], p["median_us"],
             p.get("p10_us"), p.get("p90_us"), p.get("reps"), "yes" if p.get("flagged") else ""] for p in pts]
    return Table(["stack", "kernel", *keys, "median (µs)", "p10 (µs)", "p90 (µs)", "reps", "flagged"], rows)


def _kernels(inp: CalibrationInputs) -> list[Section]:
    gemm = points(inp.table, "gemm")
    pre, dec = points(inp.table, "prefill_attn"), points(inp.table, "decode_attn")
    no_table = "no throughput table for this GPU yet: run 'idealrt calibrate' on it."
    s_gemm = Section("gemm", "GEMM throughput", "Achieved FLOP/s against m (tokens) per weight shape n×k; "
                     "circles ours, squares the vendor's.", missing="" if gemm else no_table)
    if gemm:
        s_gemm.charts.append(_rate_chart("GEMM throughput", gemm, "gemm", "m", "m (rows = tokens)", False))
        s_gemm.tables.append(_point_table(gemm, ("m", "n", "k")))
    s_attn = Section("attention", "Attention throughput", "Prefill attention in FLOP/s against sequence length; "
                     "decode attention in bytes/s against context (it is bandwidth-bound).",
                     missing="" if pre or dec else no_table)
    kinds = (("Prefill attention", "prefill_attn", pre, "s", "sequence length s (tokens)"),
             ("Decode attention", "decode_attn", dec, "c", "context c (tokens)"))
    for title, op, pts, x_key, x_label in kinds:
        if pts:
            s_attn.charts.append(_rate_chart(title, pts, op, x_key, x_label, op == "decode_attn"))
            s_attn.tables.append(_point_table(pts, ("b", "h", "kv_h", x_key, "d")))
    return [s_gemm, s_attn, _allreduce(inp), _launch(inp)]


def _allreduce(inp: CalibrationInputs) -> Section:
    pts = points(inp.table, "allreduce")
    if not pts:
        return Section("allreduce", "All-reduce", missing="no all-reduce points yet: they need a multi-GPU run "
                       "of 'idealrt calibrate'.")
    lat, bus = [], []
    for i, (label, grp) in enumerate(_grouped(pts, lambda p: f"t={p['shape']['t']} {p.get('stack', 'torch')}")):
        grp = sorted(grp, key=lambda p: p["shape"]["bytes"])
        t = grp[0]["shape"]["t"]
        x = [p["shape"]["bytes"] for p in grp]
        us = [p["median_us"] for p in grp]
        bw = [b / (u * 1e-6) * 2 * (t - 1) / t for b, u in zip(x, us)]  # NCCL's bus bandwidth
        hov = [f"{label}, {fmt_num(b)}B: {u:.4g} µs, bus {fmt_num(w)}B/s" for b, u, w in zip(x, us, bw)]
        lat.append(Series(label, x, [u * 1e-6 for u in us], mode="both", hover=hov, color=PALETTE[i]))
        bus.append(Series(label, x, bw, mode="both", hover=hov, color=PALETTE[i]))
    return Section("allreduce", "All-reduce", "NCCL all-reduce latency and bus bandwidth "
                   "(algorithm bandwidth × 2(t − 1)/t) against message size.",
                   charts=[xy_chart(XYChart("All-reduce latency", "message size (bytes)", "latency (s)", lat,
                                            x_log=True, y_log=True)),
                           xy_chart(XYChart("All-reduce bus bandwidth", "message size (bytes)", "bus bandwidth (B/s)",
                                            bus, x_log=True, y_log=True))],
                   tables=[_point_table(pts, ("bytes", "t"))])


def _launch(inp: CalibrationInputs) -> Section:
    pts, ew = points(inp.table, "launch"), points(inp.table, "elementwise")
    sec = Section("launch", "Launch costs and elementwise ops", "Fixed cost per kernel launch (eager and inside a "
                  "CUDA graph) and the bandwidth of norms, activations and residual adds.",
                  missing="" if pts or ew else "no launch or elementwise points in a throughput table yet.")
    if pts:
        sec.tables.append(_point_table(pts, ("mode",)))
    if ew:
        sec.charts.append(_rate_chart("Elementwise bandwidth", ew, "elementwise", "bytes", "bytes read + written",
                                      True))
    return sec


def _fit(inp: CalibrationInputs) -> Section:
    if not inp.fit:
        return Section("fit", "Fit", missing=f"no fit for {inp.gpu} / {inp.stack} yet: run 'idealrt fit'.")
    bounds = inp.fit.get("bounds") or {}
    coef_rows = [[k, v, *(list(bounds.get(k) or []) + [None, None])[:2]]
                 for k, v in (inp.fit.get("coefficients") or {}).items()]
    queries = inp.fit.get("queries") or []
    keys = [k for k in ("arch", "gpu", "t", "b", "p", "o") if any(k in q for q in queries)]
    ident = lambda r: tuple(r.get(k) for k in keys)  # noqa: E731 (a query's configuration)
    residual = {(ident(r), r.get("phase")): r.get("rel_err") for r in inp.fit.get("residuals") or []}
    q_rows = []
    for q in queries:
        errs = [residual.get((ident(q), phase)) for phase in ("prefill", "decode")]
        q_rows.append([*ident(q), *(None if e is None else 100 * e for e in errs)])
    text = ("time = Σ_class coefficient × class time + fixed costs; multipliers are bounded near 1, "
            "fixed costs ≥ 0. "
            f"Unfitted classes (kept at 1): {', '.join(inp.fit.get('unfitted') or []) or 'none'}.")
    return Section("fit", "Fit", text, tables=[
        Table(["coefficient", "value", "lower bound", "upper bound"], coef_rows, "coefficients"),
        Table([*keys, "prefill residual (%)", "decode residual (%)"], q_rows, "queries the fit used")])


def _pairs(inp: CalibrationInputs) -> list[tuple[dict, dict]]:
    return [(m, p) for m, p in zip(inp.measurements, inp.predicted) if p is not None]


def _accuracy(inp: CalibrationInputs) -> Section:
    pairs = _pairs(inp)
    if not pairs:
        why = ("no measured configuration queries yet: run 'idealrt measure'." if not inp.measurements
               else inp.predict_note or "no predictions could be made for the measured queries.")
        return Section("accuracy", "Measured against predicted", missing=why)
    archs = sorted({m["arch"] for m, _ in pairs})
    charts = []
    for key, name in TIMES:
        series = []
        for i, arch in enumerate(archs):
            for split, marker in (("fit", "circle"), ("heldout", "triangle")):
                sel = [(m, p) for m, p in pairs if m["arch"] == arch and m.get("split") == split]
                if sel:
                    series.append(Series(f"{arch} ({split})", [m[key] for m, _ in sel], [p[key] for _, p in sel],
                                         hover=[_hover(m, p, key) for m, p in sel], color=PALETTE[i % len(PALETTE)],
                                         marker=marker))
        charts.append(xy_chart(XYChart(f"{name}: predicted against measured", "measured (s)", "predicted (s)",
                                       series, x_log=True, y_log=True, diagonal=True)))
    rows = [[m["arch"], m["t"], m["b"], m["p"], m["o"], m.get("split"), m["total_s"], p["total_s"],
             err_pct(p["total_s"], m["total_s"]), err_pct(p["prefill_s"], m["prefill_s"]),
             err_pct(p["decode_step_s"], m["decode_step_s"])] for m, p in pairs]
    notes = [inp.predict_note] if inp.predict_note else []
    notes += [] if inp.fit else ["no fit yet: predictions use the table alone (all coefficients 1)."]
    return Section("accuracy", "Measured against predicted",
                   "Every measured configuration query against the simulator's prediction; on the dashed y = x line "
                   "the prediction is exact. Triangles are held-out queries the fit never saw.", charts=charts,
                   notes=notes, tables=[Table(["arch", "t", "b", "p", "o", "split", "measured total (s)",
                                               "predicted total (s)", "total error (%)", "prefill error (%)",
                                               "decode step error (%)"], rows)])


def _hover(m: dict, p: dict, key: str) -> str:
    return (f"{m['arch']} t={m['t']} b={m['b']} p={m['p']} o={m['o']}: measured {m[key]:.4g} s, "
            f"predicted {p[key]:.4g} s, error {err_pct(p[key], m[key]):+.1f}%")


def _err_stats(errs: list[float]) -> list:
    """Count, median, mean and max of |error| and the mean signed error, over the finite errors (in %)."""
    e = np.array([x for x in errs if np.isfinite(x)])
    if not len(e):
        return [0, None, None, None, None]
    a = np.abs(e)
    return [len(e), float(np.median(a)), float(np.mean(a)), float(np.max(a)), float(np.mean(e))]


STAT_COLS = ["queries", "median |error| (%)", "mean |error| (%)", "max |error| (%)", "mean signed error (%)"]


def _errors_by(inp: CalibrationInputs) -> Section:
    pairs = _pairs(inp)
    if not pairs:
        return Section("errors", "Errors by p, o, b, t and architecture",
                       missing="needs measured queries and predictions (see above).")
    tables, charts = [], []
    for key in GROUP_KEYS:
        groups: dict = defaultdict(list)
        for m, p in pairs:
            groups[m[key]].append(err_pct(p["total_s"], m["total_s"]))
        tables.append(Table([key, *STAT_COLS], [[g, *_err_stats(e)] for g, e in sorted(groups.items())],
                            f"total-time error by {key}"))
    for key in ("p", "o"):
        series = []
        for i, arch in enumerate(sorted({m["arch"] for m, _ in pairs})):
            sel = [(m, p) for m, p in pairs if m["arch"] == arch]
            series.append(Series(arch, [m[key] for m, _ in sel], [err_pct(p["total_s"], m["total_s"]) for m, p in sel],
                                 hover=[_hover(m, p, "total_s") for m, p in sel], color=PALETTE[i % len(PALETTE)],
                                 marker=MARKERS[i % len(MARKERS)]))
        charts.append(xy_chart(XYChart(f"Total-time error against {key}", f"{key} (tokens)", "error (%)", series,
                                       x_log=True)))
    return Section("errors", "Errors by p, o, b, t and architecture", charts=charts, tables=tables)


def _heldout(inp: CalibrationInputs) -> Section:
    held = [(m, p) for m, p in _pairs(inp) if m.get("split") == "heldout"]
    if not held:
        return Section("heldout", "Held-out error", missing="no held-out queries with predictions yet.")
    rows = [[name, *_err_stats([err_pct(p[key], m[key]) for m, p in held])] for key, name in TIMES]
    return Section("heldout", "Held-out error", "Queries the fit never saw: the honest accuracy of the simulator.",
                   tables=[Table(["time", *STAT_COLS], rows)])


def build_sections(inp: CalibrationInputs) -> list[Section]:
    """All sections of the calibration report, in reading order."""
    return [_provenance(inp), _roofline(inp), *_kernels(inp), _fit(inp), _accuracy(inp), _errors_by(inp),
            _heldout(inp)]


def render_calibration(inp: CalibrationInputs) -> str:
    """The calibration report of `inp` as one self-contained HTML page."""
    derived = bool(inp.table and inp.table.get("derived"))
    return render_page("calibration.html.j2", f"idealrt calibration report — {inp.gpu_label or inp.gpu}, {inp.stack}",
                       build_sections(inp), gpu=inp.gpu, stack=inp.stack, derived=derived)
