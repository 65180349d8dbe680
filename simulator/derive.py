"""Throughput tables of GPUs nobody measured, derived from a measured GPU's table by spec ratios; every output
that uses one says so."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from simulator.errors import UserError
from simulator.gpus import GPUS
from simulator.opclasses import OP_CLASS, op_cost

DERIVE_RULE = "compute-bound points x peak FLOP/s ratio (of their dtype), memory-bound x HBM bandwidth ratio (by " \
              "arithmetic intensity vs the source GPU's ridge point); all-reduce x interconnect ratio; launch unchanged"


def derive_table(table: dict, src_gpu, dst_gpu, src_file: str) -> dict:
    """A table for `dst_gpu` from one measured on `src_gpu`: each point scaled by the ratio of the spec
    figure that bounds it (see DERIVE_RULE). Marked `derived`, keeping the source's provenance."""
    memory = src_gpu.hbm_bw_bytes_s / dst_gpu.hbm_bw_bytes_s
    link = src_gpu.interconnect_bw_bytes_s / dst_gpu.interconnect_bw_bytes_s
    compute = src_gpu.peak_bf16_flops / dst_gpu.peak_bf16_flops
    points = []
    for p in table["points"]:
        peak = OP_CLASS[p["op"]].peak if p["op"] in OP_CLASS else "bf16"
        if not dst_gpu.peak_flops(peak) or not src_gpu.peak_flops(peak):
            continue  # no such tensor cores on one of the GPUs (FP8 on an A100)
        if p["op"] == "launch":
            ratio = 1.0
        elif p["op"] == "allreduce":
            ratio = link
        else:
            flops, nbytes = op_cost(p["op"], p["shape"])
            ridge = src_gpu.peak_flops(peak) / src_gpu.hbm_bw_bytes_s
            bound = src_gpu.peak_flops(peak) / dst_gpu.peak_flops(peak)
            ratio = bound if flops >= ridge * nbytes and flops > 0 else memory
        q = dict(p)
        for key in ("median_us", "min_us", "p10_us", "p90_us", "std_us"):
            if key in q:
                q[key] = q[key] * ratio
        points.append(q)
    ceil = table.get("ceilings") or {}
    ceilings = {k: v / (memory if k == "copy_bw_bytes_s" else compute) for k, v in ceil.items()}
    return {"provenance": table.get("provenance"), "status": table.get("status"),
            "derived": {"from": src_file, "to": dst_gpu.name, "rule": DERIVE_RULE},
            "ceilings": ceilings, "power_w": None, "launch_model": table.get("launch_model"), "points": points}


def nearest_measured(gpu, tables_dir: Path, load: Callable[[Path], dict]) -> tuple[Path, object] | None:
    """The measured table in `tables_dir` whose GPU is closest to `gpu` in peak FLOP/s and bandwidth."""
    best = None
    for path in sorted(tables_dir.glob("*.json")):
        try:
            table = load(path)
        except UserError:
            continue
        src = GPUS.get((table.get("provenance") or {}).get("gpu", ""))
        if table.get("derived") or src is None:
            continue
        dist = abs(np.log(src.peak_bf16_flops / gpu.peak_bf16_flops)) + abs(np.log(src.hbm_bw_bytes_s / gpu.hbm_bw_bytes_s))
        if best is None or dist < best[0]:
            best = (dist, path, src)
    return None if best is None else best[1:]
