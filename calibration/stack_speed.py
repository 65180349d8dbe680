"""Measured speed of the engine's stacks on the same configuration queries: each stack's time over a base
stack's (prefill, per-token decode, total), per architecture and pooled, from measurement rows of the current
engine versions. Computed on the CPU from committed rows.

    python -m benchmarks.stack_speed --base best --out benchmarks/results/stack_speed_h200.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from calibration.validate import PHASES, phase_values

STACKS = ("best", "triton", "torch")


def paired(rows: list[dict], base: str, other: str) -> list[tuple[dict, dict]]:
    """(base row, other row) of every query (arch, gpu, t, b, p, o) both stacks measured on the reference engine."""
    key = lambda r: (r["arch"], r["gpu"], r["t"], r["b"], r["p"], r["o"])
    theirs = {key(r): r for r in rows if r["backend"] == other and r["engine"] == "idealrt"}
    return [(r, theirs[key(r)]) for r in rows if r["backend"] == base and r["engine"] == "idealrt" and key(r) in theirs]


def ratios(pairs: list[tuple[dict, dict]]) -> dict:
    """Per phase: median, 10th and 90th percentile of other / base time, and how many queries base is faster."""
    out = {}
    for phase in PHASES:
        r = [phase_values(o, o["prefill_s"], o["decode_s"])[phase] / phase_values(b, b["prefill_s"], b["decode_s"])[phase]
             for b, o in pairs if phase in phase_values(b, b["prefill_s"], b["decode_s"])]
        if r:
            out[phase] = {"n": len(r), "median": float(np.median(r)), "p10": float(np.percentile(r, 10)),
                          "p90": float(np.percentile(r, 90)), "base_faster_share": float(np.mean(np.array(r) > 1))}
    return out


def compare(rows: list[dict], base: str) -> dict:
    """Every other stack against `base`: pooled and per architecture."""
    out = {}
    for other in (s for s in STACKS if s != base):
        pairs = paired(rows, base, other)
        if pairs:
            archs = sorted({b["arch"] for b, _ in pairs})
            out[other] = {"pooled": ratios(pairs),
                          "by_arch": {a: ratios([(b, o) for b, o in pairs if b["arch"] == a]) for a in archs}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measurements", nargs="+", default=["calibration/measurements/h200_t1.jsonl"])
    ap.add_argument("--base", default="best", choices=STACKS)
    ap.add_argument("--out", help="JSON file of the results")
    args = ap.parse_args(argv)

    from calibration.measurements_io import of_current_engine, read_measurements
    from calibration.table_io import write_json_atomic

    rows, note = of_current_engine(read_measurements(args.measurements))
    result = compare(rows, args.base)
    for other, rec in result.items():
        for phase, r in rec["pooled"].items():
            print(f"{other:7s} / {args.base:7s} {phase:12s} n={r['n']:3d} median {r['median']:.3f} "
                  f"(P10 {r['p10']:.3f}, P90 {r['p90']:.3f}); {args.base} faster on {r['base_faster_share']:.0%}")
    if args.out:
        import datetime as dt
        prov = {"computed": "on the CPU from committed rows (no GPU)", "command": "python -m benchmarks.stack_speed "
                + " ".join(argv if argv is not None else sys.argv[1:]),
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(args.out, {"provenance": prov, "base": args.base,
                                     "ratio": "other stack's time / base stack's time",
                                     "measurements": args.measurements, "rows_note": note, "stacks": result})
    return 0
