"""Decode steps right after a long prefill against the same steps after idling, on the reference engine.

Per architecture and (b, p): after `idle` seconds, the prefill runs and then `steps` decode steps, each timed by
CUDA events; again after idling, the same steps run with no prefill before them (the cache position set to p,
its contents do not change the time). The SM clock and board power are sampled by NVML throughout. The
difference says how much of a decode step's time after a prefill is the clock state the prefill left.

    python -m calibration.decode_after_prefill --out OUT.json [--arch llama-3.1-8b --b 32 --p 512 --steps 60]
    python -m calibration.decode_after_prefill --merge OUT.json [...] --table calibration/tables/h200.json
"""
from __future__ import annotations

import argparse
import sys
import time


def timed_steps(engine, steps: int) -> list[float]:
    """Milliseconds of each of `steps` decode steps (graph replays), timed by CUDA events."""
    import torch

    events = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        engine.step()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [round(s.elapsed_time(e), 4) for s, e in events]


def run_case(engine, prompt, p: int, steps: int, idle: float, with_prefill: bool) -> dict:
    """One case: idle, then (prefill and) the decode steps, with the clock samples of the whole case."""
    import torch

    from calibration.power import PowerSampler

    with PowerSampler(period_s=0.005, clocks=True) as sampler:
        time.sleep(idle)
        t0 = time.perf_counter()
        prefill_ms = None
        if with_prefill:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            engine.prefill(prompt)
            end.record()
            end.synchronize()
            prefill_ms = round(start.elapsed_time(end), 3)
        else:
            engine.pos_host = p
        step_ms = timed_steps(engine, steps)
    return {"with_prefill": with_prefill, "prefill_ms": prefill_ms, "step_ms": step_ms,
            "clock": [[round(t - t0, 4), c, round(w, 1)] for t, c, w in sampler.stamped]}


def recovery_runs(res: dict) -> list[dict]:
    """Per architecture of a results file: the prefill's seconds and each step's excess over the steady step time
    of the no-prefill case (its last 20 steps), against the time the step started after the prefill ended."""
    out = []
    for a in res["archs"]:
        after, idle = (next(c for c in a["cases"] if c["with_prefill"] is w) for w in (True, False))
        steady = sum(idle["step_ms"][-20:]) / len(idle["step_ms"][-20:])
        starts = [sum(after["step_ms"][:i]) / 1e3 for i in range(len(after["step_ms"]))]
        out.append({"arch": a["arch"], "b": res["b"], "p": res["p"], "prefill_s": after["prefill_ms"] / 1e3,
                    "steady_ms": round(steady, 4),
                    "curve": [[round(t, 5), round(ms / steady - 1.0, 5)] for t, ms in zip(starts, after["step_ms"])]})
    return out


def merge(paths: list[str], table_path: str) -> None:
    """Put the runs of results files into a table's `sustained` section as `recovery` (atomic), with provenance."""
    import json

    from calibration.table_io import merge_section

    runs, provs = [], []
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        runs += recovery_runs(res)
        provs.append(res["provenance"])
    merge_section({"recovery": runs, "recovery_provenance": provs}, table_path, "sustained")


def main(argv: list[str] | None = None) -> int:
    """Both cases per architecture; the JSON (atomic) with provenance (or --merge results into a table)."""
    import torch

    from calibration.engine.runner import Engine
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from simulator.catalog import get_arch

    ap = argparse.ArgumentParser(prog="python -m calibration.decode_after_prefill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--merge", nargs="+", metavar="RESULTS", help="merge results files into --table instead")
    ap.add_argument("--table", help="the table the results merge into")
    ap.add_argument("--arch", default="gpt-neox-20b,j1-large-7.5b")
    ap.add_argument("--b", type=int, default=32)
    ap.add_argument("--p", type=int, default=512)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--idle", type=float, default=3.0)
    args = ap.parse_args(argv)
    if args.merge:
        if not args.table:
            ap.error("--table: name the table the results merge into")
        merge(args.merge, args.table)
        return 0
    if not args.out:
        ap.error("--out: name the results file (or pass --merge RESULTS --table TABLE)")
    res = {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " "), "b": args.b,
           "p": args.p, "steps": args.steps, "idle_s": args.idle, "archs": []}
    for name in args.arch.split(","):
        arch = get_arch(name)
        engine = Engine(arch)
        with torch.no_grad():
            engine.prepare(args.b, args.p + args.steps + 1)
            prompt = torch.randint(0, arch.vocab, (args.b, args.p), device="cuda")
            engine.capture_prefill(args.b, args.p)
            engine.capture(args.p + 1, args.p + args.steps)
            engine.prefill(prompt)  # warm-up: compiles, first launches
            timed_steps(engine, 2)
            cases = [run_case(engine, prompt, args.p, args.steps, args.idle, w) for w in (True, False)]
        res["archs"].append({"arch": name, "cases": cases})
        for c in cases:
            ms = c["step_ms"]
            print(f"{name} prefill={c['prefill_ms']} steps 1-5 {ms[:5]} last-5 mean {sum(ms[-5:]) / 5:.3f} ms",
                  flush=True)
        write_json_atomic(args.out, res)
        del engine
        torch.cuda.empty_cache()
    print("done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
