"""Check, then time, our Triton kernels against torch's on a CUDA GPU; write JSON with provenance.

    python3 -m benchmarks.bench_kernels --out benchmarks/results/kernels_h100.json [--sweep]

Every kernel is first checked at realistic sizes on fresh random inputs against a float32 torch
reference (outputs poisoned with NaN before the run).  Then ours and torch's are timed in the same
process, bf16, by two methods (see `kernel_bench_base._time`): `triton.testing.do_bench` (median, L2 flushed before each
call) and `do_bench_cudagraph` (calls back to back in a CUDA graph, as the engine's decode runs).
Weights and KV caches rotate among copies totalling > 4x L2, so no timed call reads them from cache.
`--sweep` also times the launch-config variants below, the data behind `kernels/configs.py`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from calibration.kernel_bench_base import DEVICE, METHODS, TARGETS, ceilings
from calibration.kernel_cases import decode_rows, gemm_rows, prefill_rows


def _write_atomic(path: Path, data: dict) -> None:
    from simulator.atomic import write_atomic

    write_atomic(path, json.dumps(data, indent=1))


def _table(rows: list, sweep: list | None) -> str:
    """Best sweep variant per case, then one line per result: both methods' times and ratios."""
    lines = []
    if sweep:
        best: dict = {}
        for r in sweep:
            if "median_us" not in r:                 # a variant that failed: listed under its error
                lines.append(f"  FAILED {r['kernel']}: {r['error'][:200]}")
                continue
            key = (r["op"], r["name"])
            if key not in best or r["median_us"] < best[key]["median_us"]:
                best[key] = r
        lines.append("best sweep variant per case (graph timing):")
        for (op, name), r in best.items():
            c = r["config"]
            cfg = "/".join(str(c[k]) for k in c)
            ref = f" torch {r['torch_median_us']:.1f}" if "torch_median_us" in r else f" bw {r['bw_frac']:.2f}"
            lines.append(f"  {op:12s} {name:18s} {r['median_us']:9.1f} us{ref}  {cfg}"
                         + (f" splits={r['splits']}" if "splits" in r else ""))
    nan = float("nan")
    lines.append(f"{'op':12s} {'case':18s} {'db_ours':>9s} {'db_torch':>9s} {'db_x':>6s} {'gr_ours':>9s} "
                 f"{'gr_torch':>9s} {'gr_x':>6s} {'gr_bw':>6s} {'TF/s':>6s} met(db/gr)")
    for r in rows:
        db, gr = r["do_bench"], r["graph"]
        tt = r["torch"] or {m: {"median_us": nan} for m in METHODS}
        lines.append(f"{r['op']:12s} {r['name']:18s} {r['ours']['do_bench']['median_us']:9.1f} "
                     f"{tt['do_bench']['median_us']:9.1f} {db.get('speed_vs_torch', nan):6.3f} "
                     f"{r['ours']['graph']['median_us']:9.1f} {tt['graph']['median_us']:9.1f} "
                     f"{gr.get('speed_vs_torch', nan):6.3f} {gr.get('ours_bw_frac', nan):6.3f} "
                     f"{gr.get('ours_tflops', nan):6.1f} {'yes' if db['met'] else 'NO'}/{'yes' if gr['met'] else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (atomically)")
    parser.add_argument("--sweep", action="store_true", help="also time the launch-config variants")
    parser.add_argument("--only", choices=["gemm", "prefill", "decode"], action="append",
                        help="run only these kernels (repeatable); default all")
    args = parser.parse_args(argv)
    import torch
    import triton

    from calibration.provenance import provenance
    from kernels import configs

    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("bench_kernels: no CUDA GPU; run it on the GPU machine", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    only = set(args.only or ["gemm", "prefill", "decode"])
    prov = provenance()
    ceil = ceilings()
    print(f"copy {ceil['copy_bw_bytes_s'] / 1e12:.2f} TB/s, torch matmul {ceil['matmul_flops'] / 1e12:.0f} TFLOP/s")
    checks, rows, errors = [], [], []
    sweep = [] if args.sweep else None
    data = {"provenance": prov, "triton": triton.__version__, "timing": {
                "do_bench": "triton.testing.do_bench: median of host-launched calls, L2 flushed before each",
                "graph": "triton.testing.do_bench_cudagraph: median over replays of the mean call time, calls "
                         "back to back in one CUDA graph, inputs rotated among copies > 200 MB"},
            "sdpa": "flash backend via sdpa_kernel(SDPBackend.FLASH_ATTENTION), enable_gqa=True (no K/V copies)",
            "ceilings": ceil, "targets": TARGETS, "checks": checks, "results": rows,
            "configs": {"gemm_small_m": {k: asdict(v) for k, v in configs.GEMM_SMALL_M.items()},
                        "gemm_large_m": {k: asdict(v) for k, v in configs.GEMM_LARGE_M.items()},
                        "prefill": {k: asdict(v) for k, v in configs.PREFILL_ATTENTION.items()},
                        "decode": asdict(configs.DECODE_ATTENTION)}}
    if sweep is not None:
        data["sweep"] = sweep
    sections = {"gemm": lambda: gemm_rows(checks, rows, sweep, ceil["copy_bw_bytes_s"]),
                "prefill": lambda: prefill_rows(checks, rows, sweep),
                "decode": lambda: decode_rows(checks, rows, sweep, ceil["copy_bw_bytes_s"])}
    for name, run in sections.items():
        if name not in only:
            continue
        t0 = time.time()
        try:
            run()
        except Exception as exc:   # one broken section must not lose the others' numbers; recorded, exit 1
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"ERROR in {name}: {exc!r}", file=sys.stderr)
        torch.cuda.empty_cache()
        print(f"section {name}: {time.time() - t0:.0f} s")
        data["errors"] = errors
        _write_atomic(args.out, data)                     # after each section: a killed run keeps its part
    print(_table(rows, sweep))
    failed = [c for c in checks if not c["ok"]]
    print(f"checks: {len(checks) - len(failed)}/{len(checks)} ok; errors: {errors or 'none'}; wrote {args.out}")
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
