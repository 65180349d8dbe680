"""`idealrt study`: the paper's efficiency study over many models and GPUs, on screen, as CSV and as HTML."""
from __future__ import annotations

import argparse

from reports.study import DERIVED_GPUS, MEASURED_GPUS, OPEN_MODELS
from simulator.tables import STACKS

# one record per (view, model, GPU, stack, weights); docs/CONTRACTS.md "Study rows" says what each column holds
CSV_COLS = ("view", "model", "gpu", "stack", "weights", "params_b", "t", "n_gpus", "runtime_s", "cost_usd",
            "usd_per_1k_tokens", "energy_j", "mem_per_gpu_gib", "f0_ms", "f_slope_ms_per_1k", "g_ms",
            "f_max_error_pct", "form_error_pct", "flop_only_s", "flop_only_error_pct", "fits", "time_model", "fit",
            "power", "times", "note")


SCREEN_COLS = {"runtime_s": "runtime s", "cost_usd": "cost $", "energy_j": "energy J", "f0_ms": "F(1) ms",
               "f_slope_ms_per_1k": "F slope ms/1k", "g_ms": "g ms", "flop_only_s": "FLOP-only s"}
SCREEN_ERRORS = {"form_error_pct": "form err %", "flop_only_error_pct": "FLOP-only err %"}


def _screen_row(r: dict, fmt) -> list:
    """One line of the screen table; dashes for a model that does not fit."""
    if "t" not in r:
        return [r["model"]] + ["-"] * (len(SCREEN_COLS) + len(SCREEN_ERRORS) + 1)
    return [r["model"], r["t"], *(fmt(r[k]) for k in SCREEN_COLS), *(f"{r[k]:+.0f}" for k in SCREEN_ERRORS)]


