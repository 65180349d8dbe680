"""Check, then time, the FP8 and 4-bit weight-only GEMMs on the GPU against torch and the vendor paths.

Per shape: bf16 cuBLAS (`F.linear`) and our bf16 GEMM; FP8 with per-tensor scales and with per-row scales,
ours (default configuration and the fastest of `candidates`, a per-shape measured choice) against
`torch._scaled_mm` with the same scaling (its rows padded to 16 where it needs that); int4 weight-only ours
(default and fastest candidate) against bf16. Every variant's output is checked against a float32 torch
reference before it is timed; a failed check is recorded and the variant not timed. Timing is the table's
(`calibration.timing.measure`, inputs rotated so the working set exceeds L2).

    python -m calibration.lowp_bench --out OUT.json          # on the GPU
    python -m calibration.lowp_bench --summary OUT.json      # the ratio table, anywhere
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

# 8192³ and the decode/prefill shapes of llama-3.1-8b's layers (qkv, o, gate+up, down) and llama-3.1-70b at t = 8
SHAPES = [(8192, 8192, 8192)] + [(m, n, k) for m in (1, 16, 64, 2048)
                                  for n, k in ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))] \
    + [(m, 1280, 8192) for m in (1, 16)] + [(m, 8192, 3584) for m in (1, 16)]
FP8_TOL, INT4_TOL = 2e-2, 2e-2


def fp8_candidates(m: int):
    """FP8 configurations tried per shape: TMA tiles for prefill, narrow split-K tiles for decode, and the GEMV
    kernel for one row."""
    from kernels.gemm_fp8 import Fp8Config

    if m > 256:
        return [Fp8Config(128, 256, 128, num_warps=8, num_stages=3, tma=True),
                Fp8Config(128, 128, 128, num_warps=8, num_stages=4, tma=True),
                Fp8Config(128, 128, 128, num_warps=4, num_stages=4, tma=True),
                Fp8Config(256, 128, 128, num_warps=8, num_stages=3, tma=True),
                Fp8Config(128, 256, 64, num_warps=8, num_stages=4, tma=True)]
    gemv = [Fp8Config(1, bn, bk, group_m=1, split_k=s, num_stages=3, gemv=True)
            for bn, bk in ((16, 512), (32, 512), (64, 256), (32, 1024)) for s in (1, 2, 4, 8)] if m == 1 else []
    bm = min(64, max(16, 1 << (m - 1).bit_length()))
    return gemv + [Fp8Config(bm, bn, bk, group_m=1, split_k=s, num_stages=st)
            for bn, bk, st, splits in ((32, 256, 4, (1, 2, 4, 8)), (32, 512, 3, (1, 2, 4, 8)),
                                       (64, 256, 4, (1, 2, 4, 8)), (64, 128, 5, (1,)), (128, 128, 4, (1,)))
            for s in splits]


def int4_candidates(m: int, group: int):
    """int4 configurations tried per shape."""
    from kernels.gemm_int4 import Int4Config

    if m > 256:
        return [Int4Config(128, 128, 128, num_warps=8, num_stages=3), Int4Config(128, 64, 128, num_warps=4),
                Int4Config(64, 128, 128, num_warps=4, num_stages=4)]
    bm = min(64, max(16, 1 << (m - 1).bit_length()))
    return [Int4Config(bm, bn, min(bk, group), group_m=1, split_k=s)
            for bn, bk, splits in ((32, 128, (1, 2, 4)), (64, 128, (1, 2, 4)), (128, 64, (1,))) for s in splits]


def _rel(out, ref) -> float:
    out = out.float()
    return float("inf") if not bool(out.isfinite().all()) else float((out - ref).norm() / ref.norm())


def _timed(fn, sets, check=None, tol: float = 0.0) -> dict:
    """{"us"} of fn over rotating input sets, after `check(output of set 0)` is under `tol`."""
    from calibration.timing import measure

    if check is not None:
        err = check(fn(*sets[0]))
        if not err < tol:
            return {"error": f"relative error {err:.3g} >= {tol}"}
    n = len(sets)
    t = measure(lambda i: fn(*sets[i % n]), rotate=n)
    return {"us": round(t.median_us, 3), "flagged": t.flagged}


def _best(fn_of_cfg, cfgs, sets, check, tol) -> dict:
    """The fastest of several configurations (each checked), with its configuration."""
    import torch

    best: dict = {}
    for cfg in cfgs:
        try:
            r = _timed(fn_of_cfg(cfg), sets, check, tol)
        except Exception as e:  # noqa: BLE001 — an invalid tile for the shape is not a candidate
            torch.cuda.synchronize()
            r = {"error": f"{type(e).__name__}: {e}"[:200]}
        if "us" in r and ("us" not in best or r["us"] < best["us"]):
            best = {**r, "config": asdict(cfg)}
    return best or {"error": "no candidate passed its check"}


def shape_row(m: int, n: int, k: int) -> dict:
    """All variants on one shape."""
    import torch
    import torch.nn.functional as F

    from calibration.timing import l2_bytes, rotation_count
    from kernels.gemm import matmul
    from kernels.gemm_fp8 import Fp8Config, matmul_fp8, quantize_fp8
    from kernels.gemm_int4 import matmul_int4, quantize_int4

    copies = rotation_count(2.0 * (m * k + n * k + m * n), l2_bytes())
    bf = [(torch.randn(m, k, device="cuda", dtype=torch.bfloat16) / 4, torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / 4)
          for _ in range(copies)]
    ref = F.linear(bf[0][0].float(), bf[0][1].float())
    row: dict = {"shape": [m, n, k], "copies": copies}
    row["bf16_cublas"] = _timed(F.linear, bf, lambda o: _rel(o, ref), 1e-2)
    row["bf16_ours"] = _timed(matmul, bf, lambda o: _rel(o, ref), 1e-2)
    m16 = -(-m // 16) * 16
    for mode, rowwise in (("tensor", False), ("row", True)):
        sets = []
        for a, w in bf:
            qa, sa = quantize_fp8(a, rowwise)
            qw, sw = quantize_fp8(w, rowwise)
            sets.append((qa, qw, sa, sw))
        qa, qw, sa, sw = sets[0]
        ref8 = (qa.float() @ qw.float().t()) * (sa[:, None] if rowwise else sa) * (sw[None, :] if rowwise else sw)
        chk = lambda o, r=ref8: _rel(o, r)
        row[f"fp8_{mode}_default"] = _timed(matmul_fp8, sets, chk, FP8_TOL)
        # per-row scales change only the epilogue: the per-tensor winner is their one candidate
        cfgs = fp8_candidates(m) if not rowwise else [Fp8Config(**row["fp8_tensor_best"]["config"])] \
            if "config" in row.get("fp8_tensor_best", {}) else fp8_candidates(m)
        row[f"fp8_{mode}_best"] = _best(lambda cfg: (lambda *ops, c=cfg: matmul_fp8(*ops, config=c)),
                                        cfgs, sets, chk, FP8_TOL)
        pad = [(torch.nn.functional.pad(a, (0, 0, 0, m16 - m)) if m16 != m else a, w,
                (torch.nn.functional.pad(x, (0, m16 - m), value=1.0) if rowwise and m16 != m else x), y)
               for a, w, x, y in sets]

        def vendor(a, w, x, y, rowwise=rowwise):
            sa_ = x.reshape(-1, 1) if rowwise else x.reshape(())
            sw_ = y.reshape(1, -1) if rowwise else y.reshape(())
            return torch._scaled_mm(a, w.t(), scale_a=sa_, scale_b=sw_, out_dtype=torch.bfloat16)[:m]
        try:
            row[f"fp8_{mode}_scaled_mm"] = _timed(vendor, pad, chk, FP8_TOL)
        except Exception as e:  # noqa: BLE001 — recorded: the vendor path refuses some shapes or scalings
            row[f"fp8_{mode}_scaled_mm"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        del sets, pad
    group = 128
    if k % group == 0:
        sets = [(a, *quantize_int4(w, group)) for a, w in bf]
        a, q, s = sets[0]
        ref4 = a.float() @ (((torch.stack(((q & 0xF), (q >> 4)), 2).reshape(n, k).float() - 8)
                             * s.float().repeat_interleave(group, 1)).t())
        chk = lambda o, r=ref4: _rel(o, r)
        row["int4_default"] = _timed(matmul_int4, sets, chk, INT4_TOL)
        row["int4_best"] = _best(lambda cfg: (lambda *ops, c=cfg: matmul_int4(*ops, config=c)),
                                 int4_candidates(m, group), sets, chk, INT4_TOL)
        del sets
    del bf
    torch.cuda.empty_cache()
    return row


def summary_rows(res: dict) -> list[dict]:
    """Per shape: our best FP8 against torch._scaled_mm (>= 1: ours as fast), FP8 and int4 time over bf16 cuBLAS."""
    out = []
    for row in res["rows"]:
        us = {k: v["us"] for k, v in row.items() if isinstance(v, dict) and "us" in v}
        ratio = lambda a, b, us=us: round(us[a] / us[b], 3) if a in us and b in us else None  # noqa: E731
        out.append({"shape": row["shape"], "fp8_tensor_vs_scaled_mm": ratio("fp8_tensor_scaled_mm", "fp8_tensor_best"),
                    "fp8_row_vs_scaled_mm": ratio("fp8_row_scaled_mm", "fp8_row_best"),
                    "fp8_over_bf16_cublas": ratio("fp8_tensor_best", "bf16_cublas"),
                    "int4_over_bf16_cublas": ratio("int4_best", "bf16_cublas")})
    return out


def print_summary(path: str) -> None:
    """Print the summary table of a results file (anywhere: no GPU needed)."""
    import json

    from rich.console import Console
    from rich.table import Table

    with open(path) as f:
        res = json.load(f)
    table = Table(title=f"{path}: ours (best measured configuration) vs vendor; time ratios")
    for col in ("m, n, k", "FP8/tensor: _scaled_mm / ours", "FP8/row: _scaled_mm / ours", "FP8 / bf16 cuBLAS",
                "int4 / bf16 cuBLAS"):
        table.add_column(col, justify="right")
    for r in summary_rows(res):
        table.add_row(" ".join(map(str, r["shape"])), *(str(r[k]) for k in list(r)[1:]))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Run every shape; write the JSON (atomic) with provenance after each (or --summary: print a results file)."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m calibration.lowp_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--summary", metavar="RESULTS", help="print the ratio table of a results file and exit")
    args = ap.parse_args(argv)
    if args.summary:
        print_summary(args.summary)
        return 0
    if not args.out:
        ap.error("--out: name the results file (or pass --summary RESULTS)")
    t0 = time.perf_counter()
    res = {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " "), "rows": []}
    for m, n, k in SHAPES:
        if time.perf_counter() - t0 > args.max_seconds:
            res["stopped_early"] = f"after {len(res['rows'])} shapes"
            break
        try:
            row = shape_row(m, n, k)
        except Exception as e:  # noqa: BLE001 — recorded, the next shape runs
            row = {"shape": [m, n, k], "error": f"{type(e).__name__}: {e}"[:500]}
        res["rows"].append(row)
        us = {key: v.get("us", v.get("error", "")[:40]) for key, v in row.items() if isinstance(v, dict)}
        print(m, n, k, us, flush=True)
        write_json_atomic(args.out, res)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(args.out, res)
    print(f"done in {res['wall_s']} s", file=sys.stderr)
    return 0 if all("error" not in r for r in res["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
