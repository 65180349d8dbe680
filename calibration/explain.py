"""The simulated op list of a query beside the engine's profiled kernels, per op class: what the simulator
gets right or wrong, and the time the engine spends between its kernels."""
from __future__ import annotations

from calibration.kernel_classes import by_class
from simulator.arch import ArchSpec
from simulator.ops import decode_ops, prefill_ops
from simulator.timemodel import TimeModel, time_by_class


def served_arch(backend: str, arch: ArchSpec) -> ArchSpec:
    """The architecture as the profiled engine ran it: an engine variant's precision (fp8, fp8_kv), else as is."""
    import importlib

    from calibration.engine_variants import BACKEND_VARIANTS

    if backend not in BACKEND_VARIANTS:
        return arch
    module = importlib.import_module(f"calibration.engine_variants.{backend}")
    return module.served_arch(arch) if hasattr(module, "served_arch") else arch


def table_stack(backend: str) -> str:
    """The table stack a profiled backend's kernels are timed on (the variants' TABLE_STACK; hf and torch: torch)."""
    from calibration.fit import TABLE_STACK

    stack = TABLE_STACK.get(backend, backend)
    return stack if stack in ("triton", "best") else "torch"


def compare_row(row: dict, arch: ArchSpec, model: TimeModel) -> dict:
    """Per op class of one profile row (benchmarks/profile_engine.py): simulated and profiled seconds and kernel
    counts; the phase's event time, its kernels' sum and the time between them."""
    fused = row["backend"] != "torch"  # ours and the best variant run the fused element-wise kernels
    ops = prefill_ops(arch, row["b"], row["p"], 1, fused=fused) if row["phase"] == "prefill" else \
        decode_ops(arch, row["b"], row["c"], 1, fused=fused)
    sim = {c: float(v) for c, v in time_by_class(ops, model).items()}
    counts: dict[str, float] = {}
    for op in ops:
        counts[op.op_class] = counts.get(op.op_class, 0.0) + float(op.count)
    measured = by_class(row["kernels"])
    classes = sorted(set(sim) | set(measured), key=lambda c: -max(sim.get(c, 0.0), measured.get(c, {}).get("time_s", 0)))
    kernels_s = sum(m["time_s"] for m in measured.values())
    between_s, n_kernels = row["event_ms"] * 1e-3 - kernels_s, sum(m["count"] for m in measured.values())
    # a table times a kernel back to back in a CUDA graph, its launch gap inside the time: in a replayed graph
    # each kernel takes its share of the time between kernels
    gap_s = max(between_s, 0.0) / n_kernels if row.get("graph") and n_kernels else 0.0
    return {"arch": row["arch"], "phase": row["phase"], "b": row["b"], "size": row.get("p", row.get("c")),
            "event_s": row["event_ms"] * 1e-3, "kernels_s": kernels_s, "between_kernels_s": between_s,
            "kernel_count": n_kernels,
            "classes": {c: {"simulated_s": sim.get(c, 0.0), "profiled_s": measured.get(c, {}).get("time_s", 0.0),
                            "profiled_in_graph_s": measured.get(c, {}).get("time_s", 0.0)
                            + gap_s * measured.get(c, {}).get("count", 0),
                            "simulated_count": counts.get(c, 0.0), "profiled_count": measured.get(c, {}).get("count", 0)}
                        for c in classes}}


def totals(rows: list[dict]) -> dict[str, dict]:
    """Per op class over compared rows: summed simulated and profiled seconds (kernels alone, and with their
    share of the time between kernels of replayed graphs) and the relative differences."""
    out: dict[str, dict] = {}
    for r in rows:
        for c, v in r["classes"].items():
            t = out.setdefault(c, {"simulated_s": 0.0, "profiled_s": 0.0, "profiled_in_graph_s": 0.0})
            for k in t:
                t[k] += v[k]
    for t in out.values():
        t["rel_diff"] = t["simulated_s"] / t["profiled_s"] - 1 if t["profiled_s"] > 0 else None
        t["rel_diff_in_graph"] = t["simulated_s"] / t["profiled_in_graph_s"] - 1 if t["profiled_s"] > 0 else None
    return out
