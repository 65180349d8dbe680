"""Serve request streams on the reference engine's continuous-batching variant and log every request.

    python -m calibration.serve_run --arch A --lengths DIST [--lengths DIST2] --rate light,near,over \
        --requests N --seed S --max-batch B --out F.json [--span-s 12] [--max-seconds 150]

One engine per call (weights, slots, CUDA graphs set up once), then one run per (lengths, rate): the first
min(N, rate x span) requests of the named distribution with Poisson arrivals (calibration/serving_runs.py), each
injected at its arrival time by the driver of calibration/engine_variants/serving.py. Rates `light`, `near`,
`over` are fractions of the capacity the serving simulator predicts for this arch, GPU and max batch. The file
(docs/CONTRACTS.md, "Serving run") is rewritten after every run, so a stopped call keeps the runs it finished.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from calibration.serving_runs import (
    POLICY,
    parse_rates,
    predicted_capacity,
    replay,
    run_workload,
    summary,
)
from simulator.arch import ArchSpec
from simulator.defaults import resolve_arch
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.workload import parse_lengths, synthetic

WARMUP_REQUESTS = 8  # served at once before the runs, not recorded: first launches, clocks up
RUN_SLACK_S = 3.0  # added to a run's predicted length when checking it fits the budget


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m calibration.serve_run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", help="catalog architecture")
    ap.add_argument("--config", help="or a Hugging Face config.json")
    ap.add_argument("--lengths", action="append", required=True, help="length distribution (repeat for more)")
    ap.add_argument("--rate", default="light,near,over", help="requests/s or light,near,over (x predicted capacity)")
    ap.add_argument("--requests", type=int, default=300, help="most requests a run serves")
    ap.add_argument("--span-s", type=float, default=12.0, help="arrival span a run aims at (fewer requests if shorter)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--gpu", default="h200", help="catalog GPU whose table predicts the capacity")
    ap.add_argument("--out", required=True, help="run file (JSON)")
    ap.add_argument("--max-seconds", type=float, default=math.inf, help="wall budget of the whole call")
    ap.add_argument("--backend", default="triton", choices=("triton", "torch"))
    ap.add_argument("--device", default="cuda", help="cuda, or cpu (tests: torch backend, float32)")
    return ap


def check_args(args: argparse.Namespace) -> tuple[ArchSpec, list]:
    """(arch, rates) after checking every option; UserError naming the option and the fix."""
    if (args.arch is None) == (args.config is None):
        raise UserError("--arch / --config: give exactly one (a catalog name or a config.json)")
    arch = resolve_arch(args.arch, args.config)
    get_gpu(args.gpu)
    for text in args.lengths:
        parse_lengths(text)
    rates = parse_rates(args.rate)
    if args.requests < 1:
        raise UserError(f"--requests {args.requests}: give a whole number >= 1")
    if args.max_batch < 1:
        raise UserError(f"--max-batch {args.max_batch}: give a whole number >= 1")
    if not math.isfinite(args.span_s) or args.span_s <= 0:
        raise UserError(f"--span-s {args.span_s}: give seconds > 0")
    if not args.max_seconds > 0:
        raise UserError(f"--max-seconds {args.max_seconds}: give seconds > 0")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist; create it or name another")
    for text in args.lengths:
        w = synthetic(text, 1.0, args.requests, args.seed)
        used = int(arch.positions_used(w.prompt, w.output).max())
        if used > arch.max_positions:
            raise UserError(f"--lengths {text}: a request needs {used} positions, more than {arch.name}'s "
                            f"max_positions={arch.max_positions}; use shorter lengths")
    return arch, rates


def plan_runs(arch: ArchSpec, args: argparse.Namespace, rates: list) -> tuple[list[dict], list[dict]]:
    """(capacity per distribution, the runs in order: lengths, rate, workload, predicted seconds)."""
    gpu = get_gpu(args.gpu)
    capacities, runs = [], []
    for text in args.lengths:
        base = synthetic(text, 1.0, args.requests, args.seed)
        cap = predicted_capacity(arch, gpu, base.prompt, base.output, args.max_batch)
        capacities.append({"lengths": text, "requests": args.requests, "seed": args.seed, "capacity_per_s": cap})
        for label, factor, value in rates:
            rate = cap * factor if factor is not None else value
            w = run_workload(text, rate, args.requests, args.span_s, args.seed)
            predicted = replay(arch, gpu, w, args.max_batch).makespan_s + float(w.arrival_s.min())
            runs.append({"lengths": text, "rate_label": label, "rate_factor": factor, "rate_per_s": rate,
                         "capacity_per_s": cap, "seed": args.seed, "span_s": args.span_s, "workload": w,
                         "predicted_s": predicted})
    return capacities, runs


def _rounded(values) -> list:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in np.asarray(values, dtype=float)]


def _run_record(spec: dict, res: dict, wall_s: float) -> dict:
    w = spec["workload"]
    done = np.isfinite(res["finish_s"])
    out = {k: v for k, v in spec.items() if k not in ("workload", "predicted_s")}
    out["requests"] = len(w)
    out["workload"] = {"source": w.source, "arrival_s": _rounded(w.arrival_s), "prompt_tokens": w.prompt.tolist(),
                       "output_tokens": w.output.tolist()}
    out["measured"] = {k: _rounded(res[k]) for k in ("start_s", "first_token_s", "finish_s", "max_gap_s")}
    it = res["iterations"]
    out["iterations"] = {"kind": it["kind"], "context_sum": it["context_sum"], "start_s": _rounded(it["start_s"]),
                         "end_s": _rounded(it["end_s"])}
    out["complete"] = bool(done.all())
    out["summary"] = summary(w.arrival_s[done], w.output[done], res["first_token_s"][done], res["finish_s"][done]) \
        if done.any() else {}
    out["wall_s"] = round(wall_s, 3)
    return out


def measure(arch: ArchSpec, args: argparse.Namespace, capacities: list[dict], runs: list[dict]) -> int:
    """Set up the engine, serve every run that fits the budget, rewrite the file after each; exit code."""
    import torch

    from calibration.engine_variants.serving import make_engine, serve
    from calibration.engine_version import engine_version
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    t_start = time.perf_counter()
    cpu = args.device == "cpu"
    prompts = np.concatenate([r["workload"].prompt for r in runs])
    s_needed = max(int((r["workload"].prompt + r["workload"].output).max()) for r in runs)
    engine = make_engine(arch, args.max_batch, s_needed, args.backend, args.device,
                         torch.float32 if cpu else torch.bfloat16, args.seed)
    engine.capture(prompts, s_needed)
    first = runs[0]["workload"]
    k = min(WARMUP_REQUESTS, len(first), args.max_batch)
    serve(engine, np.zeros(k), first.prompt[:k], first.output[:k], args.max_batch, seed=args.seed + 1)
    header = {"kind": "serving_runs", "arch": arch.name, "arch_spec": asdict(arch), "gpu": args.gpu,
              "max_batch": args.max_batch, "policy": POLICY, "backend": args.backend,
              "dtype": "float32" if cpu else "bfloat16", "engine": "reference", "engine_variant": "serving",
              "engine_version": engine_version("serving"), "cache_rows": engine.s_rows,
              "graphs": {"prefill": len(engine.prefill_graphs), "decode": len(engine.decode_graphs)},
              "setup_s": round(time.perf_counter() - t_start, 2), "capacity": capacities,
              "provenance": provenance(), "runs": [], "skipped": []}
    for spec in runs:
        elapsed = time.perf_counter() - t_start
        name = f"{spec['lengths']} at {spec['rate_label']} ({spec['rate_per_s']:.2f}/s)"
        if elapsed + spec["predicted_s"] + RUN_SLACK_S > args.max_seconds:
            header["skipped"].append({"lengths": spec["lengths"], "rate_label": spec["rate_label"],
                                      "reason": f"budget: {elapsed:.0f} s used of {args.max_seconds:.0f}"})
            print(f"skip {name}: budget", flush=True)
            continue
        w = spec["workload"]
        t0 = time.perf_counter()
        res = serve(engine, w.arrival_s, w.prompt, w.output, args.max_batch, seed=args.seed,
                    deadline_s=args.max_seconds - elapsed - RUN_SLACK_S / 2)
        header["runs"].append(_run_record(spec, res, time.perf_counter() - t0))
        write_json_atomic(args.out, header)
        s = header["runs"][-1]["summary"]
        print(f"{arch.name} {name}: {len(w)} requests, ttft p50/p95 {s.get('ttft_p50', math.nan) * 1e3:.1f}/"
              f"{s.get('ttft_p95', math.nan) * 1e3:.1f} ms, tpot p50/p95 {s.get('tpot_p50', math.nan) * 1e3:.2f}/"
              f"{s.get('tpot_p95', math.nan) * 1e3:.2f} ms, {s.get('tokens_per_s', math.nan):.0f} tok/s", flush=True)
    write_json_atomic(args.out, header)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring); bad input: one line, exit 2."""
    args = _parser().parse_args(argv)
    try:
        arch, rates = check_args(args)
        capacities, runs = plan_runs(arch, args, rates)
    except UserError as e:
        sys.stderr.write(f"serve_run: error: {e}\n")
        return 2
    return measure(arch, args, capacities, runs)


if __name__ == "__main__":
    raise SystemExit(main())
