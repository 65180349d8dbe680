"""GPU run: the reference engine's host costs that its kernels' table times leave out, per call and per kernel.

- A graphed prefill (b x p up to PREFILL_GRAPH_TOKENS) starts after a sync: the GPU waits while Python and the
  driver launch its CUDA graph, whose launch grows with its nodes. Measured as a row measures it (the prefill's
  event time from a sync, calibration/engine/runner.py `run_once`) minus its time replayed back to back; after
  prefill-only runs (a query with o = 1) and after runs with STEPS_O - 1 decode steps (the other queries).
- An eager prefill (longer prompts) is launched kernel by kernel from Python; where the host is slower than the
  GPU the prefill takes the host's time. Measured as the host's time in `prefill` (no sync inside it).
Both on tiny models (TINY dimensions, layer counts LAYERS, the representatives of FAMILIES), where the GPU's work
is short, for each stack; a least-squares line over the simulator's kernel count of each tiny prefill
(simulator.ops `kernel_count`) gives seconds per call and per kernel, which simulator.hostmodel reads from the
table's `host` section (key `idealrt`).

    python3 -m calibration.engine_host --out $OUT/engine_host_h200.json [--stacks triton,torch] [--merge TABLE]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from simulator.hostmodel import (
    EAGER_PREFILL,
    GRAPH_START,
    GRAPH_START_AFTER_STEPS,
    HOST_SECTION,
    PREFILL_GRAPH_TOKENS,
    REFERENCE,
)

STACKS = ("triton", "torch", "best", "fp8", "fp8_kv")
FAMILIES = {"llama": "llama-3.1-8b", "opt": "opt-6.7b"}  # two kernel lists a layer
LAYERS = (2, 8, 32)
TINY = {"hidden": 64, "n_heads": 2, "head_dim": 32, "ffn_hidden": 128, "vocab": 1024}
GRAPH_P = 16  # b = 1: a graphed prefill
EAGER_P = 2 * PREFILL_GRAPH_TOKENS  # b = 1: an eager one
STEPS_O = 8  # the runs before a timed prefill of the "after steps" kind: prefill and STEPS_O - 1 decode steps
REPEATS = 15


def tiny_arch(family: str, n_layers: int):
    """The family's representative with TINY dimensions and n_layers layers."""
    from simulator.catalog import get_arch

    arch = get_arch(FAMILIES[family])
    kv = 1 if arch.n_kv_heads < arch.n_heads else TINY["n_heads"]
    return dataclasses.replace(arch, name=f"tiny-{family}-{n_layers}", n_layers=n_layers, n_kv_heads=kv,
                               max_positions=2 * EAGER_P, **TINY)


def kernels(arch, stack: str, p: int) -> int:
    """The simulator's kernel count of the arch's prefill of one sequence of p tokens, as the stack's engine serves
    it (an engine variant's precision: calibration/engine_variants `served_arch`)."""
    import importlib

    from calibration.engine_variants import BACKEND_VARIANTS
    from simulator.ops import kernel_count, prefill_ops

    if stack in BACKEND_VARIANTS:
        variant = importlib.import_module(f"calibration.engine_variants.{stack}")
        arch = getattr(variant, "served_arch", lambda a: a)(arch)
    ops = [op for op in prefill_ops(arch, 1, p, 1, fused=stack != "torch") if op.op_class != "launch"]
    return int(kernel_count(ops))


def _from_sync_ms(eng, prompt, o: int) -> float:
    """Median prefill event time of REPEATS runs of prefill + o - 1 steps, each from a sync (as a row times it)."""
    return statistics.median(eng.run_once(prompt, o).prefill_s * 1e3 for _ in range(REPEATS))


def graph_starts(eng, arch) -> dict:
    """A graphed prefill's start after a sync, in ms: after prefill-only runs and after runs with decode steps."""
    import torch

    from calibration.timing import batch_times_us

    eng.prepare(1, GRAPH_P + STEPS_O)
    prompt = torch.randint(0, arch.vocab, (1, GRAPH_P), device=eng.device)
    eng.capture_prefill(1, GRAPH_P)
    eng.capture(GRAPH_P + 1, GRAPH_P + STEPS_O - 1)
    eng.run_once(prompt, STEPS_O)
    back_to_back = statistics.median(batch_times_us(lambda: eng.prefill(prompt), REPEATS)) / 1e3
    alone, after_steps = _from_sync_ms(eng, prompt, 1), _from_sync_ms(eng, prompt, STEPS_O)
    return {"back_to_back_ms": back_to_back, GRAPH_START: alone - back_to_back,
            GRAPH_START_AFTER_STEPS: after_steps - back_to_back}


