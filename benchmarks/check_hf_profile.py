"""HF's kernel list (simulator/hf_ops.py) against a torch.profiler run of transformers' eager generate
(calibration/hf_profile.py, its JSON): per profiled generate, the GPU's busy time against the simulated GPU seconds
(table only, the hf-eager op list) and the profiled kernel count against the simulated one. CPU only:

    python3 -m benchmarks.check_hf_profile [--profile benchmarks/results/hf_profile_h200.json]
        [--out benchmarks/results/hf_profile_check_h200.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from calibration.provenance import cpu_provenance
from calibration.table_io import write_json_atomic
from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.hostmodel import ENGINE
from simulator.ops import decode_ops, prefill_ops
from simulator.predict import predict
from simulator.tables import table_model_for


def _kernels(ops) -> float:
    return sum(float(np.sum(op.count)) for op in ops if op.op_class != "launch")


def check(profile: dict, gpu_name: str = "h200") -> list[dict]:
    """One record per profiled generate: measured busy and kernels against the simulated GPU seconds and kernels."""
    gpu = get_gpu(gpu_name)
    model = table_model_for(gpu, "torch")
    out = []
    for prof in profile["profiles"]:
        arch = get_arch(prof["arch"])
        for q in prof["queries"]:
            b, p, new = q["b"], q["p"], q["new_tokens"]
            pred = predict(arch, gpu, p, new, b, 1, model=model, host=ENGINE, fused=False)
            sim_gpu = sum(float(v) for part in (pred.prefill_by_class, pred.decode_by_class)
                          for c, v in part.items() if c != "launch")
            sim_kernels = _kernels(prefill_ops(arch, b, p, 1, fused=False, host=ENGINE)) + sum(
                _kernels(decode_ops(arch, b, p + j, 1, fused=False, host=ENGINE)) for j in range(1, new))
            s = q["profiled"]
            out.append({"arch": arch.name, "b": b, "p": p, "new_tokens": new,
                        "gpu_busy_s": s["gpu_busy_us"] * 1e-6, "simulated_gpu_s": sim_gpu,
                        "gpu_rel_err": sim_gpu / (s["gpu_busy_us"] * 1e-6) - 1,
                        "kernels": s["kernels"], "simulated_kernels": sim_kernels,
                        "wall_s": q["wall_s_median"], "gpu_idle_s": q["wall_s_median"] - s["gpu_busy_us"] * 1e-6})
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison and write it with provenance."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="benchmarks/results/hf_profile_h200.json")
    ap.add_argument("--out", default="benchmarks/results/hf_profile_check_h200.json")
    args = ap.parse_args(argv)
    with open(args.profile) as f:
        profile = json.load(f)
    records = check(profile)
    for r in records:
        print(f"{r['arch']:14s} b={r['b']:<2} p={r['p']:<5} new={r['new_tokens']}: GPU busy {r['gpu_busy_s'] * 1e3:7.2f} ms, "
              f"simulated {r['simulated_gpu_s'] * 1e3:7.2f} ms ({100 * r['gpu_rel_err']:+.1f} %); kernels "
              f"{r['kernels']} vs {r['simulated_kernels']:.0f}; wall {r['wall_s'] * 1e3:.2f} ms")
    errs = np.abs([r["gpu_rel_err"] for r in records])
    summary = {"gpu_median_abs_pct": float(100 * np.median(errs)), "gpu_max_abs_pct": float(100 * np.max(errs))}
    print(f"GPU seconds: median |error| {summary['gpu_median_abs_pct']:.1f} %, max {summary['gpu_max_abs_pct']:.1f} %")
    write_json_atomic(args.out, {"records": records, "summary": summary, "profile_provenance": profile["provenance"],
                                 "provenance": cpu_provenance("python3 -m benchmarks.check_hf_profile "
                                                              + " ".join(argv or []), "hf-eager kernel check")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
