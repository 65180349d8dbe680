"""Check, then time, the grouped-GEMM routed experts (kernels.moe.moe_ffn) against the engine's old torch paths.

(a) moe_ffn against moe_ffn_ref (a float32 loop over experts on the GPU), outputs poisoned with NaN first,
and once per model replayed from a CUDA graph on fresh routing (graph safety); moe_align (Triton) against
moe_align_ref (torch) at every block_m of the table, and moe_ffn bitwise equal with either. (b) moe_ffn against
model.MoE's gathered / bucketed methods (the engine before the grouped path, chosen by its own rule, with
the triton stack's fused activation), each timed by calibration.timing.measure (CUDA-graph batches, or
eager where the old path syncs the host), inputs rotated over weight copies past 2 x L2. Reported: time,
touched experts' weight bytes / time, FLOP/s. bf16, random router logits (near-uniform expert loads).

(c) kernels.routing.router_topk (softmax + top-k + renormalise in one launch) against router_topk_ref (the
engine's torch routing) on each model's (T, E) logits at ROUTER_TOKENS, fp32 and bf16: the same ids except
among exactly tied probabilities (fp32: no ties expected, every id equal), weights within ROUTER_TOL; both timed.

The command line: calibration/moe_bench.py; the tile sweep: calibration/moe_sweep.py.
"""
from __future__ import annotations

import time
from types import SimpleNamespace


MODELS = {"olmoe-like": dict(e=64, k=8, h=2048, f=1024), "qwen1.5-moe-like": dict(e=60, k=4, h=2048, f=1408)}
TOKENS = (1, 8, 64, 512, 4096)
CPU_MODELS = {"olmoe-tiny": dict(e=8, k=4, h=64, f=32), "qwen-tiny": dict(e=6, k=2, h=64, f=48)}
CPU_TOKENS = (1, 8, 40)
TOL = 3e-2  # bf16: up projection, activation and output each rounded (tests/test_moe.py TOL_FFN)
ROUTER_TOKENS = (1, 64, 4096)  # decode at batch 1 and 64, a prefill chunk
# weights against the reference's: fp32 output, absolute error; bf16 output, relative error (one ulp)
ROUTER_TOL = {"float32": 1e-5, "bfloat16": 2 ** -7}


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


def _nan_if_float(t):
    return t.fill_(float("nan")) if t.is_floating_point() else t


