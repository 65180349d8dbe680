"""How sure a prediction is: the error band of its GPU, t and stack from the fit file's leave-one-architecture-out
validation (written by `idealrt validate --leave-out-arch each --write-band`), and what about the request lies
outside what was validated."""
from __future__ import annotations

from simulator.arch import ArchSpec

BAND_KEY = "error_band"  # the fit file's entry; load_fit passes it on under this key


def error_band(band: dict | None, arch: ArchSpec, t: int, time_model: str) -> tuple[dict | None, tuple[str, ...]]:
    """(median and P95 absolute % error of end-to-end time on unseen architectures at this t, or None; the ways the
    request lies outside the validated set: a derived table, an unvalidated t, a head dim, query heads per KV
    head or kind of FFN no validated architecture has)."""
    notes = []
    if time_model.startswith("derived"):
        notes.append(f"the throughput table is derived ({time_model}), not measured: no validation applies")
    if not band:
        return None, tuple(notes + ["no validation of this GPU and stack (idealrt validate --write-band)"])
    stats = band.get("by_t", {}).get(str(t))
    if stats is None:
        notes.append(f"t={t} was not validated (validated: t={', '.join(sorted(band.get('by_t', {})))})")
    archs = band.get("archs", {}).values()
    head_dims = sorted({a["head_dim"] for a in archs})
    gqa = sorted({a["gqa"] for a in archs})
    if arch.head_dim not in head_dims:
        notes.append(f"head dim {arch.head_dim}: validated head dims are {', '.join(map(str, head_dims))}")
    ratio = arch.n_heads // arch.n_kv_heads
    if gqa and not gqa[0] <= ratio <= gqa[-1]:
        notes.append(f"{ratio} query heads per KV head: validated {gqa[0]}..{gqa[-1]}")
    if arch.is_moe and not any(a.get("moe") for a in archs):
        notes.append("mixture of experts: no validated architecture is one")
    return (None if stats is None else stats), tuple(notes)


def band_entry(records: list[dict], archs: dict[str, ArchSpec], phase: str = "total") -> dict:
    """The fit file's entry from leave-one-architecture-out error records (calibration.validate): per t, the
    median and P95 absolute % error of `phase`, and the validated architectures' shape."""
    import numpy as np

    by_t: dict[str, dict] = {}
    for t in sorted({r["t"] for r in records}):
        errs = np.array([r["ape_pct"] for r in records if r["t"] == t and r["phase"] == phase])
        if errs.size:
            by_t[str(t)] = {"median_pct": float(np.median(errs)), "p95_pct": float(np.percentile(errs, 95)),
                            "n": int(errs.size)}
    return {"method": "leave-one-architecture-out", "phase": phase, "by_t": by_t,
            "archs": {n: {"head_dim": a.head_dim, "gqa": a.n_heads // a.n_kv_heads, "moe": a.is_moe}
                      for n, a in sorted(archs.items())}}
