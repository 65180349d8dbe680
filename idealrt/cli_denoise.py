"""`idealrt denoise LOG.csv`: the denoised runtime of a black-box API from its latency log: a low-quantile
envelope T(p, o) = overhead + F(p) + g·(o − 1) of logged (prompt_tokens, output_tokens, latency_s) rows.
"""
from __future__ import annotations

import argparse
import json


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", metavar="LOG.csv", help="CSV with columns prompt_tokens, output_tokens, latency_s")
    parser.add_argument("--quantile", type=float, default=0.05, help="quantile of the envelope (default 0.05)")
    parser.add_argument("--max-knots", type=int, default=2, help="knots F may bend at (default 2)")
    parser.add_argument("--quadratic", action="store_true", help="add a p² term for long prompts")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from calibration.denoise import denoise, read_log, summary
    from simulator.errors import UserError

    if args.max_knots < 0:
        raise UserError(f"--max-knots is {args.max_knots}; use 0 or more")
    log = read_log(args.log)
    res = summary(denoise(log, args.quantile, args.max_knots, args.quadratic), log)
    if args.json:
        print(json.dumps({"log": args.log, "quantile": args.quantile, **res}, indent=1))
        return 0
    knots = ", ".join(f"{k:g}" for k in res["knots"]) or "none"
    slopes = ", ".join(f"{1e6 * s:.3g}" for s in res["slopes_s_per_token"])
    print(f"denoised runtime of {args.log} ({res['rows']} rows, {args.quantile:g} quantile envelope):")
    print("  T(p, o) = overhead + F(p) + g*(o - 1)")
    print(f"  overhead          {1e3 * res['overhead_s']:.2f} ms")
    print(f"  F knots (p)       {knots}")
    print(f"  F slopes          {slopes} us per prompt token")
    if args.quadratic:
        print(f"  p^2 term          {1e9 * res['quad_s_per_token2']:.4g} ns per token^2")
    print(f"  g                 {1e3 * res['g_s_per_token']:.3f} ms per output token")
    print(f"  rows below it     {100 * res['below_envelope_share']:.1f}%; median latency above it "
          f"{res['median_excess_pct']:.1f}% (noise, queuing)")
    return 0
