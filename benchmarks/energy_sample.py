"""Draw the queries whose energy is metered over windows (`idealrt measure --queries-from ... --energy-window`):
per architecture, `--per-arch` queries at random (seeded) among the measured rows of one stack and GPU at t = 1.

    python -m benchmarks.energy_sample --stack triton --per-arch 7 --seed S \
        --out calibration/measurements/energy_windows/queries/h200_t1_triton.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from calibration.measurements_io import of_current_engine, read_measurements
from simulator.atomic import write_atomic
from simulator.errors import UserError
from simulator.paths import MEASUREMENTS_DIR


def sample(rows: list[dict], per_arch: int, seed: int) -> list[dict]:
    """per_arch distinct (b, p, o) of each architecture's rows, drawn with `seed`, in a stable order."""
    rng = random.Random(seed)
    out = []
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        spec = {"arch_spec": mine[0]["arch_spec"]} if "arch_spec" in mine[0] else {}  # an architecture of a config
        queries = sorted({(r["b"], r["p"], r["o"]) for r in mine})
        for b, p, o in sorted(rng.sample(queries, min(per_arch, len(queries)))):
            out.append({"arch": arch, **spec, "t": 1, "b": b, "p": p, "o": o})
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the sample as JSON Lines (atomic)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--stack", default="triton", help="the rows' backend")
    ap.add_argument("--per-arch", type=int, default=7)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        rows = read_measurements(sorted(MEASUREMENTS_DIR.glob(f"{args.gpu}_t1*.jsonl")))
        rows = [r for r in rows if r["engine"] == "idealrt" and r.get("backend", "triton") == args.stack and r["t"] == 1]
        rows, _ = of_current_engine(rows)
        if not rows:
            raise UserError(f"--stack {args.stack}: no current rows of it on {args.gpu} at t = 1")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    picked = sample(rows, args.per_arch, args.seed)
    write_atomic(args.out, "".join(json.dumps(q) + "\n" for q in picked))
    print(f"{len(picked)} queries of {len({q['arch'] for q in picked})} architectures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
