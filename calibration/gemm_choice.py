"""Per-shape GEMM configuration chosen from measurements, and our GEMM against cuBLAS on realistic shapes.

Shapes: (n, k) of a dense layer of a catalog architecture at a valid t (the simulator's own op list), m
log-uniform in 1..16,384; two disjoint draws from their own seeds. On the *tuning* draw every candidate
configuration (`candidates`) is timed and the fastest kept per shape: that list of (shape, config) is the
measured choice, stored with the table (`gemm_configs`). On the *check* draw each shape takes the choice of
its nearest tuning shape (in log m, log n, log k) and is timed against cuBLAS (`F.linear`), against the
fixed heuristic (`kernels.configs.gemm_config`). Timing is the table's (`calibration.timing.measure`, L2-cold rotation).

    python -m calibration.gemm_choice --out OUT.json [--tune 64 --check 200]

Run again with the same --out after a crash: it resumes after the shape that crashed (recorded in `crashed`).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict

import numpy as np

from kernels.configs import GemmConfig

TUNE_SEED, CHECK_SEED = 1, 2
M_MAX = 16384


def layer_shapes() -> list[tuple[int, int]]:
    """Distinct (n, k) of the dense GEMMs of every catalog architecture at every valid t (MoE experts excluded)."""
    from simulator.catalog import get_arch, list_archs
    from simulator.memory import valid_tps
    from simulator.ops import prefill_ops

    out: set[tuple[int, int]] = set()
    for name in list_archs():
        arch = get_arch(name)
        for t in valid_tps(arch):
            for op in prefill_ops(arch, 1, 16, t):
                if op.op_class == "gemm":
                    out.add((int(op.shape["n"]), int(op.shape["k"])))
    return sorted(out)


def draw_shapes(count: int, seed: int) -> list[tuple[int, int, int]]:
    """`count` (m, n, k): a catalog layer's (n, k) and m log-uniform in 1..M_MAX."""
    rng = np.random.default_rng(seed)
    nk = layer_shapes()
    picks = rng.integers(0, len(nk), count)
    ms = np.floor(np.exp(rng.uniform(0, math.log(M_MAX + 1), count))).astype(int)
    return [(int(max(1, m)), *nk[i]) for m, i in zip(ms, picks)]


def candidates(m: int) -> list[GemmConfig]:
    """The configurations tried for an m-row product: the heuristic's family, wider and narrower tiles,
    split-K for thin products, and the TMA tiles for large ones."""
    if m > 256:
        return [GemmConfig(128, 128, 64, 8, num_warps=4, num_stages=4, tma=True),
                GemmConfig(128, 256, 64, 8, num_warps=8, num_stages=3, tma=True),
                GemmConfig(128, 128, 64, 8, num_warps=8, num_stages=4, tma=True),
                GemmConfig(64, 128, 64, 8, num_warps=4, num_stages=4, tma=True),
                GemmConfig(128, 64, 64, 8, num_warps=4, num_stages=4, tma=True),
                GemmConfig(128, 128, 64, 8, num_warps=4, num_stages=4)]
    bm = min(64, max(16, 1 << (m - 1).bit_length()))
    out = []
    for bn, bk, stages in ((32, 512, 3), (64, 256, 4), (64, 128, 5), (128, 128, 4)):
        for split in (1, 2, 4):
            out.append(GemmConfig(bm, bn, bk, group_m=1 if bm < 64 else 8, split_k=split, num_stages=stages))
    if m > 64:
        out.append(GemmConfig(128, 128, 64, 8, num_warps=4, num_stages=4, tma=True))
    return out


def nearest(shape: tuple[int, int, int], tuned: list[dict]) -> dict:
    """The tuning entry whose shape is nearest in (log m, log n, log k); m weighs most (it sets the regime)."""
    x = np.log2(shape)
    best = min(tuned, key=lambda e: float(np.sum(((np.log2(e["shape"]) - x) * (2.0, 1.0, 1.0)) ** 2)))
    return best


def _time_us(fn, a_sets, w_sets) -> float:
    from calibration.timing import measure

    n = len(a_sets)
    return measure(lambda i: fn(a_sets[i % n], w_sets[i % n]), rotate=n).median_us


def _inputs(m: int, n: int, k: int):
    import torch

    from calibration.timing import l2_bytes, rotation_count

    copies = rotation_count(2.0 * (m * k + n * k + m * n), l2_bytes())
    a = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    w = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    return a, w


INT32_ELEMENTS = 2**31  # the pointer kernel's offsets are 32-bit


def _fits(cfg: GemmConfig, m: int, n: int, k: int) -> bool:
    """Whether `cfg` can run (m, n, k): each K slice holds a block, and a pointer kernel's offsets fit 32 bits."""
    if cfg.split_k > 1 and k // cfg.split_k < cfg.block_k:
        return False
    return cfg.tma and n % 8 == 0 and k % 8 == 0 or max(m * k, n * k, m * n) < INT32_ELEMENTS


