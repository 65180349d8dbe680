"""The what-if report's precision section: for each configuration swept at several precisions (bf16, fp8, int4
weights; bf16 or fp8 KV cache), runtime, cost per 1,000 tokens and memory per GPU side by side, and whether the
times are measured or derived from the bf16 tables by the roofline (simulator/tables.py)."""
from __future__ import annotations

from collections import defaultdict

from reports.charts import Bar, BarChart, bar_chart
from reports.render import Section, Table

GIB = 2**30
MAX_BARS = 40
CONFIG = ("arch", "gpu", "stack", "t", "b", "p", "o")  # what a precision is compared within


def precision_of(row: dict) -> str:
    """A row's precision label ('bf16' for rows of a sweep without the column)."""
    return str(row.get("precision") or "bf16")


def _times(row: dict) -> str:
    derived = row.get("derived_not_measured")
    return f"derived, not measured ({derived})" if derived else "measured"


def precision_section(rows: list[dict]) -> Section | None:
    """Runtime, cost per 1,000 tokens and memory per GPU of each configuration at each precision swept; None when
    the rows hold one precision only."""
    if len({precision_of(r) for r in rows}) < 2:
        return None
    groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        groups[tuple(r.get(k, "") for k in CONFIG)].setdefault(precision_of(r), r)
    table, bars = [], []
    for key, by_prec in groups.items():
        if len(by_prec) < 2:
            continue
        arch, gpu, _, t, b, p, o = key
        for prec, r in by_prec.items():
            mem = r.get("mem_per_gpu_bytes")
            table.append([arch, gpu, t, b, p, o, prec, r["total_s"], r.get("usd_per_1k_tokens"),
                          mem / GIB if mem is not None else None, r.get("fits"), _times(r)])
            if len(bars) < MAX_BARS:
                bars.append(Bar(f"{arch} {gpu} t={t} b={b} p={p} o={o} · {prec}", {"runtime": r["total_s"]},
                                hover=f"{prec}: {r['total_s']:.4g} s, {_times(r)}"))
    if not table:
        return None
    chart = bar_chart(BarChart("Runtime by precision", "runtime (s)", bars))
    return Section("precision", "Precision side by side",
                   "Each configuration at each precision swept: weights bf16, fp8 (w8a8) or int4 (weight-only), and "
                   "the KV cache. Times of a GEMM or attention class the GPU's table has no points of are derived "
                   "from its bf16 points by the roofline ratio, and marked so.",
                   charts=[chart],
                   tables=[Table(["arch", "gpu", "t", "b", "p", "o", "precision", "runtime (s)", "USD per 1k tokens",
                                  "memory per GPU (GiB)", "fits", "times"], table)])
