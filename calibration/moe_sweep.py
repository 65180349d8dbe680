"""The tile sweep of the grouped-GEMM routed experts (`python3 -m benchmarks.check_moe --sweep`).

It times moe_ffn under candidate MoeConfig variants (DECODE_VARIANTS, PREFILL_VARIANTS; the
table's own config always first) at each (model, T), each variant checked once against the reference
first (a failing or uncompilable one, e.g. shared memory overflow, is reported and skipped), and times
moe_ffn's pieces at T = 1 with the default config (align, and the torch align_ref beside it, both grouped
launches, activation, combine; GPU kernels counted for align, align_ref and the whole moe_ffn).
"""
from __future__ import annotations

import time

from calibration.moe_check import CPU_MODELS, CPU_TOKENS, MODELS, TOKENS, TOL, check, input_sets, make_inputs, timed

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
