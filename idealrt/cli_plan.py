"""`idealrt plan`: the cheapest deployments of a workload (GPU kind × t × replicas × max batch) that meet a latency
target, from the serving simulator (simulator/plan.py), with the Pareto front of tokens/s per GPU against
tokens/s per user.

    idealrt plan --model llama-3.1-8b --gpus h100-sxm,h200 --lengths lognormal:p=1024,o=256 --rate 20 \\
        --slo ttft_p95=0.5,tpot_p95=0.05
"""
from __future__ import annotations

import argparse
import math

from idealrt.cli_predict import add_common_args
from idealrt.cli_sweep import parse_ints
from idealrt.output import fmt_num, fmt_s, print_json, print_lines, print_table
from simulator.errors import UserError

SCREEN_ROWS = 10
MAX_CONFIGS = 5_000
MAX_REQUESTS = 1_000_000


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt plan`."""
    parser.add_argument("--model", required=True, help="catalog name or a Hugging Face config.json")
    parser.add_argument("--gpus", required=True, help="GPU kinds to consider, comma-separated")
    parser.add_argument("--workload", default=None, metavar="TRACE.csv",
                        help="requests: CSV with arrival_s, prompt_tokens, output_tokens (docs/CONTRACTS.md)")
    parser.add_argument("--lengths", default=None, metavar="DIST",
                        help="or drawn lengths: fixed:p=512,o=128 | uniform:p=128-2048,o=32-512 | "
                             "lognormal:p=1024,o=256,sigma=0.5")
    parser.add_argument("--rate", default=None, help="Poisson arrivals per second (with --lengths)")
    parser.add_argument("--requests", default="1000", help="requests drawn with --lengths (default 1000)")
    parser.add_argument("--seed", default="0", help="seed of the drawn workload (default 0)")
    parser.add_argument("--slo", required=True, help="latency target, e.g. ttft_p95=0.5,tpot_p95=0.05 (seconds)")
    parser.add_argument("--tp", default=None, help="tensor-parallel degrees (default: every valid one on a node)")
    parser.add_argument("--pp", default=None, help="pipeline stages (default: 1, or the fewest that fit); network "
                        "figures modelled, not measured")
    parser.add_argument("--replicas", default="1,2,4,8", help="replica counts: list or range (default 1,2,4,8)")
    parser.add_argument("--max-batch", default="8,16,32,64,128,256", help="max batch sizes: list or range")
    parser.add_argument("--chunk", default=None, metavar="TOKENS", help="chunked prefill: token budget per iteration")
    parser.add_argument("--policy", default="prefill-first", help="prefill-first (default) or decode-first")
    add_common_args(parser)
    parser.add_argument("--top", default=str(SCREEN_ROWS), help=f"rows shown (default {SCREEN_ROWS})")
    parser.add_argument("--html", default=None, metavar="FILE", help="also write the serving what-if HTML page")
    parser.add_argument("--json", action="store_true", help="print the whole plan as JSON")


def _int(text: str, option: str) -> int:
    values = parse_ints(text, option)
    if len(values) != 1:
        raise UserError(f"{option} '{text}': give one whole number")
    return values[0]


def _workload(args: argparse.Namespace):
    from simulator.workload import load_trace, synthetic

    if (args.workload is None) == (args.lengths is None):
        raise UserError("give --workload TRACE.csv or --lengths DIST --rate R (one of the two)")
    if args.workload is not None:
        if args.rate is not None:
            raise UserError("--rate goes with --lengths; a --workload trace carries its own arrival times")
        return load_trace(args.workload)
    if args.rate is None:
        raise UserError("--lengths needs --rate R (requests per second)")
    try:
        rate = float(args.rate)
    except ValueError:
        raise UserError(f"--rate '{args.rate}': give requests per second, a number > 0") from None
    n = _int(args.requests, "--requests")
    if n > MAX_REQUESTS:
        raise UserError(f"--requests {n}: at most {MAX_REQUESTS:,}")
    try:
        seed = int(args.seed)
    except ValueError:
        raise UserError(f"--seed '{args.seed}': give a whole number") from None
    if seed < 0:
        raise UserError(f"--seed {seed}: give a whole number >= 0")
    return synthetic(args.lengths, rate, n, seed)


def run(args: argparse.Namespace) -> int:
    """Run `idealrt plan`; returns the exit code (bad input raises UserError)."""
    from idealrt.api import plan
    from reports.render import check_output

    if args.html is not None:
        check_output(args.html, "--html")
    workload = _workload(args)
    tps = parse_ints(args.tp, "--tp") if args.tp is not None else None
    pps = parse_ints(args.pp, "--pp") if args.pp is not None else None
    replicas, batches = parse_ints(args.replicas, "--replicas"), parse_ints(args.max_batch, "--max-batch")
    chunk = _int(args.chunk, "--chunk") if args.chunk is not None else None
    top = _int(args.top, "--top")
    n_gpus = len([g for g in args.gpus.split(",") if g.strip()])
    n_configs = max(n_gpus, 1) * len(tps or (1, 2, 4, 8)) * len(pps or (1,)) * len(replicas) * len(batches)
    if n_configs > MAX_CONFIGS:
        raise UserError(f"the search has {n_configs:,} deployments, over {MAX_CONFIGS:,}; use fewer values")
    result = plan(args.model, args.gpus.split(","), workload, args.slo, tps=tps, replicas=replicas,
                  max_batch=batches, chunk_tokens=chunk, policy=args.policy, stack=args.stack, fit=not args.no_fit,
                  price_per_hour_usd=args.price_per_hour, pps=pps)
    if args.html:
        from reports.serving_report import write_serving

        write_serving(args.html, result, result.rows[0]["arch"] if result.rows else args.model, workload.source)
    if args.json:
        print_json({"slo": result.slo, "workload": workload.source, "rows": [_finite(r) for r in result.rows],
                    "pruned": result.pruned, "warnings": list(result.warnings)})
        return 0
    _summary(result, workload, top)
    return 0


def _summary(result, workload, top: int) -> None:
    meeting = result.meeting
    slo = ", ".join(f"{k} <= {fmt_s(v)}" for k, v in result.slo.items())
    title = (f"{len(meeting)} of {len(result.rows)} deployments meet {slo}" if meeting
             else f"no deployment of {len(result.rows)} meets {slo}; the closest (cheapest first)")
    shown = (meeting or result.rows)[:top]
    print_table(title, ["gpu", "t", "pp", "replicas", "GPUs", "max batch", "USD/1k tok", "tok/s/GPU", "tok/s/user",
                        "TTFT p95", "TPOT p95", "E2E p95", "Pareto"],
                [[r["gpu"], r["t"], r["pp"], r["replicas"], r["n_gpus"], r["max_batch"], _n(r["usd_per_1k_tokens"]),
                  _n(r["tokens_per_s_per_gpu"]), _n(r["tokens_per_s_per_user"]), _s(r["ttft_p95"]),
                  _s(r["tpot_p95"]), _s(r["e2e_p95"]), "yes" if r["pareto"] else ""] for r in shown])
    notes = [f"workload: {workload.source} ({len(workload)} requests)",
             f"{len(result.pruned)} deployments pruned by memory" if result.pruned else "none pruned by memory"]
    notes += [f"pruned: {p['gpu']} t={p['t']} pp={p['pp']}: {p['reason']}" for p in result.pruned[:3]]
    print_lines(notes + [f"warning: {w}" for w in result.warnings])


def _finite(row: dict) -> dict:
    """The row with NaN (a TPOT of requests that all have one output token) as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _s(x: float) -> str:
    return fmt_s(x) if math.isfinite(x) else "-"


def _n(x: float) -> str:
    return fmt_num(x) if math.isfinite(x) else "-"
