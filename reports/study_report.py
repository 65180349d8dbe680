"""The study's HTML page: the request mix, the study table with F(p), g and the FLOP-only baseline, accuracy
against efficiency, and the GPU, stack, t, batch and long-context what-ifs (data from reports/study.py)."""
from __future__ import annotations

from collections import defaultdict

from reports.accuracy import frontier_changes
from reports.charts import MARKERS, PALETTE, Series, XYChart, xy_chart
from reports.render import Section, Table, render_page
from reports.study import BATCH_REQUEST, REQUEST_MIX

NOTHING = "Nothing to draw."
METRIC_NAMES = {"flop_only_s": "FLOP-only runtime (s)", "runtime_s": "idealized runtime (s)",
                "cost_usd": "idealized cost per request (USD)"}
STUDY_COLS = (("model", "model"), ("gpu", "gpu"), ("stack", "stack"), ("params_b", "params (B)"), ("t", "t = GPUs"),
              ("runtime_s", "runtime (s)"), ("cost_usd", "cost / request (USD)"), ("energy_j", "energy / request (J)"),
              ("f0_ms", "F(1) (ms)"), ("f_slope_ms_per_1k", "F slope (ms per 1k tokens)"), ("g_ms", "g (ms/token)"),
              ("f_max_error_pct", "F's largest error (%)"), ("form_error_pct", "F(p) + g·(o − 1) error on the mix (%)"),
              ("flop_only_s", "FLOP-only (s)"), ("flop_only_error_pct", "FLOP-only error (%)"),
              ("time_model", "time model"), ("note", "note"))


def study_table(rows: list[dict]) -> Table:
    """The study rows as a sortable table (the same columns as the CSV's main ones)."""
    return Table([n for _, n in STUDY_COLS], [[r.get(k) for k, _ in STUDY_COLS] for r in rows])


