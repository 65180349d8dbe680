"""`idealrt sweep`: predictions over lists or ranges of prompt, output, batch, tp, models and GPUs; tidy
rows written to CSV or JSON (by the -o suffix, atomically) with a summary table on screen.

Value lists: `128,512,2048`; ranges `a:b` (step 1), `a:b:k` (step k), `a:b:xk` (times k), ends included
when hit; the forms mix: `1,16:64:x2`. Per request, tp "auto" is the smallest valid tp that fits it.
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from idealrt.api import SweepWarning, sweep
from idealrt.cli_predict import add_common_args
from idealrt.output import fmt_num, fmt_s, option_named, print_json, print_lines, print_table, write_rows
from simulator.defaults import resolve_arch
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.precision import FLAG_WEIGHTS, KV

MAX_ROWS = 200_000  # rows are dicts: about 1.5 KB each in memory
SCREEN_ROWS = 30


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt sweep`."""
    parser.add_argument("--model", default=None, help="catalog names, comma-separated")
    parser.add_argument("--config", action="append", default=[], help="a Hugging Face config.json (repeatable)")
    parser.add_argument("--gpu", required=True, help="GPU names, comma-separated")
    parser.add_argument("--prompt", required=True, help="prompt tokens: list or range, e.g. 1:8192:x2")
    parser.add_argument("--output", required=True, help="output tokens: list or range")
    parser.add_argument("--batch", default="1", help="batch sizes: list or range (default 1)")
    parser.add_argument("--tp", default="auto", help="tensor-parallel degrees, or auto (default)")
    parser.add_argument("--pp", default="auto", help="pipeline stages, or auto (default: 1 where a t fits, else the "
                        "fewest GPUs that fit); network figures modelled, not measured")
    parser.add_argument("--microbatches", default="1", help="micro-batches through the stages (default 1)")
    parser.add_argument("--weights", default=None, help="weights served, comma-separated: bf16, fp8 (w8a8), int4 "
                        "(weight-only, group 128) (default: as each model's config says)")
    parser.add_argument("--kv", default=None,
                        help="KV caches, comma-separated: bf16, fp8 (default: as the config says)")
    add_common_args(parser)
    parser.add_argument("-o", dest="out", default=None, help="write all rows to FILE.csv or FILE.json")
    parser.add_argument("--html", default=None, metavar="FILE", help="also write the what-if HTML report")
    parser.add_argument("--json", action="store_true", help="print all rows as JSON instead of the summary")


def _range(item: str, option: str) -> list[int]:
    """One `a:b`, `a:b:k` or `a:b:xk` range, ends included when hit."""
    parts = item.split(":")
    step = parts[2] if len(parts) == 3 else "1"
    geometric = step.startswith("x")
    try:
        lo, hi = int(parts[0]), int(parts[1])
        k = float(step[1:]) if geometric else int(step)
    except (ValueError, IndexError):
        raise UserError(f"{option} '{item}': a range is a:b, a:b:k or a:b:xk with whole numbers") from None
    if len(parts) > 3 or not 1 <= lo <= hi or k <= (1 if geometric else 0):
        raise UserError(f"{option} '{item}': need 1 <= a <= b and a step k >= 1 (or a factor xk > 1)")
    if not geometric:
        return list(range(lo, hi + 1, k))
    n = int(np.floor(np.log(hi / lo) / np.log(k) + 1e-9)) + 1  # lo·k^i <= hi
    return list(dict.fromkeys(int(round(lo * k**i)) for i in range(n)))


def parse_ints(text: str, option: str) -> list[int]:
    """A comma-separated list of whole numbers and ranges: the distinct values, ascending."""
    values: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if ":" in item:
            values += _range(item, option)
        else:
            try:
                values.append(int(item))
            except ValueError:
                raise UserError(f"{option} '{item}': not a whole number (lists: 1,2,4; ranges: 1:64:x2)") from None
    if any(v < 1 for v in values):
        raise UserError(f"{option}: every value must be >= 1, got {min(values)}")
    return sorted(set(values))


def parse_tps(text: str, option: str = "--tp") -> list[int]:
    """tp (or pp) values, each once; 'auto' is 0."""
    return list(dict.fromkeys(0 if v.strip() == "auto" else parse_ints(v, option)[0] for v in text.split(",")))


