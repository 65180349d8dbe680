"""How a kernel slows down while it is sustained: one op run back to back for seconds after the GPU idled.

A microbenchmark times an op in short bursts; a long prefill keeps the tensor cores busy for tenths of a
second, long enough for the board's power limiter to lower the SM clock. Per op (the op power section's
most compute-intensive point of each compute class and stack), after `idle` seconds of sleep, the op runs
back to back for `seconds`; each call is timed by CUDA events and the SM clock and board power are sampled
by NVML, all against the same elapsed-time axis. The result is the slowdown curve: time per call against
the time the op has been running, binned, with the burst time (first bin) and the settled time (last
second). Then, per follower op (decode-step ops: short GEMMs, decode attention, add+norm), how much slower it
runs right after the compute op ran for `after` seconds than after idling — the clock recovers over the
`recovery` curve. `simulator/sustained.py` reads both from the table section `sustained`:

    python -m calibration.sustained --table calibration/tables/h200.json --out OUT.json
    python -m calibration.sustained --merge OUT.json --table calibration/tables/h200.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from calibration.power import PowerSampler

COMPUTE_CLASSES = ("gemm", "prefill_attn")
BIN_S = 0.01  # width of a time bin of the curve
# Followers: the ops of a decode step of an 8B model (hidden 4096, 32 query / 8 KV heads) at b = 1 and 32
FOLLOWERS = [("gemm", {"m": 1, "n": 6144, "k": 4096}), ("gemm", {"m": 32, "n": 28672, "k": 4096}),
             ("gemm", {"m": 32, "n": 4096, "k": 14336}),
             ("decode_attn", {"b": 32, "h": 32, "kv_h": 8, "c": 1024, "d": 128}),
             ("add_norm", {"rows": 32, "hidden": 4096})]
FOLLOWER_CALLS = 64  # follower calls per CUDA-graph replay, so host launches do not pace them


def pick_ops(section: dict) -> list[dict]:
    """Per (stack, compute class), the op power point of highest arithmetic intensity."""
    best: dict[tuple[str, str], dict] = {}
    for pt in section["points"]:
        key = (pt["stack"], pt["op"])
        if pt["op"] in COMPUTE_CLASSES and (key not in best or pt["intensity"] > best[key]["intensity"]):
            best[key] = pt
    return [best[k] for k in sorted(best)]


def run_sustained(pt: dict, seconds: float, idle: float) -> dict:
    """Time every call of one op sustained for `seconds` after `idle` seconds of sleep."""
    import torch

    from calibration.opbench import build

    bench = build(pt["op"], pt["stack"], pt["shape"])
    for i in range(3):  # compile and warm the caches
        bench.call(i)
    torch.cuda.synchronize()
    with PowerSampler(period_s=0.005, clocks=True) as sampler:
        time.sleep(idle)
        t0 = time.perf_counter()
        starts, us = _timed_calls(_replay(bench, 1), 1, seconds)
    return {"op": pt["op"], "stack": pt["stack"], "shape": pt["shape"], "table_us": pt["table_us"],
            "intensity": pt["intensity"], "calls": len(us), **curve(starts, us),
            "clock": [[round(t - t0, 4), c, round(w, 1)] for t, c, w in sampler.stamped if t >= t0 - idle / 2]}


def curve(starts: np.ndarray, us: np.ndarray) -> dict:
    """Binned time per call against running time, with the burst (first bin) and settled (last second) times."""
    bins = np.floor(starts / BIN_S).astype(int)
    rows = [[round((b + 0.5) * BIN_S, 4), round(float(np.median(us[bins == b])), 2)] for b in np.unique(bins)]
    settled = us[starts >= starts[-1] - 1.0]
    return {"burst_us": rows[0][1], "settled_us": round(float(np.median(settled)), 2), "curve": rows}


def _replay(bench, inner: int):
    """One launch of `inner` back-to-back calls of `bench` (a CUDA graph where the op can be captured)."""
    from calibration.timing import _graph_batch

    graph = _graph_batch(bench.call, inner) if bench.graph and inner > 1 else None
    return graph or (lambda: [bench.call(i) for i in range(inner)])


def _timed_calls(replay, inner: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(GPU start seconds since the first replay, us per call) of `replay` (`inner` calls) run for `seconds`."""
    import torch

    events, t0, i = [], time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        replay()
        end.record()
        events.append((start, end))
        i += 1
        if i % 8 == 0:
            events[-8][1].synchronize()
    torch.cuda.synchronize()
    first = events[0][0]
    return (np.array([first.elapsed_time(s) / 1000.0 for s, _ in events]),
            np.array([s.elapsed_time(e) * 1000.0 / inner for s, e in events]))


