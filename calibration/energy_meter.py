"""GPU run: how finely the GPU's energy counter resolves a run (the configuration queries' `energy_j`).

A query's energy is the advance of NVML's total energy counter over the run (calibration/query_timing.py). The
counter advances in steps; a run a few steps long reads whole steps, so its mean power can come out above the
board limit. This polls the counter as fast as the host can while the GPU runs a GEMM loop (and while it
idles), and records the intervals between the counter's changes and the energy of each step, so energy
validation can keep to runs many steps long.

    python3 -m calibration.energy_meter --out $OUT/energy_meter_h200.json
"""
from __future__ import annotations

import argparse
import statistics
import time
from itertools import pairwise

LOAD_S = 3.0  # seconds of each phase
N = 8192  # GEMM size of the load


def poll(read, seconds: float) -> list[tuple[float, float]]:
    """(host time, counter joules) at every change of the counter over `seconds`."""
    changes, last, end = [], read(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        now = read()
        if now != last:
            changes.append((time.perf_counter(), now))
            last = now
    return changes


def summary(changes: list[tuple[float, float]], seconds: float) -> dict:
    """Intervals between counter changes (ms) and joules per change, with the mean power over the phase."""
    gaps = [1e3 * (b[0] - a[0]) for a, b in pairwise(changes)]
    steps = [b[1] - a[1] for a, b in pairwise(changes)]
    if not gaps:
        return {"changes": len(changes)}
    q = statistics.quantiles(gaps, n=10) if len(gaps) > 1 else [gaps[0]] * 9
    return {"changes": len(changes), "interval_ms_median": statistics.median(gaps), "interval_ms_p10": q[0],
            "interval_ms_p90": q[-1], "joules_per_change_median": statistics.median(steps),
            "mean_w": (changes[-1][1] - changes[0][1]) / (changes[-1][0] - changes[0][0]), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Poll the counter while idle and under a GEMM loop; write the summary with provenance."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import threading

    import torch

    from calibration.power import open_energy_counter
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    read = open_energy_counter()
    if read is None:
        raise SystemExit("this GPU has no total energy counter")
    idle = summary(poll(read, LOAD_S), LOAD_S)
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for _ in range(10):
                a @ a
            torch.cuda.synchronize()
    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(0.5)  # past the ramp
    busy = summary(poll(read, LOAD_S), LOAD_S)
    stop.set()
    worker.join()
    write_json_atomic(args.out, {"idle": idle, "gemm_load": busy,
                                 "provenance": provenance("python3 -m calibration.energy_meter")})
    print(f"idle: {idle}\nload: {busy}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