def time_candidates(shape: tuple[int, int, int]) -> list[dict]:
    """Every candidate's time on `shape` (us), fastest first; a candidate that fails is left out."""
    import torch
    import torch.nn.functional as F

    from kernels.gemm import matmul

    m, n, k = shape
    a, w = _inputs(m, n, k)
    ref = F.linear(a[0], w[0]).float()
    rows = []
    for cfg in candidates(m):
        if not _fits(cfg, m, n, k):
            continue
        try:
            out = matmul(a[0], w[0], config=cfg).float()
            if not float((out - ref).norm() / ref.norm()) < 2e-2:
                continue
            rows.append({"config": asdict(cfg), "us": _time_us(lambda x, y, c=cfg: matmul(x, y, config=c), a, w)})
        except Exception:  # noqa: BLE001 — an invalid tile for this shape is simply not a candidate
            torch.cuda.synchronize()
    del a, w
    return sorted(rows, key=lambda r: r["us"])


def check_shape(shape: tuple[int, int, int], tuned: list[dict]) -> dict:
    """cuBLAS, the heuristic and the tuned choice on one check shape (us)."""
    import torch
    import torch.nn.functional as F

    from kernels.configs import gemm_config
    from kernels.gemm import matmul, sm_count

    m, n, k = shape
    heuristic = gemm_config(m, n, k, sm_count(torch.device("cuda")))
    if not _fits(heuristic, m, n, k):
        return {"shape": list(shape), "skipped": "no configuration of ours runs it (32-bit offsets)"}
    a, w = _inputs(m, n, k)
    choice = GemmConfig(**nearest(shape, tuned)["config"])
    if not _fits(choice, m, n, k):
        choice = gemm_config(m, n, k, sm_count(a[0].device))
    row = {"shape": list(shape), "cublas_us": _time_us(F.linear, a, w),
           "heuristic_us": _time_us(matmul, a, w),
           "tuned_us": _time_us(lambda x, y: matmul(x, y, config=choice), a, w), "tuned_config": asdict(choice)}
    del a, w
    return row


def summary(rows: list[dict]) -> dict:
    """Median and 10th percentile of cuBLAS time / ours (>= 1: ours as fast), per variant."""
    out = {}
    rows = [row for row in rows if "skipped" not in row]
    for key in ("heuristic_us", "tuned_us"):
        r = np.array([row["cublas_us"] / row[key] for row in rows])
        best = np.array([row["cublas_us"] / min(row[key], row["cublas_us"]) for row in rows])
        out[key.removesuffix("_us")] = {"median": round(float(np.median(r)), 3), "p10": round(float(np.percentile(r, 10)), 3),
                                        "best_of_both_median": round(float(np.median(best)), 3)}
    return out


def resume(path: str) -> dict | None:
    """The partial result at `path` of a run that stopped (a CUDA fault ends the process): the shape it was
    on is recorded under `crashed` and skipped; None when there is nothing to resume."""
    import json
    import os

    if not os.path.exists(path):
        return None
    with open(path) as f:
        res = json.load(f)
    cur = res.pop("in_progress", None)
    if cur is not None:
        res["crashed"].append(cur)
        res["done"][cur["stage"]] += 1
    return res


def main(argv: list[str] | None = None) -> int:
    """Tune on one draw, check on another, write the JSON (atomic) with provenance."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m calibration.gemm_choice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tune", type=int, default=64, help=f"tuning shapes (seed {TUNE_SEED})")
    ap.add_argument("--check", type=int, default=200, help=f"check shapes (seed {CHECK_SEED})")
    ap.add_argument("--max-seconds", type=float, default=420.0, help="stop checking after this wall time")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = resume(args.out) or {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " "),
                               "tune_seed": TUNE_SEED, "check_seed": CHECK_SEED, "gemm_configs": [], "check": [],
                               "crashed": [], "done": {"tune": 0, "check": 0}}
    t0 -= res.get("wall_s", 0.0)
    for stage, shapes in (("tune", draw_shapes(args.tune, TUNE_SEED)), ("check", draw_shapes(args.check, CHECK_SEED))):
        for i in range(res["done"][stage], len(shapes)):
            if time.perf_counter() - t0 > args.max_seconds:
                res["stopped_early"] = f"{stage} after {i} shapes (--max-seconds {args.max_seconds})"
                break
            res["in_progress"] = {"stage": stage, "shape": list(shapes[i])}
            res["wall_s"] = round(time.perf_counter() - t0, 1)
            write_json_atomic(args.out, res)   # a crash (a CUDA fault ends the process) leaves this marker
            if stage == "tune":
                timed = time_candidates(shapes[i])
                if timed:
                    res["gemm_configs"].append({"shape": list(shapes[i]), "config": timed[0]["config"],
                                                "us": timed[0]["us"], "tried": len(timed)})
            else:
                res["check"].append(check_shape(shapes[i], res["gemm_configs"]))
                if len(res["check"]) % 20 == 0:
                    res["summary"] = summary(res["check"])
                    print(len(res["check"]), res["summary"], flush=True)
            res["done"][stage] = i + 1
        print(f"{stage}: {res['done'][stage]} shapes by {time.perf_counter() - t0:.0f} s", flush=True)
    res.pop("in_progress", None)
    res["summary"] = summary(res["check"]) if res["check"] else None
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(args.out, res)
    print(res["summary"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
