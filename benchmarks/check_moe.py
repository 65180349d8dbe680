"""Check, then time, the grouped-GEMM routed experts (kernels.moe.moe_ffn) against the engine's old torch paths.

    python3 benchmarks/check_moe.py --out benchmarks/results/check_moe_h100.json
    python3 benchmarks/check_moe.py --cpu --out /tmp/check_moe_cpu.json    # interpreter, tiny shapes

(a) moe_ffn against moe_ffn_ref (a float32 loop over experts on the GPU), outputs poisoned with NaN first,
and once per model replayed from a CUDA graph on fresh routing (graph safety). (b) moe_ffn against
model.MoE's gathered / bucketed methods (the engine before the grouped path, chosen by its own rule, with
the triton stack's fused activation), each timed by calibration.timing.measure (CUDA-graph batches, or
eager where the old path syncs the host), inputs rotated over weight copies past 2 x L2. Reported: time,
touched experts' weight bytes / time, FLOP/s. bf16, random router logits (near-uniform expert loads).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {"olmoe-like": dict(e=64, k=8, h=2048, f=1024), "qwen1.5-moe-like": dict(e=60, k=4, h=2048, f=1408)}
TOKENS = (1, 8, 64, 512, 4096)
CPU_MODELS = {"olmoe-tiny": dict(e=8, k=4, h=64, f=32), "qwen-tiny": dict(e=6, k=2, h=64, f=48)}
CPU_TOKENS = (1, 8, 40)
TOL = 3e-2  # bf16: up projection, activation and output each rounded (tests/test_moe.py TOL_FFN)


def make_inputs(m: dict, t: int, device: str, seed: int) -> dict:
    """One input set: x (T, H), w_up (E, 2F, H), w2 (E, H, F), renormalised top-k routing (T, k)."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    e, k, h, f = m["e"], m["k"], m["h"], m["f"]
    randn = lambda *s, scale=1.0: (torch.randn(*s, generator=g, device=device) * scale).bfloat16()  # noqa: E731
    w, idx = torch.softmax(torch.randn(t, e, generator=g, device=device), -1).topk(k)
    return {"x": randn(t, h), "w_up": randn(e, 2 * f, h, scale=h ** -0.5), "w2": randn(e, h, f, scale=f ** -0.5),
            "weights": (w / w.sum(-1, keepdim=True)).bfloat16(), "idx": idx}


def old_path(s: dict, m: dict):
    """(name, call) of model.MoE's torch schedule for these inputs, by its own rule (3 T k <= E: gathered)."""
    from calibration.engine.backends import get_backend
    from calibration.engine.model import MoE

    me = SimpleNamespace(be=get_backend("triton"), kind="swiglu", w_up=s["w_up"], w2=s["w2"], e=m["e"], k=m["k"],
                         SYNC_FREE_TOKENS=MoE.SYNC_FREE_TOKENS)
    if 3 * s["x"].shape[0] * m["k"] <= m["e"]:
        return "torch.gathered", lambda: MoE._gathered(me, s["x"], s["weights"], s["idx"])
    return "torch.bucketed", lambda: MoE._bucketed(me, s["x"], s["weights"], s["idx"])


