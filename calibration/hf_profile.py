"""GPU run: where transformers' eager generate (engine `hf-eager`) spends a phase, to check simulator.overlap and
simulator.hf_ops against it (diagnostic: nothing here feeds a table or a fit).

1. Host per layer at the model's own widths against the tiny widths calibration/host_bench.py measures: the engine's
   query timing (b = 1, p = 16, a prefill and 32 decode steps) at 2 and 8 layers of each, on this one machine; at
   b = 1 and p = 16 every layer is host-bound, so the slope over layers is the host's seconds a layer.
2. torch.profiler over whole generates of the full model (a prefill; a prefill and 4 decode steps): the kernels
   (count, GPU seconds, by name), the GPU's busy time (union of kernel intervals) against the wall time, and the
   time before the first kernel and after the last.

    python3 -m calibration.hf_profile --out $OUT/hf_profile_h200.json [--archs llama-3.1-8b,opt-6.7b]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

LAYERS = (2, 8)
REPEATS = 5
QUERIES = ((1, 16, 1), (1, 2048, 1), (8, 128, 1), (1, 16, 5), (1, 512, 5))  # (b, p, new tokens) profiled
TOP = 40  # kernel names kept, by GPU seconds
SEQUENCE = 160  # the first kernels in order (the embedding, the first layers), name and microseconds


def host_slopes(arch_name: str, device: str = "cuda") -> dict:
    """Prefill and decode-step seconds at 2 and 8 layers, real and tiny widths, and their slopes a layer."""
    import torch

    from calibration.engine.hf_eager import HFEngine
    from calibration.host_bench import tiny_arch
    from simulator.catalog import get_arch
    from simulator.hostmodel import hf_family

    base = get_arch(arch_name)
    out: dict = {}
    for width in ("real", "tiny"):
        pts = []
        for n in LAYERS:
            arch = (dataclasses.replace(base, name=f"{base.name}-{n}l", n_layers=n) if width == "real"
                    else tiny_arch(hf_family(base), n))
            engine = HFEngine(arch, device)
            row = engine.time_query(16, 33, 1, repeats=REPEATS)
            pts.append({"n_layers": n, "prefill_s": row["prefill_s"], "decode_step_s": row["decode_step_s"]})
            del engine
            torch.cuda.empty_cache()
        slope = {k: (pts[1][k] - pts[0][k]) / (LAYERS[1] - LAYERS[0]) for k in ("prefill_s", "decode_step_s")}
        out[width] = {"points": pts, "per_layer": slope}
        print(f"{arch_name} {width}: per layer prefill {slope['prefill_s'] * 1e6:.1f} us, decode step "
              f"{slope['decode_step_s'] * 1e6:.1f} us", flush=True)
    return out


def _busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals."""
    total, end = 0.0, -1e300
    for s, e in sorted(intervals):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def _summary(trace: dict, wall_s: float) -> dict:
    """Kernels of one profiled generate: counts and GPU seconds by name, busy time, time before the first and
    after the last kernel within the profiled window."""
    events = trace.get("traceEvents", [])
    kernels = [e for e in events if e.get("cat") == "kernel" and "dur" in e]
    cpu = [e for e in events if e.get("cat") in ("cpu_op", "python_function", "user_annotation") and "dur" in e]
    launches = [e for e in events if e.get("cat") == "cuda_runtime" and "Launch" in e.get("name", "")]
    by_name: dict[str, list[float]] = {}
    for k in kernels:
        by_name.setdefault(k["name"][:160], []).append(float(k["dur"]))
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:TOP]
    start = min((e["ts"] for e in cpu + kernels), default=0.0)
    end = max((e["ts"] + e["dur"] for e in cpu + kernels), default=0.0)
    k0 = min((k["ts"] for k in kernels), default=start)
    k1 = max((k["ts"] + k["dur"] for k in kernels), default=end)
    return {"wall_s": wall_s, "window_us": end - start, "kernels": len(kernels), "launches": len(launches),
            "gpu_busy_us": _busy_us([(k["ts"], k["ts"] + k["dur"]) for k in kernels]),
            "gpu_kernel_sum_us": sum(float(k["dur"]) for k in kernels),
            "before_first_kernel_us": k0 - start, "after_last_kernel_us": end - k1,
            "last_launch_to_last_kernel_end_us": k1 - max((e["ts"] for e in launches), default=k1),
            "by_name": [{"name": n, "count": len(d), "us": sum(d)} for n, d in top],
            "sequence": [[k["name"][:70], round(float(k["dur"]), 2)]
                         for k in sorted(kernels, key=lambda k: k["ts"])[:SEQUENCE]]}


def profile_arch(arch_name: str, device: str = "cuda") -> dict:
    """Wall times (median of REPEATS, unprofiled) and one profiled generate of each of QUERIES on the full model."""
    import statistics

    import torch
    from torch.profiler import ProfilerActivity, profile

    from calibration.engine.hf_eager import HFEngine
    from simulator.catalog import get_arch

    engine = HFEngine(get_arch(arch_name), device)
    out = []
    for b, p, new in QUERIES:
        prompt = torch.randint(1, engine.arch.vocab, (b, p), device=engine.device)
        engine._generate_s(prompt, new)  # warm-up
        walls = [engine._generate_s(prompt, new) for _ in range(REPEATS)]
        with tempfile.TemporaryDirectory() as tmp:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                wall = engine._generate_s(prompt, new)
            path = os.path.join(tmp, "trace.json")
            prof.export_chrome_trace(path)
            with open(path) as f:
                trace = json.load(f)
        rec = {"b": b, "p": p, "new_tokens": new, "wall_s_median": statistics.median(walls),
               "profiled": _summary(trace, wall)}
        out.append(rec)
        s = rec["profiled"]
        print(f"{arch_name} b={b} p={p} new={new}: wall {rec['wall_s_median'] * 1e3:.2f} ms, kernels {s['kernels']}, "
              f"busy {s['gpu_busy_us'] / 1e3:.2f} ms of {s['window_us'] / 1e3:.2f} ms profiled", flush=True)
    del engine
    torch.cuda.empty_cache()
    return {"arch": arch_name, "queries": out}


def main(argv: list[str] | None = None) -> int:
    """Measure each architecture's host slopes and profiles; write one JSON with provenance."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--archs", default="llama-3.1-8b,opt-6.7b")
    ap.add_argument("--max-seconds", type=float, default=200.0, help="stop starting new parts after this")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the code paths")
    args = ap.parse_args(argv)

    import transformers

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    start = time.perf_counter()
    result: dict = {"host_per_layer": {}, "profiles": [], "skipped": [],
                    "provenance": {**provenance("python3 -m calibration.hf_profile " + " ".join(argv or [])),
                                   "transformers": transformers.__version__}}
    for part, fn, key in (("host", host_slopes, "host_per_layer"), ("profile", profile_arch, "profiles")):
        for name in args.archs.split(","):
            if time.perf_counter() - start > args.max_seconds:
                result["skipped"].append(f"{part} {name}")
                continue
            value = fn(name, args.device)
            if key == "profiles":
                result[key].append(value)
            else:
                result[key][name] = value
            write_json_atomic(args.out, result)  # what is done so far survives a timeout
    write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
