"""Check, then time, the grouped-GEMM routed experts (kernels.moe.moe_ffn) against the engine's old torch paths.

    python3 -m benchmarks.check_moe --out benchmarks/results/check_moe_h100.json
    python3 -m benchmarks.check_moe --cpu --out /tmp/check_moe_cpu.json    # interpreter, tiny shapes
    python3 -m benchmarks.check_moe --sweep --out benchmarks/results/moe_sweep_h100.json   # tile variants

What (a) the checks, (b) the timings and (c) the routing checks are: calibration/moe_check.py.

--sweep instead times moe_ffn under candidate MoeConfig variants (DECODE_VARIANTS, PREFILL_VARIANTS; the
table's own config always first) at each (model, T), each variant checked once against the reference
first (a failing or uncompilable one, e.g. shared memory overflow, is reported and skipped), and times
moe_ffn's pieces at T = 1 with the default config (align, and the torch align_ref beside it, both grouped
launches, activation, combine; GPU kernels counted for align, align_ref and the whole moe_ffn).
"""
from __future__ import annotations

import argparse
import os
import sys

from calibration.moe_check import run_checks
from calibration.moe_sweep import run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write (atomically, after each model)")
    parser.add_argument("--cpu", action="store_true", help="Triton CPU interpreter, tiny shapes (a dry run)")
    parser.add_argument("--sweep", action="store_true", help="time moe_ffn under candidate tile configs instead")
    args = parser.parse_args(argv)
    if args.cpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("check_moe: no CUDA GPU; run it on the GPU machine or pass --cpu", file=sys.stderr)
        return 2
    if args.sweep:
        return run_sweep(args)
    return run_checks(args)