def check(s: dict, cpu: bool) -> float:
    """Relative error of moe_ffn (outputs of torch.empty poisoned with NaN) against the float32 reference."""
    import torch

    from kernels.moe import moe_ffn, moe_ffn_ref

    empty = torch.empty
    torch.empty = lambda *a, **kw: empty(*a, **kw).fill_(float("nan"))
    try:
        out = moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu")
    finally:
        torch.empty = empty
    ref = moe_ffn_ref(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu")
    return float((out.float() - ref).norm() / ref.norm()) if out.isfinite().all() else float("inf")


def graph_check(m: dict, t: int) -> float:
    """moe_ffn captured in a CUDA graph, replayed on a fresh input set copied in: its relative error."""
    import torch

    from kernels.moe import moe_ffn, moe_ffn_ref

    s, fresh = make_inputs(m, t, "cuda", 1), make_inputs(m, t, "cuda", 2)
    call = lambda: moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu")  # noqa: E731
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        call()  # compile outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = call()
    torch.cuda.current_stream().wait_stream(side)
    for key in s:
        s[key].copy_(fresh[key])
    out.fill_(float("nan"))
    graph.replay()
    ref = moe_ffn_ref(*(fresh[key] for key in ("x", "w_up", "w2", "weights", "idx")), "swiglu")
    return float((out.float() - ref).norm() / ref.norm())


def timed(calls: list, eager: bool, cpu: bool) -> dict:
    """calibration.timing.measure over the rotated input sets (its row); on the CPU one wall-clock call."""
    if cpu:
        t0 = time.perf_counter()
        calls[0]()
        return {"median_us": (time.perf_counter() - t0) * 1e6, "mode": "cpu-interpreter wall, not a measurement"}
    from calibration.timing import measure

    return measure(lambda i: calls[i % len(calls)](), rotate=len(calls), use_graph=not eager).row()


def run_model(name: str, m: dict, tokens, cpu: bool, rows: list, checks: list) -> None:
    """Check and time every token count of one model shape; append result rows and checks."""
    import torch

    from calibration.engine.model import MoE
    from calibration.timing import l2_bytes, rotation_count
    from kernels.configs import moe_config
    from kernels.moe import moe_ffn, moe_flops, moe_weight_bytes

    device = "cpu" if cpu else "cuda"
    e, k, h, f = m["e"], m["k"], m["h"], m["f"]
    full_bytes = moe_weight_bytes(e, h, 2 * f, f)
    for t in tokens:
        first = make_inputs(m, t, device, 0)
        err = check(first, cpu)
        checks.append({"model": name, "t": t, "rel_err": err, "ok": err < TOL})
        print(f"check {name:18s} T={t:5d} rel_err {err:.2e} {'ok' if err < TOL else 'FAIL'}")
        touched = moe_weight_bytes(int(first["idx"].unique().numel()), h, 2 * f, f)
        n_sets = 1 if cpu else min(rotation_count(touched, l2_bytes()), max(1, int(4 * 2**30 // full_bytes)))
        sets = [first] + [make_inputs(m, t, device, 10 + i) for i in range(n_sets - 1)]
        touched = sum(moe_weight_bytes(int(s["idx"].unique().numel()), h, 2 * f, f) for s in sets) / n_sets
        old_name = old_path(first, m)[0]
        paths = {"grouped": ([lambda s=s: moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu")
                              for s in sets], False),
                 old_name: ([old_path(s, m)[1] for s in sets],
                            old_name == "torch.bucketed" and t > MoE.SYNC_FREE_TOKENS)}  # eager: it syncs
        for path, (calls, eager) in paths.items():
            tm = timed(calls, eager, cpu)
            sec = tm["median_us"] * 1e-6
            rows.append({"model": name, **m, "t": t, "path": path, "timing": tm, "time_us": tm["median_us"],
                         "weight_bytes": touched, "weight_bw_gbps": touched / sec / 1e9,
                         "tflops": moe_flops(t * k, h, 2 * f, f) / sec / 1e12,
                         "config": vars(moe_config(t * k, e)) if path == "grouped" else None})
            print(f"  {path:15s} {tm['median_us']:10.1f} us  {rows[-1]['weight_bw_gbps']:8.1f} GB/s  "
                  f"{rows[-1]['tflops']:7.2f} TFLOP/s  ({tm['mode']})")
        del sets, first
    if not cpu:
        err = graph_check(m, 64)
        checks.append({"model": name, "t": 64, "graph_replay": True, "rel_err": err, "ok": err < TOL})
        print(f"check {name:18s} T=   64 graph replay rel_err {err:.2e} {'ok' if err < TOL else 'FAIL'}")
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write (atomically, after each model)")
    parser.add_argument("--cpu", action="store_true", help="Triton CPU interpreter, tiny shapes (a dry run)")
    args = parser.parse_args(argv)
    if args.cpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    if not args.cpu and not torch.cuda.is_available():
        print("check_moe: no CUDA GPU; run it on the GPU machine or pass --cpu", file=sys.stderr)
        return 2
    rows, checks = [], []
    data = {"provenance": provenance(), "tolerance": TOL, "checks": checks, "results": rows,
            "timing": "calibration.timing.measure: median per call over CUDA-graph batches (eager where the "
                      "old path syncs the host), inputs rotated past 2 x L2"}
    for name, m in (CPU_MODELS if args.cpu else MODELS).items():
        run_model(name, m, CPU_TOKENS if args.cpu else TOKENS, args.cpu, rows, checks)
        write_json_atomic(args.out, data)  # after each model: a killed run keeps its part
    failed = [c for c in checks if not c["ok"]]
    print(f"checks: {len(checks) - len(failed)}/{len(checks)} ok; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