def _by(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def _hover(r: dict) -> str:
    return (f"{r['model']} on {r.get('n_gpus', '?')}× {r['gpu']} ({r['stack']}): {r['runtime_s']:.4g} s, "
            f"${r['cost_usd']:.3g} per request, FLOP-only {r['flop_only_s']:.3g} s")


def _main(rows: list[dict]) -> Section:
    ok = [r for r in rows if "runtime_s" in r]
    series = [Series("idealized runtime", [r["params_b"] for r in ok], [r["runtime_s"] for r in ok],
                     hover=[_hover(r) for r in ok]),
              Series("FLOP-only baseline", [r["params_b"] for r in ok], [r["flop_only_s"] for r in ok],
                     hover=[_hover(r) for r in ok], marker="triangle")]
    chart = xy_chart(XYChart("Runtime of the mix against model size", "parameters (billions)",
                             "runtime per request (s)", series, x_log=True, y_log=True))
    return Section("study", "The study", "Idealized runtime, cost and energy per request of the mix (b = 1, t the "
                   "smallest that fits every request), F(p) fitted over p ≤ 2048 (non-decreasing) and g at a 1,024-token "
                   "context with the form's error against the simulation (F's largest over those prompts; "
                   "F(p) + g·(o − 1)'s on the mix's mean runtime), and the FLOP-only baseline (24·h²·l FLOPs per token "
                   "at peak) beside them.",
                   charts=[chart], tables=[study_table(rows)])


def _capability(rows: list[dict], accuracy: dict | None, front: dict | None) -> Section:
    if not accuracy:
        return Section("capability", "Accuracy against efficiency", missing_label="No accuracy data.",
                       missing="no accuracy file given: pass "
                       "--accuracy FILE (CSV of model,accuracy; an example ships in reports/examples/).")
    ok = [r for r in rows if "runtime_s" in r and r["model"] in accuracy]
    charts = []
    for metric, label in METRIC_NAMES.items():
        on = set(front.get(metric, []))
        series = []
        groups = (("on the frontier", [r for r in ok if r["model"] in on], "circle", None),
                  ("dominated", [r for r in ok if r["model"] not in on], "square", PALETTE[9]))
        for name, group, marker, color in groups:
            series.append(Series(name, [r[metric] for r in group], [accuracy[r["model"]][0] for r in group],
                                 hover=[f"{r['model']}: accuracy {accuracy[r['model']][0]}, {label} {r[metric]:.4g}"
                                        for r in group], labels=[r["model"] for r in group], marker=marker,
                                 color=color))
        line = sorted((r[metric], accuracy[r["model"]][0]) for r in ok if r["model"] in on)
        series.append(Series("Pareto frontier", [a for a, _ in line], [b for _, b in line], mode="line", dashed=True,
                             color="#000"))
        charts.append(xy_chart(XYChart(f"Accuracy against {label}", label, "accuracy", series, x_log=True)))
    return Section("capability", "Accuracy against efficiency", "A model is on the frontier when no other is both "
                   "more accurate and cheaper on the metric. Which models leave it when the metric changes:",
                   charts=charts, notes=frontier_changes(front),
                   tables=[Table(["model", "accuracy", *METRIC_NAMES.values(), "accuracy source"],
                                 [[r["model"], accuracy[r["model"]][0], *(r[m] for m in METRIC_NAMES),
                                   accuracy[r["model"]][1]] for r in ok])])


def _gpus(rows: list[dict]) -> Section:
    series = []
    for i, (gpu, grp) in enumerate(_by([r for r in rows if "runtime_s" in r], "gpu").items()):
        label = f"{gpu} ({grp[0]['time_model']})"
        series.append(Series(label, [r["params_b"] for r in grp], [r["runtime_s"] for r in grp],
                             hover=[_hover(r) for r in grp], color=PALETTE[i % len(PALETTE)],
                             marker=MARKERS[i % len(MARKERS)]))
    gpus = list(dict.fromkeys(r["gpu"] for r in rows))
    by_model = defaultdict(dict)
    for r in rows:
        by_model[r["model"]][r["gpu"]] = r
    table = Table(["model", *(f"{g} runtime (s)" for g in gpus)],
                  [[m, *(v.get(g, {}).get("runtime_s") for g in gpus)] for m, v in by_model.items()],
                  "runtime of the mix per request; — where the model does not fit on 8 GPUs")
    return Section("gpus", "Across GPUs", "The same mix on each GPU; the legend names each GPU's time model: a "
                   "measured table, one derived from a measured GPU by spec ratios, or the datasheet roofline.",
                   charts=[xy_chart(XYChart("Runtime of the mix per GPU", "parameters (billions)",
                                            "runtime per request (s)", series, x_log=True, y_log=True))],
                   tables=[table])


def _stacks(rows: list[dict]) -> Section:
    pairs = defaultdict(dict)
    for r in rows:
        if "runtime_s" in r:
            pairs[(r["model"], r["gpu"])][r["stack"]] = r
    both = [(k, v) for k, v in pairs.items() if {"triton", "torch"} <= set(v)]
    if not both:
        return Section("stacks", "Our kernels against torch's", missing_label=NOTHING,
                       missing="run the study with --stack triton,torch.")
    table = [[m, g, v["triton"]["runtime_s"], v["torch"]["runtime_s"],
              v["triton"]["runtime_s"] / v["torch"]["runtime_s"]] for (m, g), v in both]
    series = [Series(gpu, [r[3] for r in table if r[1] == gpu], [r[2] for r in table if r[1] == gpu],
                     hover=[f"{r[0]} on {gpu}: Triton {r[2]:.4g} s, torch {r[3]:.4g} s" for r in table if r[1] == gpu],
                     color=PALETTE[i % len(PALETTE)]) for i, gpu in enumerate(dict.fromkeys(r[1] for r in table))]
    return Section("stacks", "Our kernels against torch's", "Runtime of the mix with our Triton kernels' "
                   "throughput table against torch's (cuBLAS, SDPA).", charts=[xy_chart(XYChart(
                       "Triton against torch", "torch runtime (s)", "Triton runtime (s)", series, x_log=True,
                       y_log=True, diagonal=True))],
                   tables=[Table(["model", "gpu", "Triton (s)", "torch (s)", "Triton / torch"], table)])


def _lines(rows: list[dict], x: str, y: str, title: str, x_label: str, y_label: str, x_log: bool = True) -> str:
    series = [Series(m, [r[x] for r in grp], [r[y] for r in grp], mode="both", color=PALETTE[i % len(PALETTE)],
                     hover=[f"{m} {x}={r[x]}: {y_label} {r[y]:.4g}" for r in grp])
              for i, (m, grp) in enumerate(_by(rows, "model").items())]
    return xy_chart(XYChart(title, x_label, y_label, series, x_log=x_log, y_log=True))


def _tp(rows: list[dict]) -> Section:
    ok = [r for r in rows if "runtime_s" in r]
    return Section("tp", "Across tensor-parallel degree t", "Each model from the smallest t that fits up to 8: "
                   "runtime falls, cost (t GPUs × runtime) usually rises.", charts=[
                       _lines(ok, "t", "runtime_s", "Runtime against t", "t (GPUs)", "runtime per request (s)", False),
                       _lines(ok, "t", "cost_usd", "Cost against t", "t (GPUs)", "cost per request (USD)", False)],
                   missing="" if ok else "no model fits.", missing_label=NOTHING)


def _batch(rows: list[dict]) -> Section:
    p, o = BATCH_REQUEST
    charts = [_lines(rows, "b", "tokens_per_s_per_gpu", "Throughput per GPU against batch", "batch b",
                     "output tokens/s per GPU"),
              _lines(rows, "b", "usd_per_1k_tokens", "Cost per 1,000 tokens against batch", "batch b",
                     "USD per 1,000 prompt + output tokens")]
    return Section("batch", "Batch size", f"Throughput per GPU and cost per 1,000 tokens of one request kind "
                   f"(p = {p}, o = {o}) against batch size; t is the smallest that fits each batch.",
                   charts=charts, missing="" if rows else "no model fits.", missing_label=NOTHING)


def _long(rows: list[dict]) -> Section:
    if not rows:
        return Section("long-context", "Long context", missing_label=NOTHING,
                       missing="no model of the study has max_positions > 8192.")
    series = [Series(m, [r["p"] for r in grp], [r["error_pct"] for r in grp], mode="both",
                     color=PALETTE[i % len(PALETTE)], hover=[f"{m} p={r['p']}: linear F {r['linear_f_s']:.4g} s, "
                                                             f"simulator {r['simulator_s']:.4g} s" for r in grp])
              for i, (m, grp) in enumerate(_by(rows, "model").items())]
    return Section("long-context", "Long context: how far the linear F(p) is off",
                   "F(p) fitted over p ≤ 2048 (the paper's range) and extrapolated linearly, against the simulator's "
                   "prefill at 8k, 32k and 128k tokens (attention's p² term is what the linear form misses).",
                   charts=[xy_chart(XYChart("Error of the linear F(p)", "prompt length p (tokens)", "error (%)",
                                            series, x_log=True))],
                   tables=[Table(["model", "t", "p", "simulator prefill (s)", "linear F(p) (s)", "error (%)"],
                                 [[r[k] for k in ("model", "t", "p", "simulator_s", "linear_f_s", "error_pct")]
                                  for r in rows])])


PRECISION_COLS = (("model", "model"), ("weights", "weights"), ("t", "t = GPUs"), ("runtime_s", "runtime (s)"),
                  ("cost_usd", "cost / request (USD)"), ("usd_per_1k_tokens", "USD per 1k tokens"),
                  ("mem_per_gpu_gib", "memory per GPU (GiB)"), ("energy_j", "energy / request (J)"),
                  ("times", "times"), ("note", "note"))


def _precision(rows: list[dict]) -> Section:
    """The mix at bf16, fp8 and int4 weights, per model: runtime, cost per request and per 1,000 tokens, memory per
    GPU, GPUs."""
    table = Table([n for _, n in PRECISION_COLS], [[r.get(k) for k, _ in PRECISION_COLS] for r in rows])
    return Section("precision", "Precision: bf16, fp8 and int4 weights",
                   "The mix with the decoder layers' weights in bf16, FP8 (w8a8) or int4 (weight-only, group 128), t "
                   "the smallest that fits: fewer bytes a weight can mean fewer GPUs. Cost per 1,000 prompt + output "
                   "tokens is the mix's mean cost over its mean tokens; memory per GPU is its largest request's. "
                   "Times of a GEMM class the table has no points of are derived from its bf16 points by the "
                   "roofline, and marked so.",
                   tables=[table], missing="" if rows else "no model.", missing_label=NOTHING)


def _serving(rows: list[dict], label: str) -> Section:
    """The serving view: the cheapest deployment within the target, beside the single-request cost."""
    cols = (("model", "model"), ("t", "t"), ("pp", "pp"), ("replicas", "replicas"), ("max_batch", "max batch"),
            ("usd_per_1k_tokens", "USD / 1k output tokens, served"),
            ("single_usd_per_1k_tokens", "USD / 1k output tokens, one request at a time"),
            ("joules_per_1k_tokens", "J / 1k output tokens, served"), ("tokens_per_s_per_gpu", "tokens/s per GPU"),
            ("ttft_p95", "TTFT P95 (s)"), ("tpot_p95", "TPOT P95 (s)"), ("note", "note"))
    return Section("serving", "Serving: cost per 1,000 tokens at a latency target",
                   f"Per model, the cheapest deployment (t, stages, replicas, max batch) of a simulated request stream "
                   f"served with continuous batching that meets the target ({label}), beside the paper's figure: the "
                   "mix's cost per output token when requests run one at a time (b = 1). Simulated, not measured.",
                   tables=[Table([n for _, n in cols], [[r.get(k) for k, _ in cols] for r in rows])],
                   missing="" if rows else "no model.", missing_label=NOTHING)


def render_study(data: dict) -> str:
    """The study page from `idealrt.cli_study.collect`'s result (keys: base, rows, tp, batch, long, accuracy,
    frontier)."""
    base = data["base"]
    mix = Table(["request kind", "p (tokens)", "o (tokens)", "share"],
                [[k.name, k.p, k.o, k.weight] for k in REQUEST_MIX])
    sections = [Section("mix", "The request mix", "An illustrative HELM-like mix (not HELM's per-scenario token "
                        "counts); a model whose max_positions is shorter gets its prompts clipped (noted per row).",
                        tables=[mix]),
                _main(data["base_rows"]), _capability(data["base_rows"], data.get("accuracy"), data.get("frontier")),
                _gpus([r for r in data["rows"] if r["stack"] == base[1]]), _stacks(data["rows"]), _tp(data["tp"]),
                _batch(data["batch"]), _long(data["long"]),
                *([_precision(data["precision"])] if "precision" in data else []),
                *([_serving(data["serving"], data["serving_label"])] if "serving" in data else [])]
    return render_page("study.html.j2", "idealrt study: the paper's efficiency study, reproduced and extended",
                       sections, base_gpu=base[0], base_stack=base[1])
