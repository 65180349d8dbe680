"""The `best` stack's GEMM dispatch against measured GEMMs: on the shapes of a `gemm_choice` result (our GEMM as the
engine runs it and cuBLAS, each timed on the GPU: calibration/gemm_choice.py), the kernel simulator.dispatch
chooses from the table, and the measured speed of that choice over cuBLAS's and over the faster of the two.
Computed on the CPU from committed files.

    python -m benchmarks.dispatch_gemm --choice benchmarks/results/gemm_choice_h200.json --gpu h200 \\
        --out benchmarks/results/dispatch_gemm_h200.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from simulator.dispatch import VENDOR


def dispatch_against(check: list[dict], rule) -> dict:
    """Per shape the rule's choice and measured times; pooled: best / cuBLAS speed (median, P10, min) and how often
    the rule took the measured-faster kernel."""
    shapes, speed_vs_cublas, speed_vs_oracle, right = [], [], [], []
    for c in (c for c in check if "heuristic_us" in c and "cublas_us" in c):  # shapes measured on both
        m, n, k = c["shape"]
        stack = rule.choose("gemm", {"m": m, "n": n, "k": k})
        ours_us, cublas_us = c["heuristic_us"], c["cublas_us"]
        best_us = cublas_us if stack == VENDOR else ours_us
        speed_vs_cublas.append(cublas_us / best_us)
        speed_vs_oracle.append(min(ours_us, cublas_us) / best_us)
        right.append(best_us == min(ours_us, cublas_us))
        shapes.append({"shape": [m, n, k], "choice": stack, "ours_us": ours_us, "cublas_us": cublas_us})
    s, o = np.array(speed_vs_cublas), np.array(speed_vs_oracle)
    return {"n": len(shapes), "measured_faster_chosen_share": float(np.mean(right)),
            "speed_vs_cublas": {"median": float(np.median(s)), "p10": float(np.percentile(s, 10)), "min": float(s.min())},
            "speed_vs_faster_of_two": {"median": float(np.median(o)), "p10": float(np.percentile(o, 10)),
                                       "min": float(o.min())},
            "vendor_share": float(np.mean([x["choice"] == VENDOR for x in shapes])), "shapes": shapes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--choice", default="benchmarks/results/gemm_choice_h200.json", help="a gemm_choice result")
    ap.add_argument("--gpu", default="h200", help="GPU whose table the rule reads")
    ap.add_argument("--out", help="JSON file of the results")
    args = ap.parse_args(argv)

    from calibration.table_io import write_json_atomic
    from simulator.gpus import get_gpu
    from simulator.tables import BEST, default_model

    with open(args.choice) as f:
        data = json.load(f)
    res = dispatch_against(data["check"], default_model(get_gpu(args.gpu), BEST).dispatch)
    print(f"{res['n']} measured shapes: the rule took the measured-faster GEMM on {res['measured_faster_chosen_share']:.0%}; "
          f"best / cuBLAS speed median {res['speed_vs_cublas']['median']:.3f}x, P10 {res['speed_vs_cublas']['p10']:.3f}x, "
          f"min {res['speed_vs_cublas']['min']:.3f}x; of the faster of the two: median "
          f"{res['speed_vs_faster_of_two']['median']:.3f}, P10 {res['speed_vs_faster_of_two']['p10']:.3f}; "
          f"vendor on {res['vendor_share']:.0%}")
    if args.out:
        write_json_atomic(args.out, {"provenance": {"computed": "on the CPU from committed files (no GPU)",
                                                    "choice_file": args.choice,
                                                    "choice_provenance": data.get("provenance"), "gpu": args.gpu,
                                                    "command": "python -m benchmarks.dispatch_gemm"}, **res})
    return 0
