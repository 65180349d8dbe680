"""GPU diagnostic: the engine's eager prefill, run after run, for queries whose rows spread wide or read far
from the simulation.

Each case (stack, architecture, b, p) is run as `idealrt measure` runs a query (calibration/engine/runner.py
`time_query`): for each o of OUTPUTS a fresh `prepare(b, p + o)`, the graphs captured, one warm-up, then timed
runs of prefill and o - 1 decode steps. Per run it keeps:
  - the prefill's CUDA-event time (what a row records) and the host's time to launch it (returning from
    `prefill` before any sync: a launch-bound prefill has the two close);
  - the SM clock and board power NVML reports meanwhile (calibration/power.py `PowerSampler`);
  - the caching allocator's device calls (cudaMalloc, cudaFree, retries) during the run.
Then prefills launched back to back (no sync between: the GPU's time per prefill, the host's launches hidden
behind it) and PROFILED more prefills under torch.profiler, so a slow run's extra time is attributed to
kernels, to time between kernels, or to the start after a sync. Last, the start of a CUDA graph of N tiny
kernels after a sync, against its time replayed back to back, for N in GRAPH_NODES: what a graphed prefill
pays before its first kernel runs. `reports` and the fit never read this file.

    python3 -m calibration.prefill_probe --out $OUT/prefill_probe_h200.json [--case STACK:ARCH:B:P ...]
"""
from __future__ import annotations

import argparse
import statistics
import time

CASES = ("triton:llama-3.2-1b:1:1", "triton:qwen2.5-1.5b:1:16", "triton:llama-3.2-1b:32:1",
         "fp8:llama-3.2-1b:1:4096", "fp8_kv:llama-3.2-1b:1:4096", "triton:llama-3.2-1b:1:4096",
         "triton:llama-3.2-1b:32:128", "triton:llama-3.1-8b:1:4096", "triton:llama-3.1-8b:8:512",
         "triton:llama-3.1-8b:8:2048")
OUTPUTS = (1, 8, 32)  # the t1 grid's o at these (b, p), each query a fresh prepare as in measure
RUNS = 6  # timed runs per query
PROFILED = 3  # prefills under the profiler per query
GRAPH_NODES = (1, 16, 64, 256, 1024)  # kernels in a tiny graph (a decoder layer launches about 10)
GRAPH_REPS = 30  # replays per graph and way of timing
ALLOC_STATS = ("num_device_alloc", "num_device_free", "num_alloc_retries", "num_sync_all_streams")


def parse_case(text: str) -> tuple[str, str, int, int]:
    """'stack:arch:b:p' -> (stack, arch, b, p); a ValueError naming the field otherwise."""
    parts = text.split(":")
    if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
        raise ValueError(f"--case {text!r}: write STACK:ARCH:B:P, e.g. triton:llama-3.1-8b:1:4096")
    return parts[0], parts[1], int(parts[2]), int(parts[3])


def _alloc_delta(before: dict, after: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in ALLOC_STATS}


def timed_run(eng, prompt, o: int, sampler) -> dict:
    """One run as runner.Engine.run_once times it, with the host's launch time, clocks and allocator calls."""
    import torch

    eng._sync()
    before = torch.cuda.memory_stats()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
    h0 = time.perf_counter()
    ev[0].record()
    eng.prefill(prompt)
    h1 = time.perf_counter()
    ev[1].record()
    for _ in range(o - 1):
        eng.step()
    ev[2].record()
    ev[2].synchronize()
    h2 = time.perf_counter()
    return {"prefill_ms": ev[0].elapsed_time(ev[1]), "prefill_host_ms": 1e3 * (h1 - h0),
            "decode_ms": ev[1].elapsed_time(ev[2]), **sampler.window(h0, h2),
            "alloc": _alloc_delta(before, torch.cuda.memory_stats())}


def profiled_run(eng, prompt) -> dict:
    """One prefill under torch.profiler: its event time and its kernels (calibration/engine_profile.py)."""
    import torch

    from calibration.engine_profile import kernels_of

    times = []

    def run():
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        ev[0].record()
        eng.prefill(prompt)
        ev[1].record()
        ev[1].synchronize()
        times.append(ev[0].elapsed_time(ev[1]))

    kernels = kernels_of(run)
    return {"prefill_ms": times[0], "kernel_ms": sum(k["total_us"] for k in kernels) / 1e3, "kernels": kernels}


