"""Check, then time, the grouped-GEMM routed experts (kernels.moe.moe_ffn) against the engine's old torch paths.

    python3 benchmarks/check_moe.py --out benchmarks/results/check_moe_h100.json
    python3 benchmarks/check_moe.py --cpu --out /tmp/check_moe_cpu.json    # interpreter, tiny shapes
    python3 benchmarks/check_moe.py --sweep --out benchmarks/results/moe_sweep_h100.json   # tile variants

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
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {"olmoe-like": dict(e=64, k=8, h=2048, f=1024), "qwen1.5-moe-like": dict(e=60, k=4, h=2048, f=1408)}
TOKENS = (1, 8, 64, 512, 4096)
CPU_MODELS = {"olmoe-tiny": dict(e=8, k=4, h=64, f=32), "qwen-tiny": dict(e=6, k=2, h=64, f=48)}
CPU_TOKENS = (1, 8, 40)
TOL = 3e-2  # bf16: up projection, activation and output each rounded (tests/test_moe.py TOL_FFN)
ROUTER_TOKENS = (1, 64, 4096)  # decode at batch 1 and 64, a prefill chunk
# weights against the reference's: fp32 output, absolute error; bf16 output, relative error (one ulp)
ROUTER_TOL = {"float32": 1e-5, "bfloat16": 2 ** -7}

# --sweep: candidate MoeConfig fields (block_m, block_n, block_k, num_warps, num_stages), by regime.
# Decode-like: 16-row blocks; N tile width against programs in flight, K depth and stages against latency.
DECODE_VARIANTS = (
    (16, 32, 128, 4, 3), (16, 32, 128, 4, 4), (16, 32, 256, 4, 3), (16, 32, 256, 4, 4),
    (16, 64, 64, 4, 4), (16, 64, 128, 4, 3), (16, 64, 128, 4, 4), (16, 64, 128, 4, 5),
    (16, 64, 256, 4, 3), (16, 64, 256, 4, 4),
    (16, 128, 64, 4, 4), (16, 128, 128, 4, 3), (16, 128, 128, 4, 4), (16, 128, 256, 4, 3),
)
# Prefill-like: tensor-core tiles (the dense GEMM's best were 128 x 128 and 128 x 256, kernels/configs.py).
PREFILL_VARIANTS = (
    (64, 64, 64, 4, 3), (64, 128, 64, 4, 3), (64, 128, 64, 4, 4), (64, 128, 64, 8, 3),
    (64, 256, 64, 4, 3), (64, 256, 64, 8, 3), (64, 256, 64, 8, 4),
    (128, 64, 64, 4, 3), (128, 64, 64, 4, 4), (128, 128, 64, 4, 3), (128, 128, 64, 4, 4),
    (128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (128, 256, 64, 8, 4),
)
CPU_VARIANTS = {"decode": ((16, 16, 16, 4, 3), (16, 32, 32, 4, 3)), "prefill": ((32, 32, 16, 4, 3),)}
BOTH_FAMILIES = (8, 64)  # mean rows per expert (T*k/E) in this range: both families are swept


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


def variants(t: int, m: dict, cpu: bool) -> list[tuple[str, object]]:
    """(family, MoeConfig) to sweep at T tokens: the table's config first, then its regime's candidates
    (both regimes while the mean rows per expert lie in BOTH_FAMILIES)."""
    from kernels.configs import MoeConfig, moe_config

    rows = t * m["k"] / m["e"]
    fams = ["decode"] if rows < BOTH_FAMILIES[0] else ["prefill"] if rows > BOTH_FAMILIES[1] else ["decode", "prefill"]
    table = CPU_VARIANTS if cpu else {"decode": DECODE_VARIANTS, "prefill": PREFILL_VARIANTS}
    default = moe_config(t * m["k"], m["e"])
    out = [("decode" if default.block_m == 16 else "prefill", default)]
    return out + [(fam, cfg) for fam in fams for cfg in map(lambda v: MoeConfig(*v), table[fam]) if cfg != default]


def cuda_kernels(call) -> list[str] | None:
    """Names of the GPU kernels (and memsets/copies) one call launches, by torch.profiler; None without it."""
    import torch

    try:
        from torch.profiler import ProfilerActivity, profile

        call()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
        return [ev.name[:80] for ev in prof.events() if ev.device_type == torch.autograd.DeviceType.CUDA]
    except Exception:  # noqa: BLE001 — no CUPTI: the count is only informative
        return None


def time_pieces(name: str, m: dict, sets: list, cpu: bool) -> list[dict]:
    """moe_ffn's parts, each timed alone over the rotated sets with the table's config: align (Triton; and
    align_ref, the torch version, beside it), up launch, activation, down launch, combine, and the whole call
    (so the align step's share is seen); on the GPU also the kernels align and moe_ffn launch."""
    from kernels import fused
    from kernels.configs import moe_config
    from kernels.moe import grouped_matmul, moe_align, moe_align_ref, moe_ffn

    e, k, h, f = m["e"], m["k"], m["h"], m["f"]
    t = sets[0]["x"].shape[0]
    cfg = moe_config(t * k, e)
    for s in sets:  # each part's inputs, from the part before
        s["slots"], s["block_expert"] = moe_align(s["idx"], e, cfg.block_m)
        s["up"] = grouped_matmul(s["x"], s["w_up"], s["slots"], s["block_expert"], gather_k=k, config=cfg)
        s["a"] = fused.act(s["up"], "swiglu")
        s["y"] = grouped_matmul(s["a"], s["w2"], s["slots"], s["block_expert"], gather_k=None,
                                row_scale=s["weights"].reshape(-1), config=cfg)
    parts = {
        "align": lambda s: moe_align(s["idx"], e, cfg.block_m),
        "align_ref": lambda s: moe_align_ref(s["idx"], e, cfg.block_m),  # the torch version, for comparison
        "up": lambda s: grouped_matmul(s["x"], s["w_up"], s["slots"], s["block_expert"], gather_k=k, config=cfg),
        "act": lambda s: fused.act(s["up"], "swiglu"),
        "down": lambda s: grouped_matmul(s["a"], s["w2"], s["slots"], s["block_expert"], gather_k=None,
                                         row_scale=s["weights"].reshape(-1), config=cfg),
        "combine": lambda s: s["y"].view(t, k, -1).sum(1),
        "moe_ffn": lambda s: moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu", config=cfg),
    }
    touched = sum(int(s["idx"].unique().numel()) for s in sets) / len(sets)
    weight_bytes = {"up": touched * 2 * f * h * 2, "down": touched * h * f * 2}  # bf16
    rows = []
    for part, fn in parts.items():
        tm = timed([lambda s=s, fn=fn: fn(s) for s in sets], False, cpu)
        row = {"model": name, "t": t, "part": part, "config": vars(cfg), "timing": tm, "time_us": tm["median_us"]}
        if part in weight_bytes:
            row["weight_bw_gbps"] = weight_bytes[part] / (tm["median_us"] * 1e-6) / 1e9
        if part in ("align", "align_ref", "moe_ffn") and not cpu:
            names = cuda_kernels(lambda fn=fn: fn(sets[0]))
            row["gpu_kernels"], row["gpu_kernel_names"] = (len(names), names) if names is not None else (None, None)
        rows.append(row)
        bw = f"  {row['weight_bw_gbps']:7.1f} GB/s" if part in weight_bytes else ""
        launches = f"  {row['gpu_kernels']} GPU kernels" if "gpu_kernels" in row else ""
        print(f"  part {part:8s} {tm['median_us']:9.1f} us{bw}{launches}", flush=True)
    for s in sets:
        for key in ("slots", "block_expert", "up", "a", "y"):
            del s[key]
    return rows


def sweep_point(name: str, m: dict, t: int, cpu: bool) -> tuple[list[dict], list[dict]]:
    """Every variant of one (model, T): checked once against the reference, then timed -> rows; at T = 1 also
    the pieces of moe_ffn."""
    from kernels.moe import moe_ffn, moe_ffn_ref, moe_flops

    e, k, h, f = m["e"], m["k"], m["h"], m["f"]
    first = make_inputs(m, t, "cpu" if cpu else "cuda", 0)
    ref = moe_ffn_ref(first["x"], first["w_up"], first["w2"], first["weights"], first["idx"], "swiglu")
    sets, touched = input_sets(m, t, first, cpu)
    rows = []
    print(f"sweep {name} T={t} (T*k/E = {t * k / e:.2f}; {len(sets)} input sets)\n"
          f"  {'family':7s} {'bm':>4s} {'bn':>4s} {'bk':>4s} {'w':>2s} {'s':>2s} {'us':>9s} {'GB/s':>8s} "
          f"{'TFLOP/s':>8s} {'rel_err':>8s}")
    for i, (family, cfg) in enumerate(variants(t, m, cpu)):
        row = {"model": name, **m, "t": t, "family": family, "config": vars(cfg), "default": i == 0}
        try:
            row["rel_err"] = check(first, cfg, ref)
            row["ok"] = row["rel_err"] < TOL
            row["error"] = None if row["ok"] else f"rel_err {row['rel_err']:.2e} >= {TOL}"
            if row["ok"]:
                tm = timed([lambda s=s: moe_ffn(s["x"], s["w_up"], s["w2"], s["weights"], s["idx"], "swiglu",
                                                config=cfg) for s in sets], False, cpu)
                sec = tm["median_us"] * 1e-6
                row.update(timing=tm, time_us=tm["median_us"], weight_bytes=touched,
                           weight_bw_gbps=touched / sec / 1e9, tflops=moe_flops(t * k, h, 2 * f, f) / sec / 1e12)
        except Exception as exc:  # noqa: BLE001 — e.g. OutOfResources (shared memory): report, go on
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            row.update(ok=False, error=f"{type(exc).__name__}: {first_line}")
        rows.append(row)
        tail = (f"{row['time_us']:9.1f} {row['weight_bw_gbps']:8.1f} {row['tflops']:8.2f} {row['rel_err']:8.1e}"
                if row["ok"] else f"skipped: {row['error']}")
        print(f"  {family:7s} {cfg.block_m:4d} {cfg.block_n:4d} {cfg.block_k:4d} {cfg.num_warps:2d} "
              f"{cfg.num_stages:2d} {tail}" + ("  (default)" if row["default"] else ""), flush=True)
    pieces = time_pieces(name, m, sets, cpu) if t == 1 else []
    return rows, pieces


def best_rows(rows: list[dict]) -> list[dict]:
    """Per (model, T): the table's config against the fastest variant that passed."""
    out = []
    for key in dict.fromkeys((r["model"], r["t"]) for r in rows):
        point = [r for r in rows if (r["model"], r["t"]) == key and r["ok"]]
        if not point:
            continue
        best = min(point, key=lambda r: r["time_us"])
        default = next((r for r in point if r["default"]), None)
        out.append({"model": key[0], "t": key[1], "best_config": best["config"], "best_us": best["time_us"],
                    "best_weight_bw_gbps": best["weight_bw_gbps"], "best_tflops": best["tflops"],
                    "default_us": default["time_us"] if default else None,
                    "speedup": default["time_us"] / best["time_us"] if default else None})
    return out


def run_sweep(args) -> int:
    """--sweep: every (model, T) point's variants, the T = 1 pieces; the JSON is rewritten after each point."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    rows, pieces, best = [], [], []
    data = {"provenance": provenance(), "tolerance": TOL, "sweep": rows, "pieces": pieces, "best": best,
            "timing": "calibration.timing.measure: median per call over CUDA-graph batches, inputs rotated past "
                      "2 x L2; weight_bw_gbps: touched experts' weight bytes / time"}
    t0 = time.perf_counter()
    for name, m in (CPU_MODELS if args.cpu else MODELS).items():
        for t in CPU_TOKENS if args.cpu else TOKENS:
            point_rows, point_pieces = sweep_point(name, m, t, args.cpu)
            rows += point_rows
            pieces += point_pieces
            best[:] = best_rows(rows)
            data["elapsed_s"] = time.perf_counter() - t0
            write_json_atomic(args.out, data)  # after each point: a killed run keeps its part
    print(f"\n{'model':18s} {'T':>5s} {'default us':>10s} {'best us':>9s} {'speedup':>7s}  "
          "best (bm, bn, bk, warps, stages)")
    for b in best:
        c = b["best_config"]
        print(f"{b['model']:18s} {b['t']:5d} {b['default_us'] or float('nan'):10.1f} {b['best_us']:9.1f} "
              f"{b['speedup'] or float('nan'):7.2f}  ({c['block_m']}, {c['block_n']}, {c['block_k']}, "
              f"{c['num_warps']}, {c['num_stages']})")
    failed = [r for r in rows if not r["ok"]]
    print(f"sweep: {len(rows) - len(failed)}/{len(rows)} variants ok, {data['elapsed_s']:.0f} s; wrote {args.out}")
    return 1 if any(r["default"] for r in failed) else 0  # candidates may fail; the table's own config must not


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write (atomically, after each model)")
    parser.add_argument("--cpu", action="store_true", help="Triton CPU interpreter, tiny shapes (a dry run)")
    parser.add_argument("--sweep", action="store_true", help="time moe_ffn under candidate tile configs instead")
    args = parser.parse_args(argv)
    if args.cpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    if not args.cpu and not torch.cuda.is_available():
        print("check_moe: no CUDA GPU; run it on the GPU machine or pass --cpu", file=sys.stderr)
        return 2
    if args.sweep:
        return run_sweep(args)
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