def parse_dtypes(text: str | None, option: str, allowed: tuple[str, ...]) -> list[str | None]:
    """A comma-separated list of dtype names, each once ([None]: the option not given)."""
    if text is None:
        return [None]
    values = list(dict.fromkeys(v.strip() for v in text.split(",")))
    bad = [v for v in values if v not in allowed]
    if bad:
        raise UserError(f"{option} '{bad[0]}': use one or more of {', '.join(allowed)}, comma-separated")
    return values


def run(args: argparse.Namespace) -> int:
    """Run `idealrt sweep`; returns the exit code (bad input raises UserError)."""
    names = [m.strip() for m in args.model.split(",")] if args.model else []
    if not names and not args.config:
        raise UserError("give --model NAME[,NAME...] and/or --config config.json")
    archs = [resolve_arch(n, None) for n in names] + [resolve_arch(None, c) for c in args.config]
    gpus = [get_gpu(g.strip()) for g in args.gpu.split(",")]
    for option, out in (("-o", args.out), ("--html", args.html)):
        if out == "":
            raise UserError(f"{option}: give a file name")
    p_list, o_list = parse_ints(args.prompt, "--prompt"), parse_ints(args.output, "--output")
    b_list, tps, pps = parse_ints(args.batch, "--batch"), parse_tps(args.tp), parse_tps(args.pp, "--pp")
    micro = parse_ints(args.microbatches, "--microbatches")
    if len(micro) != 1:
        raise UserError(f"--microbatches '{args.microbatches}': give one whole number")
    weights, kvs = parse_dtypes(args.weights, "--weights", FLAG_WEIGHTS), parse_dtypes(args.kv, "--kv", KV)
    n_rows = len(archs) * len(gpus) * len(tps) * len(pps) * len(p_list) * len(o_list) * len(b_list) * len(weights) * len(kvs)
    if n_rows > MAX_ROWS:
        raise UserError(f"the sweep has {n_rows:,} rows, over {MAX_ROWS:,}; use fewer values or coarser ranges")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        rows = sweep(archs, gpus, p_list, o_list, b_list, [t or None for t in tps], stack=args.stack,
                     fit=not args.no_fit, price_per_hour_usd=args.price_per_hour,
                     weights=weights, kvs=kvs, pps=[s or None for s in pps], microbatches=micro[0])
    if args.out:
        write_rows(args.out, rows)
    if args.html:
        from reports.whatif_report import write_whatif

        with option_named("--html"):
            write_whatif(args.html, rows)
    for w in caught:  # one line per model whose max_positions cut rows (after the writes: a failed one is one line)
        sys.stderr.write(f"idealrt sweep: warning: {w.message}\n")
    if args.json:
        print_json(rows)
    else:
        _summary(rows, args.out)
    return 0


def _summary(rows: list[dict], out: str | None) -> None:
    shown = rows[:SCREEN_ROWS]
    print_table(None, ["model", "gpu", "precision", "tp", "pp", "b", "p", "o", "prefill", "decode/token", "total",
                       "tokens/s", "mem/GPU GiB", "fits", "cost $"],
                [[r["arch"], r["gpu"], r["precision"], r["t"], r["pp"], r["b"], r["p"], r["o"], fmt_s(r["prefill_s"]),
                  fmt_s(r["decode_step_s"]), fmt_s(r["total_s"]), fmt_num(r["tokens_per_s"]),
                  f"{r['mem_per_gpu_gib']:.1f}", "yes" if r["fits"] else "NO", fmt_num(r["cost_usd"])]
                 for r in shown])
    more = f"{len(rows) - len(shown)} more rows not shown; " if len(rows) > len(shown) else ""
    where = f"all {len(rows)} rows written to {out}" if out else "-o FILE.csv|.json writes all rows"
    labels = sorted({(r["gpu"], r["time_model"], r["fit"]) for r in rows})
    notes = sorted({w for r in rows for w in r["warnings"] if not w.startswith("memory:")})  # each row has its own
    short = sum(not r["fits"] for r in rows)
    if short:
        notes.insert(0, f"memory: {short} of {len(rows)} rows need more than the GPU holds at their tp (fits NO; "
                        "their warnings name the tp that fits)")
    print_lines([more + where] + [f"{g}: time model {tm}, fit {f}" for g, tm, f in labels]
                + [f"warning: {w}" for w in notes])
