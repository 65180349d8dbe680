"""GPU benchmark: the engine's efficiency on a Llama-3.1-8B-shaped model, as ratios to measured ceilings.

Targets (H100, batch 1): a decode step <= 1.25 x (weight bytes / measured copy bandwidth), and a
2,048-token prefill >= 65% of the measured bf16 matmul rate (cuBLAS, 8192^3, random data; the ratio to
the stack's own matmul, our Triton GEMM for `triton`, is given too). Both backends are run; the JSON
carries every number and the provenance.

    python3 -m benchmarks.bench_engine --out bench_engine_h100.json
"""
from __future__ import annotations

import argparse
import statistics


DECODE_MAX_RATIO = 1.25
PREFILL_MIN_EFF = 0.65


def ceilings() -> dict:
    """Copy bandwidth (bytes read + written per second) and bf16 matmul rates (cuBLAS and ours), random data,
    through calibration.timing.measure."""
    import torch

    from calibration.timing import measure
    from kernels.gemm import matmul

    n_bytes = 2 * 2**30
    src = torch.randn(n_bytes // 2, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    copy_us = measure(lambda i: dst.copy_(src), reps=10).median_us  # graph replay
    import triton.testing
    copy_db_us = 1e3 * triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")  # eager, L2 flushed
    n = 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    mm_us = measure(lambda i: torch.mm(a, w.t()), reps=10).median_us
    ours_us = measure(lambda i: matmul(a, w), reps=10).median_us
    # the faster of the two copy timings is the ceiling: the stricter target (an H100 copy once read 2.44 TB/s
    # by graph replay and 3.00 TB/s by do_bench in the same session)
    copy_bw = {"graph": 2 * n_bytes / (copy_us / 1e6), "do_bench": 2 * n_bytes / (copy_db_us / 1e6)}
    return {"copy_bw_bytes_s": max(copy_bw.values()), "copy_bw_by_method": copy_bw,
            "matmul_flops": 2 * n**3 / (mm_us / 1e6),
            "matmul_flops_triton": 2 * n**3 / (ours_us / 1e6)}


def prefill_flops(arch, p: int) -> float:
    """FLOPs of a batch-1 prefill of p tokens at t = 1, by the simulator's own op list (simulator.ops)."""
    from simulator.ops import prefill_ops, total_flops

    return float(total_flops(prefill_ops(arch, 1, p, 1)))


def bench_backend(arch, backend: str, ceil: dict, p: int = 2048, steps: int = 64) -> dict:
    """Decode step time at batch 1 (CUDA graphs, context ~p) and p-token prefill time, with their ratios."""
    import torch

    from calibration.engine.runner import Engine

    eng = Engine(arch, backend)
    eng.prepare(1, p + steps + 1)
    prompt = torch.randint(0, arch.vocab, (1, p), device="cuda")
    eng.capture(p + 1, p + steps)
    eng.run_once(prompt, steps + 1)  # warm-up
    runs = [eng.run_once(prompt, steps + 1) for _ in range(5)]  # the timing of `idealrt measure`
    pre_ms = statistics.median(r.prefill_s for r in runs) * 1e3
    step_ms = statistics.median(r.decode_s for r in runs) * 1e3 / steps
    weight_s = arch.weight_bytes() / ceil["copy_bw_bytes_s"]
    own = "matmul_flops_triton" if backend == "triton" else "matmul_flops"  # this stack's own matmul rate
    flops = prefill_flops(arch, p)
    res = {"backend": backend, "decode_step_s": step_ms / 1e3, "weights_read_s": weight_s,
           "decode_ratio": step_ms / 1e3 / weight_s, "decode_bw_bytes_s": arch.weight_bytes() / (step_ms / 1e3),
           "prefill_tokens": p, "prefill_s": pre_ms / 1e3, "prefill_flops": flops,
           "prefill_efficiency": flops / (pre_ms / 1e3) / ceil["matmul_flops"],
           "prefill_efficiency_own_matmul": flops / (pre_ms / 1e3) / ceil[own]}
    res["decode_ok"] = res["decode_ratio"] <= DECODE_MAX_RATIO
    res["prefill_ok"] = res["prefill_efficiency"] >= PREFILL_MIN_EFF
    del eng
    torch.cuda.empty_cache()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the results (with provenance)")
    ap.add_argument("--arch", default="llama-3.1-8b")
    ap.add_argument("--backends", default="triton,torch")
    args = ap.parse_args()

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from simulator.catalog import get_arch

    arch = get_arch(args.arch)
    ceil = ceilings()
    print(f"copy {ceil['copy_bw_bytes_s'] / 1e12:.2f} TB/s, matmul {ceil['matmul_flops'] / 1e12:.0f} TFLOP/s "
          f"(ours {ceil['matmul_flops_triton'] / 1e12:.0f}); weights {arch.weight_bytes() / 1e9:.2f} GB", flush=True)
    results = []
    for backend in args.backends.split(","):
        r = bench_backend(arch, backend, ceil)
        results.append(r)
        print(f"{backend:7s} decode {r['decode_step_s'] * 1e3:.2f} ms/token = {r['decode_ratio']:.3f} x "
              f"weights/copy-bw "
              f"(<= {DECODE_MAX_RATIO}: {'ok' if r['decode_ok'] else 'MISS'}); prefill {r['prefill_tokens']} tokens "
              f"{r['prefill_s'] * 1e3:.1f} ms = {r['prefill_efficiency']:.1%} of cuBLAS matmul "
              f"({r['prefill_efficiency_own_matmul']:.1%} of its own) "
              f"(>= {PREFILL_MIN_EFF:.0%}: {'ok' if r['prefill_ok'] else 'MISS'})", flush=True)
    write_json_atomic(args.out, {"arch": arch.name, "ceilings": ceil, "targets": {
        "decode_max_ratio": DECODE_MAX_RATIO, "prefill_min_efficiency": PREFILL_MIN_EFF},
        "results": results, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
