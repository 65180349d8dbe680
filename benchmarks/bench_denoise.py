"""Speed of `idealrt denoise` on synthetic latency logs of 1e4, 1e5 and 1e6 rows (target: 1e6 rows under 5 s).

    python -m benchmarks.bench_denoise [--out benchmarks/results/bench_denoise.json]

Each log is FAKE data (tests/test_denoise.py's generator: a known curve under noise, queuing and outliers), written
to a temporary CSV; timed are reading it and fitting it in this process, and the whole command in a fresh
interpreter. Runs on the CPU; prints a table and writes JSON with this CPU's description.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from calibration.denoise import denoise, read_log
from calibration.provenance import cpu_provenance
from simulator.atomic import write_atomic
from simulator.paths import REPO
from tests.test_denoise import TRUE, noisy_log

SIZES = (10_000, 100_000, 1_000_000)
TARGET_S = {1_000_000: 5.0}


def time_one(n: int, folder: Path) -> dict:
    """Seconds to read and fit a log of n rows in process and through the CLI, and the fit's error."""
    log = noisy_log(n=n, seed=3)
    path = folder / f"log_{n}.csv"
    rows = "".join(f"{int(a)},{int(b)},{c:.6f}\n" for a, b, c in zip(log.p, log.o, log.latency_s))
    path.write_text("prompt_tokens,output_tokens,latency_s\n" + rows)
    start = time.perf_counter()
    parsed = read_log(path)
    read_s = time.perf_counter() - start
    form = denoise(parsed)
    fit_s = time.perf_counter() - start - read_s
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "idealrt", "denoise", str(path), "--json"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    cli_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"idealrt denoise failed on {n} rows: {proc.stderr.strip()}")
    return {"rows": n, "read_s": read_s, "fit_s": fit_s, "in_process_s": read_s + fit_s, "cli_s": cli_s,
            "knots": list(form.knots), "g_rel_err": form.g_s / TRUE.g_s - 1,
            "overhead_rel_err": form.intercept_s / TRUE.intercept_s - 1}


def main(argv: list[str] | None = None) -> int:
    """Time each size, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/bench_denoise.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = [time_one(n, Path(tmp)) for n in SIZES]
    print(f"{'rows':>9} {'read s':>7} {'fit s':>7} {'in process s':>13} {'CLI s':>7} {'target s':>9}  knots")
    for r in results:
        target = TARGET_S.get(r["rows"])
        print(f"{r['rows']:9,d} {r['read_s']:7.2f} {r['fit_s']:7.2f} {r['in_process_s']:13.2f} {r['cli_s']:7.2f} "
              f"{target if target else '':>9}  {', '.join(f'{k:g}' for k in r['knots'])}")
    out = {"provenance": cpu_provenance("python -m benchmarks.bench_denoise",
                                        "on the CPU, FAKE latency logs (tests/test_denoise.py noisy_log, seed 3)"),
           "target_s": {str(k): v for k, v in TARGET_S.items()}, "results": results}
    write_atomic(REPO / args.out, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