def check(s: dict, config=None, ref=None) -> float:
    """Relative error of moe_ffn (float outputs of torch.empty poisoned with NaN; the table's config, or `config`)
    against the float32 reference (`ref`, else computed)."""
    import torch

    from kernels.moe import moe_ffn, moe_ffn_ref

    empty = torch.empty
    torch.empty = lambda *a, **kw: _nan_if_float(empty(*a, **kw))
    try:
        out = moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu", config=config)
    finally:
        torch.empty = empty
    if ref is None:
        ref = moe_ffn_ref(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu")
    return float((out.float() - ref).norm() / ref.norm()) if out.isfinite().all() else float("inf")


def align_check(s: dict, m: dict) -> dict:
    """moe_align against moe_align_ref at each block_m of the table: the same block_expert and sentinel rows,
    the same slots per expert (order within an expert is free); and moe_ffn bitwise equal with either."""
    import torch

    from kernels import moe
    from kernels.configs import MOE_CONFIGS

    idx, n, e = s["idx"], s["idx"].numel(), m["e"]
    same_sets = True
    for block_m in MOE_CONFIGS:
        (slots, block_expert), (ref_slots, ref_block_expert) = (moe.moe_align(idx, e, block_m),
                                                                moe.moe_align_ref(idx, e, block_m))
        rows_expert = block_expert.repeat_interleave(block_m)  # (P,) each row's expert
        key, ref_key = rows_expert.long() * (n + 1) + slots, rows_expert.long() * (n + 1) + ref_slots
        same_sets &= bool(torch.equal(block_expert, ref_block_expert) and torch.equal(slots == n, ref_slots == n)
                          and torch.equal(key.sort().values, ref_key.sort().values))
    args = (s["x"], s["w_up"], s["w2"], s["weights"], idx, "swiglu")
    out = moe.moe_ffn(*args)
    align, moe.moe_align = moe.moe_align, moe.moe_align_ref
    try:
        bitwise = bool(torch.equal(out, moe.moe_ffn(*args)))
    finally:
        moe.moe_align = align
    return {"align_same_sets": same_sets, "ffn_bitwise_as_token_order": bitwise}


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


def router_check(name: str, m: dict, t: int, dtype_name: str, cpu: bool) -> dict:
    """router_topk against router_topk_ref on random (T, E) logits of one dtype (weights in that dtype): ids
    equal, or picking equal probabilities (exact ties), weight error within ROUTER_TOL; both timed."""
    import torch

    from kernels.routing import router_topk, router_topk_ref

    dtype = getattr(torch, dtype_name)
    g = torch.Generator(device="cpu" if cpu else "cuda").manual_seed(t)
    logits = [torch.randn(t, m["e"], generator=g, device=g.device).to(dtype) for _ in range(4)]  # (T, E) each
    w, idx = router_topk(logits[0], m["k"])
    ref_w, ref_idx = router_topk_ref(logits[0], m["k"])
    p = torch.softmax(logits[0].float(), -1)  # (T, E) the reference's probabilities
    same_ids = bool(torch.equal(idx.long(), ref_idx))
    tied_only = bool(torch.equal(p.gather(1, idx.long()), p.gather(1, ref_idx)))
    w32 = router_topk(logits[0], m["k"], out_dtype=torch.float32)[0]
    ref_w32 = router_topk_ref(logits[0], m["k"], out_dtype=torch.float32)[0]
    err = float((w32 - ref_w32).abs().max())  # fp32 weights, absolute
    rel = float(((w.float() - ref_w.float()).abs() / ref_w.float()).max())  # weights in the logits' dtype
    fp32 = dtype == torch.float32  # random fp32 logits: no ties expected
    ok = ((same_ids or (tied_only and not fp32)) and err <= ROUTER_TOL["float32"]
          and (fp32 or rel <= ROUTER_TOL[dtype_name]))
    row = {"model": name, "t": t, "router_topk": dtype_name, "ids_equal": same_ids, "ids_equal_but_ties": tied_only,
           "weight_err": err, "weight_rel_err": rel, "ok": ok}
    for path, fn in (("router_topk", router_topk), ("router_topk_ref", router_topk_ref)):
        row[f"{path}_us"] = timed([lambda x=x, fn=fn: fn(x, m["k"]) for x in logits], False, cpu)["median_us"]
    return row


def timed(calls: list, eager: bool, cpu: bool) -> dict:
    """calibration.timing.measure over the rotated input sets (its row); on the CPU one wall-clock call."""
    if cpu:
        t0 = time.perf_counter()
        calls[0]()
        return {"median_us": (time.perf_counter() - t0) * 1e6, "mode": "cpu-interpreter wall, not a measurement"}
    from calibration.timing import measure

    return measure(lambda i: calls[i % len(calls)](), rotate=len(calls), use_graph=not eager).row()


def input_sets(m: dict, t: int, first: dict, cpu: bool) -> tuple[list, float]:
    """Input sets rotated past 2 x L2 (at most 4 GiB of weights), `first` among them, and their mean touched
    expert weight bytes."""
    from calibration.timing import l2_bytes, rotation_count
    from kernels.moe import moe_weight_bytes

    h, f = m["h"], m["f"]
    touched = moe_weight_bytes(int(first["idx"].unique().numel()), h, 2 * f, f)
    full_bytes = moe_weight_bytes(m["e"], h, 2 * f, f)
    n_sets = 1 if cpu else min(rotation_count(touched, l2_bytes()), max(1, int(4 * 2**30 // full_bytes)))
    sets = [first] + [make_inputs(m, t, first["x"].device.type, 10 + i) for i in range(n_sets - 1)]
    return sets, sum(moe_weight_bytes(int(s["idx"].unique().numel()), h, 2 * f, f) for s in sets) / n_sets


def run_model(name: str, m: dict, tokens, cpu: bool, rows: list, checks: list) -> None:
    """Check and time every token count of one model shape; append result rows and checks."""
    import torch

    from calibration.engine.model import MoE
    from kernels.configs import moe_config
    from kernels.moe import moe_ffn, moe_flops

    device = "cpu" if cpu else "cuda"
    e, k, h, f = m["e"], m["k"], m["h"], m["f"]
    for t in CPU_TOKENS if cpu else ROUTER_TOKENS:
        for dtype_name in ROUTER_TOL:
            c = router_check(name, m, t, dtype_name, cpu)
            checks.append(c)
            print(f"check {name:18s} T={t:5d} router_topk {dtype_name:8s} ids equal {c['ids_equal']} (but ties "
                  f"{c['ids_equal_but_ties']}), weight err {c['weight_err']:.1e} (rel {c['weight_rel_err']:.1e})  "
                  f"{c['router_topk_us']:.1f} us vs "
                  f"ref {c['router_topk_ref_us']:.1f} us  {'ok' if c['ok'] else 'FAIL'}")
    for t in tokens:
        first = make_inputs(m, t, device, 0)
        err = check(first)
        checks.append({"model": name, "t": t, "rel_err": err, "ok": err < TOL})
        print(f"check {name:18s} T={t:5d} rel_err {err:.2e} {'ok' if err < TOL else 'FAIL'}")
        align = align_check(first, m)
        checks.append({"model": name, "t": t, **align, "ok": all(align.values())})
        print(f"check {name:18s} T={t:5d} moe_align vs moe_align_ref: same slots per expert "
              f"{align['align_same_sets']}, moe_ffn bitwise equal {align['ffn_bitwise_as_token_order']}")
        sets, touched = input_sets(m, t, first, cpu)
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


def run_checks(args) -> int:
    """Checks (a)-(c) and the timings of every model shape; the JSON is rewritten after each model."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

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