def run_recovery(compute: dict, op: str, shape: dict, stack: str, after: float, seconds: float, idle: float) -> dict:
    """A follower op after idling (its burst time) and right after `after` seconds of the compute op (binned)."""
    import torch

    from calibration.opbench import build

    heavy, light = build(compute["op"], stack, compute["shape"]), build(op, stack, shape)
    heavy_replay, light_replay = _replay(heavy, 1), _replay(light, FOLLOWER_CALLS)
    heavy_replay()
    light_replay()
    torch.cuda.synchronize()
    time.sleep(idle)
    _, cold = _timed_calls(light_replay, FOLLOWER_CALLS, 0.2)
    time.sleep(idle)
    _timed_calls(heavy_replay, 1, after)
    starts, us = _timed_calls(light_replay, FOLLOWER_CALLS, seconds)
    cold_us = float(np.median(cold))
    bins = np.floor(starts / BIN_S).astype(int)
    rows = [[round((b + 0.5) * BIN_S, 4), round(float(np.median(us[bins == b])) / cold_us, 4)] for b in np.unique(bins)]
    return {"op": op, "stack": stack, "shape": shape, "cold_us": round(cold_us, 3), "after_s": after,
            "after_op": compute["op"], "ratio_curve": rows}


def run(table_path: str, out: str, seconds: float, idle: float) -> int:
    """Measure the sustained section for the table at `table_path`; write it to `out` (atomic)."""
    import json

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    with open(table_path) as f:
        table = json.load(f)
    if "op_power" not in table:
        print("sustained: the table has no op_power section to pick ops from; run calibration.op_power first",
              file=sys.stderr)
        return 2
    section = {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " "),
               "seconds": seconds, "idle_s": idle, "bin_s": BIN_S, "ops": [], "errors": []}
    for pt in pick_ops(table["op_power"]):
        try:
            row = run_sustained(pt, seconds, idle)
        except Exception as e:  # noqa: BLE001 — recorded with the op, the others still run
            section["errors"].append({"op": pt["op"], "stack": pt["stack"], "error": f"{type(e).__name__}: {e}"[:500]})
            continue
        section["ops"].append(row)
        print(f"{row['op']:14s} {row['stack']:6s} burst {row['burst_us']:9.1f} us  settled {row['settled_us']:9.1f} us "
              f"({row['settled_us'] / row['burst_us']:.3f}x, {row['calls']} calls)", flush=True)
        write_json_atomic(out, section)
    section["recovery"] = []
    gemm = {p["stack"]: p for p in pick_ops(table["op_power"]) if p["op"] == "gemm"}
    for op, shape in FOLLOWERS:
        try:
            row = run_recovery(gemm["triton"], op, shape, "triton", 0.5, 1.5, idle)
        except Exception as e:  # noqa: BLE001 — recorded with the op, the others still run
            section["errors"].append({"op": op, "shape": shape, "error": f"{type(e).__name__}: {e}"[:500]})
            continue
        section["recovery"].append(row)
        curve_ = row["ratio_curve"]
        print(f"after {op:12s} {shape}: cold {row['cold_us']:.1f} us, ratio "
              + " ".join(f"{t:.2f}s:{r:.3f}" for t, r in curve_[:: max(1, len(curve_) // 10)]), flush=True)
        write_json_atomic(out, section)
    return 0 if section["ops"] else 1


def merge(section_path: str, table_path: str) -> None:
    """Put a measured sustained section into a table file as `sustained` (atomic; its `recovery` stays)."""
    import json

    from calibration.table_io import merge_section

    with open(section_path) as f:
        merge_section(json.load(f), table_path, "sustained")


def main(argv: list[str] | None = None) -> int:
    """Command line: measure (on the GPU) or merge (anywhere) the sustained section."""
    ap = argparse.ArgumentParser(prog="python -m calibration.sustained", description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", required=True, help="the GPU's table (its op_power section names the ops; merge target)")
    ap.add_argument("--out", help="where to write the measured section (JSON)")
    ap.add_argument("--merge", metavar="SECTION", help="merge a measured section into --table instead")
    ap.add_argument("--seconds", type=float, default=3.0, help="how long each op runs back to back")
    ap.add_argument("--idle", type=float, default=3.0, help="sleep before each op, so clocks recover")
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge, args.table)
        return 0
    if not args.out:
        ap.error("--out: name the file for the measured section (or pass --merge)")
    return run(args.table, args.out, args.seconds, args.idle)


if __name__ == "__main__":
    raise SystemExit(main())