def csv_rows(data: dict) -> list[dict]:
    """The CSV's records: the study rows (view 'study'), then the precision what-if's (view 'precision')."""
    return [{k: r.get(k) for k in CSV_COLS} | {"view": view} for view, rows in (("study", data["rows"]),
            ("precision", data.get("precision", []))) for r in rows]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt study`."""
    parser.add_argument("--models", default=None,
                        help="catalog names, comma-separated (default: the paper's study models and today's "
                             "open models)")
    parser.add_argument("--gpus", default=",".join(MEASURED_GPUS + DERIVED_GPUS),
                        help="GPU names, comma-separated; the first is the base of the table and the what-ifs")
    parser.add_argument("--stack", default="triton,torch",
                        help="stacks, comma-separated: triton, torch, best, ideal (the first is the base)")
    parser.add_argument("--no-fit", action="store_true", help="raw time model, no fitted coefficients")
    parser.add_argument("--accuracy", default=None, metavar="FILE", help="CSV of model,accuracy[,source]")
    parser.add_argument("--csv", default=None, metavar="FILE", help="write every study row to FILE (CSV)")
    parser.add_argument("--html", default=None, metavar="FILE", help="write the study as a self-contained HTML page")
    parser.add_argument("--serving", action="store_true",
                        help="add the serving view: per open model, the cheapest deployment of a request stream "
                             "within a latency target, cost per 1,000 tokens beside the single-request figure")
    parser.add_argument("--slo", default=None, help="the serving view's target (default ttft_p95=1.0,tpot_p95=0.1)")
    parser.add_argument("--rate", default=None, help="the serving view's requests per second (default 4)")


def _names(text: str, option: str) -> list[str]:
    from simulator.errors import UserError

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"{option}: give at least one name")
    return names


def collect(models: list[str], gpus: list[str], stacks: list[str], use_fit: bool = True,
            accuracy: dict | None = None, serving=None) -> dict:
    """Every table of the study: the main rows, and on the base (first) GPU and stack the t, batch and
    long-context what-ifs, with accuracy the Pareto frontiers, and with `serving` (a reports.study_serving.
    ServingStudy) the serving view."""
    from reports.accuracy import frontiers
    from reports.study import batch_rows, long_context_rows, precision_rows, setting, study_rows, tp_rows

    rows = study_rows(models, gpus, stacks, use_fit)
    base = setting(gpus[0], stacks[0], use_fit)
    base_rows = [r for r in rows if r["gpu"] == base.gpu.name and r["stack"] == base.stack]
    open_models = [m for m in models if m in OPEN_MODELS] or models
    data = {"base": (base.gpu.name, base.stack), "rows": rows, "base_rows": base_rows,
            "tp": tp_rows(open_models, base), "batch": batch_rows(open_models, base),
            "long": long_context_rows(base_rows, base), "precision": precision_rows(open_models, base),
            "accuracy": accuracy}
    if accuracy:
        data["frontier"] = frontiers(base_rows, accuracy, ("flop_only_s", "runtime_s", "cost_usd"))
    if serving is not None:
        from reports.study_serving import serving_rows

        data["serving"], data["serving_label"] = serving_rows(open_models, base, base_rows, serving), serving.label()
    return data


def _serving_study(args: argparse.Namespace):
    """The serving view's stream and target from --slo and --rate (None without --serving)."""
    import math

    from reports.study_serving import ServingStudy
    from simulator.errors import UserError
    from simulator.plan import parse_slo

    if not args.serving:
        if args.slo is not None or args.rate is not None:
            raise UserError("--slo and --rate set the serving view: add --serving")
        return None
    study = ServingStudy()
    slo = args.slo if args.slo is not None else study.slo
    parse_slo(slo)
    try:
        rate = float(args.rate) if args.rate is not None else study.rate_per_s
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        raise UserError(f"--rate '{args.rate}': give requests per second, a number > 0")
    return ServingStudy(slo=slo, rate_per_s=rate)


def run(args: argparse.Namespace) -> int:
    """Compute the study, print the base table, write the CSV and HTML asked for."""
    from reports.accuracy import frontier_changes, read_accuracy
    from reports.render import check_output
    from reports.study import default_models
    from simulator.catalog import get_arch
    from simulator.errors import UserError
    from simulator.gpus import get_gpu
    from idealrt.output import fmt_num, option_named, print_lines, print_table, write_rows

    models = [get_arch(m).name for m in _names(args.models, "--models")] if args.models is not None else default_models()
    gpus = [get_gpu(g).name for g in _names(args.gpus, "--gpus")]
    stacks = _names(args.stack, "--stack")
    bad = [s for s in stacks if s not in STACKS]
    if bad:
        raise UserError(f"--stack: '{bad[0]}' is not a stack; use any of {', '.join(STACKS)}, comma-separated")
    for option, out in (("--csv", args.csv), ("--html", args.html)):
        if out is not None:
            check_output(out, option)
    accuracy = read_accuracy(args.accuracy) if args.accuracy else None
    data = collect(models, gpus, stacks, not args.no_fit, accuracy, _serving_study(args))
    shown = data["base_rows"]
    print_table(f"idealrt study on {data['base'][0]} ({data['base'][1]}): mean of the request mix, b = 1",
                ["model", "t", *SCREEN_COLS.values(), *SCREEN_ERRORS.values()], [_screen_row(r, fmt_num) for r in shown])
    if "serving" in data:
        print_table(f"Serving view on {data['base'][0]}: {data['serving_label']}",
                    ["model", "t", "pp", "replicas", "max batch", "USD/1k tok served", "USD/1k tok one at a time",
                     "J/1k tok", "TTFT p95 s", "TPOT p95 s"],
                    [[r["model"], *(fmt_num(r[k]) if k in r else "-" for k in (
                        "t", "pp", "replicas", "max_batch", "usd_per_1k_tokens", "single_usd_per_1k_tokens",
                        "joules_per_1k_tokens", "ttft_p95", "tpot_p95"))] for r in data["serving"]])
    lines = [f"{r['model']}: {r['note']}" for r in shown if r.get("note")]
    lines += [f"serving view, {r['model']}: {r['note']}" for r in data.get("serving", []) if r.get("note")]
    lines += sorted({f"{r['gpu']} ({r['stack']}): time model {r['time_model']}, fit {r['fit']}" for r in data["rows"]
                     if "time_model" in r})
    if accuracy:
        lines += [f"Pareto frontier, accuracy against {m}: {', '.join(f)}" for m, f in data["frontier"].items()]
        lines += frontier_changes(data["frontier"])
    if args.csv:
        records = csv_rows(data)
        write_rows(args.csv, records, option="--csv")
        lines.append(f"all {len(records)} rows ({len(data['rows'])} of the study, {len(records) - len(data['rows'])} "
                     f"of the precision what-if) written to {args.csv}")
    if args.html:
        from reports.render import write_html
        from reports.study_report import render_study

        html = render_study(data)
        with option_named("--html"):
            lines.append(f"HTML written to {write_html(args.html, html)}")
    print_lines(lines)
    return 0