def eager_host_ms(eng, arch) -> float:
    """The host's time to launch an eager prefill (median of REPEATS, each after a sync), in ms."""
    import torch

    eng.prepare(1, EAGER_P + 2)
    prompt = torch.randint(0, arch.vocab, (1, EAGER_P), device=eng.device)
    eng.run_once(prompt, 1)
    times = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        eng.prefill(prompt)
        times.append(1e3 * (time.perf_counter() - t0))
    torch.cuda.synchronize()
    return statistics.median(times)


def line(counts: list[int], seconds: list[float]) -> dict:
    """Least-squares seconds = call + kernel * kernels, with the largest absolute residual (s)."""
    a = np.stack([np.ones(len(counts)), np.asarray(counts, float)], -1)
    (call, per_kernel), *_ = np.linalg.lstsq(a, np.asarray(seconds), rcond=None)
    return {"call_s": float(call), "kernel_s": float(per_kernel),
            "max_abs_residual_s": float(np.max(np.abs(a @ np.array([call, per_kernel]) - np.asarray(seconds))))}


def measure_stack(stack: str) -> dict:
    """Points and the fitted per-call and per-kernel seconds of each part, for one stack."""
    import torch

    from calibration.engine_profile import _engine

    points = []
    for family in FAMILIES:
        for n in LAYERS:
            arch = tiny_arch(family, n)
            eng = _engine(arch, stack)
            starts = graph_starts(eng, arch)
            eager = eager_host_ms(eng, arch)
            points.append({"family": family, "n_layers": n, "graph_kernels": kernels(arch, stack, GRAPH_P),
                           "eager_kernels": kernels(arch, stack, EAGER_P), **starts, "eager_host_ms": eager})
            print(f"{stack:7s} {family:5s} L={n:3d}: graph start {starts[GRAPH_START] * 1e3:7.1f} us, after steps "
                  f"{starts[GRAPH_START_AFTER_STEPS] * 1e3:7.1f} us, eager host {eager:8.3f} ms "
                  f"({points[-1]['graph_kernels']} / {points[-1]['eager_kernels']} kernels)", flush=True)
            del eng
            torch.cuda.empty_cache()
    g = [pt["graph_kernels"] for pt in points]
    from calibration.engine_variants import BACKEND_VARIANTS
    from calibration.engine_version import engine_version

    return {"engine_version": engine_version(stack if stack in BACKEND_VARIANTS else None),
            GRAPH_START: line(g, [pt[GRAPH_START] / 1e3 for pt in points]),
            GRAPH_START_AFTER_STEPS: line(g, [pt[GRAPH_START_AFTER_STEPS] / 1e3 for pt in points]),
            EAGER_PREFILL: line([pt["eager_kernels"] for pt in points], [pt["eager_host_ms"] / 1e3 for pt in points]),
            "points": points, "model": f"tiny {', '.join(FAMILIES.values())} ({TINY}, layers {list(LAYERS)})"}


def main(argv: list[str] | None = None) -> int:
    """Measure every stack, write the section (with provenance) and optionally merge it into a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the section")
    ap.add_argument("--stacks", default=",".join(STACKS), help="comma-separated, of " + ",".join(STACKS))
    ap.add_argument("--merge", metavar="TABLE", help="merge an existing --out file into this table's host section "
                                                     "and exit")
    args = ap.parse_args(argv)
    stacks = args.stacks.split(",")
    if any(s not in STACKS for s in stacks):
        print(f"--stacks {args.stacks}: use names of {', '.join(STACKS)}")
        return 2

    from calibration.table_io import write_json_atomic

    if args.merge:
        import json

        with open(args.out) as f:
            measured = json.load(f)
        with open(args.merge) as f:
            table = json.load(f)
        host = dict(table.get(HOST_SECTION) or {})
        host[REFERENCE] = {**host.get(REFERENCE, {}), **measured[REFERENCE],
                           "provenance": measured["provenance"]}
        write_json_atomic(args.merge, {**table, HOST_SECTION: host})
        return 0

    from calibration.provenance import provenance

    section = {REFERENCE: {}, "provenance": provenance("python3 -m calibration.engine_host")}
    for stack in stacks:
        section[REFERENCE][stack] = measure_stack(stack)
        write_json_atomic(args.out, section)  # a run stopped by a time limit keeps the stacks it measured
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
