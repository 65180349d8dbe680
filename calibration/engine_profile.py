"""GPU diagnostic: where the reference engine's time goes, kernel by kernel, for the simulator's error analysis.

For each architecture and phase it replays the engine's own CUDA graph (prefill of b x p tokens, one decode
step at context c) under torch.profiler and records every kernel's name, count and summed GPU time, beside
the phase's CUDA-event time (graph replay, median of 5). The gap between the two is launch and idle time
inside the graph. `reports`/the fit never read this file: it explains residuals (calibration/validate.py).

    python3 -m benchmarks.profile_engine --out $OUT/profile_engine_h100.json [--arch a,b] [--backend triton|torch|best|fp8|fp8_kv]
"""
from __future__ import annotations

import argparse
import statistics

from calibration.engine_variants import BACKEND_VARIANTS

ARCHS = "llama-3.1-8b,opt-6.7b,bloom-7b1,falcon-7b,llama-3.2-1b,qwen2.5-7b,gpt-j-6b"
PREFILLS = ((1, 512), (1, 2048), (32, 1), (8, 128))  # (b, p): graphed in the engine (b*p <= 2048)
DECODES = ((1, 1024), (8, 1024), (32, 512))  # (b, context)


def kernels_of(fn) -> list[dict]:
    """Kernels one fn() call runs on the GPU: name, count, summed device time (us), longest first."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    agg: dict[str, list[float]] = {}
    for ev in prof.events():
        if ev.device_type.name == "CUDA" and ev.device_time > 0:
            agg.setdefault(ev.name, []).append(ev.device_time)
    return sorted(({"name": k, "count": len(v), "total_us": sum(v)} for k, v in agg.items()),
                  key=lambda r: -r["total_us"])


def _engine(arch, backend: str):
    """The engine of a stack, or of an engine variant's backend (calibration/engine_variants)."""
    import importlib

    from calibration.engine.runner import Engine
    from calibration.engine_variants import BACKEND_VARIANTS

    if backend in BACKEND_VARIANTS:
        return importlib.import_module(f"calibration.engine_variants.{backend}").make_engine(arch)
    return Engine(arch, backend)


def _timed(run, reps: int, sampler) -> tuple[float, dict]:
    """(median ms of `reps` timed calls, the NVML clock and power of their window)."""
    import time

    from calibration.timing import batch_times_us

    t0 = time.perf_counter()
    ms = statistics.median(batch_times_us(run, reps)) / 1e3
    return ms, sampler.window(t0, time.perf_counter())


def profile_arch(name: str, backend: str, sampler) -> list[dict]:
    """Profile rows of one catalog architecture: its graphed prefills and decode steps."""
    import torch

    from calibration.engine.runner import bucket_for
    from simulator.catalog import get_arch

    arch = get_arch(name)
    eng = _engine(arch, backend)
    rows = []
    for b, p in PREFILLS:
        eng.prepare(b, p + 2)
        eng.capture_prefill(b, p)
        prompt = torch.randint(0, arch.vocab, (b, p), device="cuda")
        eng.prefill(prompt)
        run = lambda prompt=prompt: eng.prefill(prompt)
        ms, clocks = _timed(run, 5, sampler)
        rows.append({"arch": name, "backend": backend, "phase": "prefill", "b": b, "p": p,
                     "graph": bool(eng.prefill_graphs), "event_ms": ms, **clocks, "kernels": kernels_of(run)})
        print(f"{name:14s} prefill b={b:3d} p={p:5d}: {ms:8.3f} ms", flush=True)
    for b, c in DECODES:
        eng.prepare(b, c + 8)
        prompt = torch.randint(0, arch.vocab, (b, c - 1), device="cuda")
        eng.prefill(prompt)
        eng.capture(c, c)
        step = eng.graphs[bucket_for(c, eng.s_rows)][0] if eng.graphs else None
        replay = step.replay if step is not None else eng.step
        ms, clocks = _timed(replay, 20, sampler)
        rows.append({"arch": name, "backend": backend, "phase": "decode", "b": b, "c": c, "graph": step is not None,
                     "event_ms": ms, **clocks, "kernels": kernels_of(replay)})
        print(f"{name:14s} decode  b={b:3d} c={c:5d}: {ms:8.3f} ms", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the results (with provenance)")
    ap.add_argument("--arch", default=ARCHS, help="catalog names, comma-separated")
    ap.add_argument("--backend", default="triton", choices=("triton", "torch", *BACKEND_VARIANTS),
                    help="a stack, or an engine variant (calibration/engine_variants: best, fp8, fp8_kv)")
    args = ap.parse_args()

    import torch

    from calibration.power import CLOCK_PERIOD_S, PowerSampler
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    rows = []
    with PowerSampler(period_s=CLOCK_PERIOD_S, clocks=True) as sampler:
        for name in args.arch.split(","):
            try:
                rows += profile_arch(name, args.backend, sampler)
                torch.cuda.empty_cache()  # the engine of the last architecture is gone: give its memory back
            except Exception as e:  # noqa: BLE001 - one architecture failing must not lose the others' rows
                rows.append({"arch": name, "backend": args.backend, "error": f"{type(e).__name__}: {e}"})
                print(f"{name}: {type(e).__name__}: {e}", flush=True)
            # after each architecture: a run stopped by a time limit keeps what it profiled
            write_json_atomic(args.out, {"rows": rows, "prefills": PREFILLS, "decodes": DECODES,
                                         "nvml_error": sampler.error, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
