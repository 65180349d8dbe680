"""Board power of each op class, measured: the GPU replays one op back to back from a CUDA graph for a few
seconds while NVML's total energy counter is read around the replays (watts = joules / seconds).

Power follows what a kernel keeps busy rather than its arithmetic intensity alone: a 2 us kernel on a few
SMs draws near-idle power at any intensity, so each merged point carries its FLOPs and bytes (achieved
rates = work / table time) for the simulator's power model.

The shapes are the table's own grid points of each class, picked at evenly spaced quantiles of arithmetic
intensity (FLOPs per byte), so the points span the class from memory-bound to compute-bound; nothing is
chosen by looking at configuration queries. The idle board (no kernel) is measured the same way. The
result is a table section `op_power` (simulator/power.py reads it):

    python -m calibration.op_power --table calibration/tables/h200.json --out OUT.json
    python -m calibration.op_power --merge OUT.json --table calibration/tables/h200.json
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from calibration.grids import work

PER_CLASS = 5  # points per op class: quantiles 0, 1/4, .. 1 of log-intensity
SECONDS = 1.5  # energy-counter window per point (after a warm-up of a third of it)
MIN_US = 2.0  # points shorter than this are launch-bound: their power is the gaps', not the kernel's


def pick_points(points: list[dict], stack: str, per_class: int = PER_CLASS, min_us: float = MIN_US) -> list[dict]:
    """Per op class of `stack`, `per_class` table points at evenly spaced quantiles of log-intensity."""
    by_op: dict[str, list[tuple[float, dict]]] = {}
    for pt in points:
        if pt["stack"] != stack or pt["op"] in ("launch", "allreduce") or pt["median_us"] < min_us:
            continue
        flops, nbytes = work(pt["op"], pt["shape"])
        by_op.setdefault(pt["op"], []).append((math.log10(max(flops, 1.0) / max(nbytes, 1.0)), pt))
    chosen = []
    for op, items in sorted(by_op.items()):
        items.sort(key=lambda x: (x[0], x[1]["median_us"]))
        idx = sorted({round(q * (len(items) - 1)) for q in np.linspace(0, 1, per_class)})
        chosen += [items[i][1] for i in idx]
    return chosen


def _replay_watts(replay, energy, seconds: float) -> tuple[float, float, int]:
    """(watts, seconds, replays): energy-counter advance over repeated `replay()` calls lasting `seconds`."""
    import torch

    warm_end = time.perf_counter() + seconds / 3
    while time.perf_counter() < warm_end:
        replay()
        torch.cuda.synchronize()
    n, e0, t0 = 0, energy(), time.perf_counter()
    while True:
        replay()
        n += 1
        if n % 4 == 0:
            torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
    torch.cuda.synchronize()
    dt, de = time.perf_counter() - t0, energy() - e0
    return de / dt, dt, n


def idle_watts(energy, seconds: float) -> float:
    """Board power with no kernel running (energy-counter advance over `seconds` of sleep)."""
    import torch

    torch.cuda.synchronize()
    time.sleep(0.5)
    e0, t0 = energy(), time.perf_counter()
    time.sleep(seconds)
    return (energy() - e0) / (time.perf_counter() - t0)


def measure_point(pt: dict, energy, seconds: float) -> dict:
    """Power of one table point: its op replayed from a CUDA graph of ~5 ms of back-to-back calls."""
    import torch

    from calibration.opbench import build
    from calibration.timing import _graph_batch

    bench = build(pt["op"], pt["stack"], pt["shape"])
    inner = int(min(256, max(1, math.ceil(5000.0 / pt["median_us"]))))
    inner = max(inner, min(bench.rotate, 256))
    call = bench.call
    replay = _graph_batch(call, inner) if bench.graph else None
    watts, dt, n = _replay_watts(replay or (lambda: [call(i) for i in range(inner)]), energy, seconds)
    flops, nbytes = work(pt["op"], pt["shape"])
    del bench, replay
    torch.cuda.empty_cache()
    return {"op": pt["op"], "stack": pt["stack"], "shape": pt["shape"], "table_us": pt["median_us"],
            "intensity": flops / max(nbytes, 1.0), "watts": round(watts, 1), "seconds": round(dt, 3),
            "calls": n * inner}


def run(table_path: str, out: str, stacks: list[str], per_class: int, seconds: float) -> int:
    """Measure the op power section for the table at `table_path`; write it to `out` (atomic)."""
    import json

    from calibration.power import open_energy_counter
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    energy = open_energy_counter()
    if energy is None:
        print("op_power: this GPU has no NVML total-energy counter; nothing measured", file=sys.stderr)
        return 2
    with open(table_path) as f:
        table = json.load(f)
    section = {"provenance": provenance(), "method": __doc__.split("\n\n")[0].replace("\n", " "),
               "seconds_per_point": seconds, "idle_w": round(idle_watts(energy, seconds), 1), "points": [],
               "errors": []}
    for stack in stacks:
        for pt in pick_points(table["points"], stack, per_class):
            try:
                row = measure_point(pt, energy, seconds)
            except Exception as e:  # noqa: BLE001 — recorded with the point, the sweep goes on
                section["errors"].append({"op": pt["op"], "stack": stack, "shape": pt["shape"],
                                          "error": f"{type(e).__name__}: {e}"[:500]})
                continue
            section["points"].append(row)
            print(f"{row['op']:14s} {stack:6s} I={row['intensity']:9.2f} {row['watts']:7.1f} W "
                  f"({row['table_us']:.1f} us/call)", flush=True)
        write_json_atomic(out, section)
    return 0 if section["points"] else 1


def merge(section_path: str, table_path: str) -> None:
    """Put a measured op power section into a table file as `op_power` (atomic)."""
    import json

    from calibration.table_io import merge_section

    with open(section_path) as f:
        section = json.load(f)
    for pt in section["points"]:  # the work of each point, so the simulator needs no calibration code to read it
        pt["flops"], pt["bytes"] = (float(x) for x in work(pt["op"], pt["shape"]))
    merge_section(section, table_path, "op_power")


def main(argv: list[str] | None = None) -> int:
    """Command line: measure (on the GPU) or merge (anywhere) the op power section."""
    ap = argparse.ArgumentParser(prog="python -m calibration.op_power", description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", required=True, help="the GPU's throughput table (shapes; merge target)")
    ap.add_argument("--out", help="where to write the measured section (JSON)")
    ap.add_argument("--merge", metavar="SECTION", help="merge a measured section into --table instead")
    ap.add_argument("--stacks", default="triton,torch")
    ap.add_argument("--per-class", type=int, default=PER_CLASS)
    ap.add_argument("--seconds", type=float, default=SECONDS)
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge, args.table)
        return 0
    if not args.out:
        ap.error("--out: name the file for the measured section (or pass --merge)")
    return run(args.table, args.out, args.stacks.split(","), args.per_class, args.seconds)


if __name__ == "__main__":
    raise SystemExit(main())