def probe_case(stack: str, arch_name: str, b: int, p: int, runs: int, sampler) -> list[dict]:
    """Rows of one case: for each o, the timed runs and the profiled prefills."""
    import torch

    from calibration.engine_profile import _engine
    from calibration.timing import batch_times_us
    from simulator.catalog import get_arch

    arch = get_arch(arch_name)
    eng = _engine(arch, stack)
    rows = []
    for o in OUTPUTS:
        eng.prepare(b, p + o)
        g = torch.Generator(device="cpu").manual_seed(0)
        prompt = torch.randint(0, arch.vocab, (b, p), generator=g).to(eng.device)
        eng.capture_prefill(b, p)
        eng.capture(p + 1, p + o - 1)
        eng.run_once(prompt, min(o, 2))
        timed = [timed_run(eng, prompt, o, sampler) for _ in range(runs)]
        warm = batch_times_us(lambda e=eng, prompt=prompt: e.prefill(prompt), runs)
        prof = [profiled_run(eng, prompt) for _ in range(PROFILED)]
        ms = [r["prefill_ms"] for r in timed]
        print(f"{stack:7s} {arch_name:14s} b={b:3d} p={p:5d} o={o:3d}: prefill "
              + " ".join(f"{x:.2f}" for x in ms) + " ms; profiled " + " ".join(f"{r['prefill_ms']:.2f}" for r in prof),
              flush=True)
        rows.append({"stack": stack, "arch": arch_name, "b": b, "p": p, "o": o, "graphed": p in eng.prefill_graphs,
                     "runs": timed, "back_to_back_ms": [us / 1e3 for us in warm], "profiled": prof})
    del eng
    torch.cuda.empty_cache()
    return rows


def graph_start(n_nodes: int, reps: int = GRAPH_REPS) -> dict:
    """A CUDA graph of n_nodes dependent one-element adds: its time from a sync (event before the replay, event
    after), its time per replay back to back, and the host's time in `replay()`; microseconds, medians."""
    import torch

    x = torch.zeros(1, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        x.add_(1)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n_nodes):
            x.add_(1)
    graph.replay()
    cold, host = [], []
    for _ in range(reps):
        torch.cuda.synchronize()
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        ev[0].record()
        h0 = time.perf_counter()
        graph.replay()
        host.append(1e6 * (time.perf_counter() - h0))
        ev[1].record()
        ev[1].synchronize()
        cold.append(1e3 * ev[0].elapsed_time(ev[1]))
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ev[0].record()
    for _ in range(reps):
        graph.replay()
    ev[1].record()
    ev[1].synchronize()
    return {"nodes": n_nodes, "from_sync_us": statistics.median(cold), "back_to_back_us": 1e3 * ev[0].elapsed_time(ev[1]) / reps,
            "host_replay_us": statistics.median(host)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the results (with provenance)")
    ap.add_argument("--case", nargs="+", default=list(CASES), help="STACK:ARCH:B:P, several allowed")
    ap.add_argument("--runs", type=int, default=RUNS, help="timed runs per query")
    args = ap.parse_args()
    try:
        cases = [parse_case(c) for c in args.case]
    except ValueError as e:
        print(e)
        return 2

    from calibration.power import CLOCK_PERIOD_S, PowerSampler
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    rows: list[dict] = []
    with PowerSampler(period_s=CLOCK_PERIOD_S, clocks=True) as sampler:
        for stack, arch, b, p in cases:
            try:
                rows += probe_case(stack, arch, b, p, args.runs, sampler)
            except Exception as e:  # noqa: BLE001 - one case failing must not lose the others' rows
                rows.append({"stack": stack, "arch": arch, "b": b, "p": p, "error": f"{type(e).__name__}: {e}"})
                print(f"{stack} {arch}: {type(e).__name__}: {e}", flush=True)
            write_json_atomic(args.out, {"rows": rows, "outputs": OUTPUTS, "nvml_error": sampler.error,
                                         "provenance": provenance()})
    starts = [graph_start(n) for n in GRAPH_NODES]
    for r in starts:
        print(f"graph of {r['nodes']:5d} adds: from a sync {r['from_sync_us']:8.1f} us, back to back "
              f"{r['back_to_back_us']:8.1f} us, host in replay() {r['host_replay_us']:6.1f} us", flush=True)
    from calibration.engine_variants import BACKEND_VARIANTS
    from calibration.engine_version import engine_version

    versions = {s: engine_version(s if s in BACKEND_VARIANTS else None) for s in sorted({c[0] for c in cases})}
    write_json_atomic(args.out, {"rows": rows, "outputs": OUTPUTS, "graph_start": starts, "nvml_error": sampler.error,
                                 "provenance": {**provenance(), "engine_version": versions}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
