"""Check, then time, our Triton kernels against torch's on a CUDA GPU; write JSON with provenance.

    python3 benchmarks/bench_kernels.py --out benchmarks/results/kernels_h100.json [--sweep]

Every kernel is first checked at realistic sizes on fresh random inputs against a float32 torch
reference (outputs poisoned with NaN before the run).  Then ours and torch's are timed in the same
process, bf16, by two methods (see `_time`): `triton.testing.do_bench` (median, L2 flushed before each
call) and `do_bench_cudagraph` (calls back to back in a CUDA graph, as the engine's decode runs).
Weights and KV caches rotate among copies totalling > 4x L2, so no timed call reads them from cache.
`--sweep` also times the launch-config variants below, the data behind `kernels/configs.py`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda"          # a CPU smoke run of this script (interpreter, tiny shapes) sets "cpu"

# Decode-like GEMM shapes (N, K) of Llama-3.1 layers at t = 1: qkv, o, gate+up fused, down
# (plus one 70B layer at t = 8, where the N tiles alone cannot fill the GPU: the split-K case).
DECODE_GEMMS = {
    "8b.qkv": (6144, 4096), "8b.o": (4096, 4096), "8b.gate_up": (28672, 4096), "8b.down": (4096, 14336),
    "70b.qkv": (10240, 8192), "70b.o": (8192, 8192), "70b.gate_up": (57344, 8192), "70b.down": (8192, 28672),
    "70b.qkv.t8": (1280, 8192),
}
DECODE_MS = (1, 16, 64)
SWEEP_EXTRA_MS = (32, 128, 256)           # other small-M buckets: swept on two layers, not in the table
PREFILL = [(b, s) for s in (1024, 4096, 16384) for b in (1, 8)]          # (batch, sequence)
DECODE = [(b, c) for b in (1, 16, 64) for c in (1024, 8192, 32768)]       # (batch, context)
HQ, HKV, D = 32, 8, 128
TARGETS = {"gemm_large": 0.90, "gemm_decode": 0.85, "prefill_attn": 0.80, "decode_attn_bw": 0.70}
L2_ROTATE_BYTES = 200 * 2**20
TOL_BF16 = 1e-2
METHODS = ("do_bench", "graph")


def _variants():
    """Launch-config variants timed by --sweep (data, not code paths)."""
    from kernels.configs import AttentionConfig as A, DecodeConfig as DC, GemmConfig as G

    return {
        "gemm_large": [G(128, 256, 64, 8, 1, 8, 3, True), G(128, 128, 64, 8, 1, 4, 4, True),
                       G(128, 128, 64, 8, 1, 8, 4, True), G(128, 128, 64, 8, 1, 4, 5, True),
                       G(128, 256, 64, 8, 1, 8, 4, True), G(128, 128, 64, 8, 1, 4, 3)],
        "gemm_m16": [G(16, 64, 512, 1, 1, 4, 3), G(16, 32, 512, 1, 1, 4, 3), G(16, 64, 256, 1, 1, 4, 4),
                     G(16, 64, 512, 1, 2, 4, 3), G(16, 32, 512, 1, 2, 4, 3)],
        "gemm_m32": [G(32, 64, 512, 1, 1, 4, 3), G(32, 64, 256, 1, 1, 4, 4), G(32, 32, 512, 1, 1, 4, 3)],
        "gemm_m64": [G(64, 64, 128, 1, 1, 4, 5), G(64, 32, 256, 1, 1, 4, 4), G(64, 64, 128, 1, 1, 4, 4),
                     G(64, 32, 128, 1, 1, 4, 5)],
        "gemm_m128": [G(64, 64, 128, 8, 1, 4, 5), G(64, 128, 128, 8, 1, 4, 4), G(128, 64, 64, 8, 1, 4, 5),
                      G(64, 32, 256, 8, 1, 4, 4)],
        "gemm_m256": [G(128, 128, 64, 8, 1, 8, 4), G(64, 64, 128, 8, 1, 4, 5), G(128, 128, 64, 8, 1, 4, 4, True),
                      G(64, 128, 128, 8, 1, 4, 4), G(128, 64, 128, 8, 1, 4, 4)],
        "prefill": [A(128, 128, 8, 3), A(128, 64, 8, 3), A(64, 64, 4, 3)],
        # decode attention: the shipped config first, then run 3's serial merge, run 2's two-pass form,
        # the two-pass block merge, more splits per SM (128 keys x 3 stages take 139 KB of shared memory,
        # one program per SM at a time: the 2-per-SM variants with 2 stages or 64 keys fit two or three),
        # then tiles / warps / stages
        "decode": [DC(), DC(merge_block=1), DC(merge="two_pass", merge_block=1), DC(merge="two_pass"),
                   DC(programs_per_sm=2), DC(programs_per_sm=4, min_chunk=128), DC(merge="two_pass", programs_per_sm=2),
                   DC(num_stages=2, programs_per_sm=2), DC(block_n=64, num_stages=3, programs_per_sm=2, min_chunk=128),
                   DC(block_n=64, num_stages=4, programs_per_sm=2, min_chunk=128), DC(block_n=64, num_stages=4),
                   DC(block_n=64, num_stages=3), DC(num_stages=2), DC(num_stages=4), DC(num_warps=8),
                   DC(block_n=256, num_warps=8, num_stages=2)],
    }


def _gemm_group(m: int) -> str:
    return "gemm_large" if m > 256 else f"gemm_m{max(16, 1 << (m - 1).bit_length())}"


# ----------------------------------------------------------------------------------------- helpers
def _stats(times_ms: list) -> dict:
    import statistics

    q = statistics.quantiles(times_ms, n=10) if len(times_ms) > 1 else [times_ms[0]] * 9
    return {"median_us": statistics.median(times_ms) * 1e3, "p10_us": q[0] * 1e3, "p90_us": q[-1] * 1e3,
            "min_us": min(times_ms) * 1e3, "n": len(times_ms)}


def _time(fn, methods=METHODS, rep_ms: int = 100) -> dict:
    """Time fn by each method, in microseconds (median, p10, p90, min).

    do_bench: host-launched, L2 flushed (256 MB zeroed) before each call, one event pair per call.
    graph: do_bench_cudagraph, back-to-back calls captured in one CUDA graph (no launch gaps, no
    flush; callers rotate inputs past L2), each sample the mean call time of one replay.
    """
    from triton.testing import do_bench, do_bench_cudagraph

    import torch

    out = {}
    if "do_bench" in methods:
        out["do_bench"] = _stats(do_bench(fn, warmup=min(25, rep_ms), rep=rep_ms, return_mode="all"))
    if "graph" in methods:
        with torch.cuda.stream(torch.cuda.Stream()):            # capture needs a side stream
            out["graph"] = _stats(do_bench_cudagraph(fn, rep=min(20, rep_ms), return_mode="all"))
    return out
def _rotating(make, nbytes: int):
    """A function returning the next of k input sets, k such that k * nbytes > L2_ROTATE_BYTES."""
    sets = [make() for _ in range(max(1, -(-L2_ROTATE_BYTES // max(nbytes, 1))))]
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % len(sets)
        return sets[state["i"]]
    return nxt


@contextlib.contextmanager
def _poisoned():
    """torch.empty / empty_like return NaN-filled memory inside, so unwritten outputs show."""
    import torch

    empty, empty_like = torch.empty, torch.empty_like
    torch.empty = lambda *s, **kw: empty(*s, **kw).fill_(float("nan"))
    torch.empty_like = lambda x, **kw: empty_like(x, **kw).fill_(float("nan"))
    try:
        yield
    finally:
        torch.empty, torch.empty_like = empty, empty_like


@contextlib.contextmanager
def _guard(checks: list, what: str):
    """Record an exception inside as a failed check and carry on with the next case (one GPU call)."""
    import torch

    try:
        yield
    except Exception as exc:   # recorded in the JSON and the exit status, never hidden
        checks.append({"kernel": what, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        print(f"ERROR {what}: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        torch.cuda.empty_cache()


def _rel_err(out, ref) -> float:
    out = out.float()
    if not bool(out.isfinite().all()):
        return float("inf")
    return float((out - ref).norm() / ref.norm())


def _check(checks: list, kernel: str, shape: dict, out, ref) -> None:
    err = _rel_err(out, ref)
    checks.append({"kernel": kernel, "shape": shape, "rel_err": err, "ok": err < TOL_BF16})
    print(f"check {kernel:18s} {json.dumps(shape):60s} rel_err {err:.2e} {'ok' if err < TOL_BF16 else 'FAIL'}")


def _randn(*shape):
    import torch

    return torch.randn(*shape, device=DEVICE, dtype=torch.bfloat16)


# ------------------------------------------------------------------------------------------ ceilings
def ceilings() -> dict:
    """Device-to-device copy bandwidth (bytes read + written) and torch's bf16 8192^3 FLOP/s."""
    import torch

    n = 2**30 // 2                                                         # 1 GiB of bf16
    src, dst = _randn(n), torch.empty(n, device="cuda", dtype=torch.bfloat16)
    t_copy = _time(lambda: dst.copy_(src), methods=("do_bench",))["do_bench"]
    a, b = _randn(8192, 8192), _randn(8192, 8192)
    t_mm = _time(lambda: torch.matmul(a, b), methods=("do_bench",))["do_bench"]
    return {"copy_bw_bytes_s": 2 * n * 2 / (t_copy["median_us"] * 1e-6), "copy_bytes": 4 * n,
            "matmul_flops": 2 * 8192**3 / (t_mm["median_us"] * 1e-6)}


# --------------------------------------------------------------------------------------------- GEMM
def gemm_cases():
    """(name, m, n, k, layout, target kind): the 8192^3 product in both layouts, then decode layers."""
    cases = [("8192^3.nk", 8192, 8192, 8192, "nk", "gemm_large"), ("8192^3.kn", 8192, 8192, 8192, "kn", "gemm_large")]
    for name, (n, k) in DECODE_GEMMS.items():
        for m in DECODE_MS:
            cases.append((f"{name}.m{m}", m, n, k, "nk", "gemm_decode"))
    return cases


def _gemm_inputs(m, n, k, layout):
    return _randn(m, k), (_randn(n, k) if layout == "nk" else _randn(k, n))


def gemm_rows(checks: list, rows: list, sweep: list | None, copy_bw: float) -> None:
    """Check, then time ours vs torch.matmul for each GEMM case (and the variants with --sweep)."""
    import torch

    from kernels.gemm import gemm_bytes, gemm_flops, matmul, matmul_ref

    def torch_mm(a, w, layout):
        return torch.matmul(a, w.t()) if layout == "nk" else torch.matmul(a, w)

    for name, m, n, k, layout, kind in gemm_cases():
        with _guard(checks, f"gemm {name}"):
            shape = {"m": m, "n": n, "k": k, "layout": layout}
            a, w = _gemm_inputs(m, n, k, layout)
            with _poisoned():
                out = matmul(a, w, w_layout=layout)
            _check(checks, "gemm", shape, out, matmul_ref(a, w, layout))
            nbytes = gemm_bytes(m, n, k)
            nxt = _rotating(lambda: _gemm_inputs(m, n, k, layout), nbytes)
            t_ours = _time(lambda: matmul(*nxt(), w_layout=layout))
            t_torch = _time(lambda: torch_mm(*nxt(), layout))
            rows.append(_row("gemm", name, shape, kind, t_ours, t_torch, flops=gemm_flops(m, n, k),
                             nbytes=nbytes, copy_bw=copy_bw))
            if sweep is not None and layout == "nk":
                _sweep_gemm(sweep, name, m, n, k, nxt, t_torch)
    if sweep is not None:                            # the other small-M buckets, on two layers
        for name in ("8b.o", "70b.gate_up"):
            n, k = DECODE_GEMMS[name]
            for m in SWEEP_EXTRA_MS:
                nxt = _rotating(lambda: _gemm_inputs(m, n, k, "nk"), gemm_bytes(m, n, k))
                t_torch = _time(lambda: torch_mm(*nxt(), "nk"), methods=("graph",))
                _sweep_gemm(sweep, f"{name}.m{m}", m, n, k, nxt, t_torch)


def _sweep_gemm(sweep: list, name: str, m: int, n: int, k: int, nxt, t_torch: dict) -> None:
    from kernels.gemm import matmul

    for cfg in _variants()[_gemm_group(m)]:
        with _guard(sweep, f"gemm {name} {cfg}"):
            t = _time(lambda: matmul(*nxt(), config=cfg), methods=("graph",))["graph"]
            sweep.append({"op": "gemm", "name": name, "shape": {"m": m, "n": n, "k": k}, "config": asdict(cfg),
                          **t, "torch_median_us": t_torch["graph"]["median_us"]})


def _row(op, name, shape, kind, t_ours, t_torch=None, *, flops=None, nbytes=None, copy_bw=None) -> dict:
    """One result: both timing methods; speed vs torch, achieved TFLOP/s and copy-bandwidth fraction."""
    row = {"op": op, "name": name, "shape": shape, "target_kind": kind, "target": TARGETS[kind],
           "ours": t_ours, "torch": t_torch}
    for meth in METHODS:
        ours_s = t_ours[meth]["median_us"] * 1e-6
        res = {}
        if t_torch is not None:
            res["speed_vs_torch"] = t_torch[meth]["median_us"] * 1e-6 / ours_s
        if flops is not None:
            res["ours_tflops"] = flops / ours_s / 1e12
        if nbytes is not None:
            res["ours_bw_frac"] = nbytes / ours_s / copy_bw
            if t_torch is not None:
                res["torch_bw_frac"] = nbytes / (t_torch[meth]["median_us"] * 1e-6) / copy_bw
        res["met"] = (res["ours_bw_frac"] if kind == "decode_attn_bw" else res["speed_vs_torch"]) >= TARGETS[kind]
        row[meth] = res
    return row


# ---------------------------------------------------------------------------------- prefill attention
def _sdpa_flash(q, k, v):
    """(causal SDPA call on the flash backend, how GQA is passed): enable_gqa=True, else K/V expanded."""
    import torch.nn.functional as F

    try:
        F.scaled_dot_product_attention(q[:, :, :128], k[:, :, :128], v[:, :, :128], is_causal=True, enable_gqa=True)
        return (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)), "enable_gqa"
    except RuntimeError:
        ke, ve = (x.repeat_interleave(q.shape[1] // k.shape[1], dim=1) for x in (k, v))   # outside the timing
        return (lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True)), "repeat_interleave"


def prefill_rows(checks: list, rows: list, sweep: list | None) -> None:
    """Check (fp32 SDPA, efficient backend) then time ours vs SDPA's flash backend, causal."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from kernels.prefill_attention import prefill_attention, prefill_attention_flops

    for d in (64, 80, 96):                        # the other head dims (80, 96: padded blocks), checked only
        q, k, v = _randn(1, HQ, 1000, d), _randn(1, HKV, 1000, d), _randn(1, HKV, 1000, d)
        with _poisoned():
            out = prefill_attention(q, k, v, causal=True)
        kf, vf = (x.float().repeat_interleave(HQ // HKV, dim=1) for x in (k, v))
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            ref = F.scaled_dot_product_attention(q.float(), kf, vf, is_causal=True)
        _check(checks, "prefill_attention", {"b": 1, "h": HQ, "kv_h": HKV, "s": 1000, "d": d, "causal": True}, out, ref)
    for b, s in PREFILL:
        with _guard(checks, f"prefill_attention b{b}.s{s}"):
            shape = {"b": b, "h": HQ, "kv_h": HKV, "s": s, "d": D, "causal": True}
            q, k, v = _randn(b, HQ, s, D), _randn(b, HKV, s, D), _randn(b, HKV, s, D)
            for causal in ((False, True) if (b, s) == (1, 4096) else (True,)):    # causal last: `out` below
                with _poisoned():
                    out = prefill_attention(q, k, v, causal=causal)
                kf, vf = (x.float().repeat_interleave(HQ // HKV, dim=1) for x in (k, v))
                with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):                  # fp32, never materialised
                    ref = F.scaled_dot_product_attention(q.float(), kf, vf, is_causal=causal)
                _check(checks, "prefill_attention", {**shape, "causal": causal}, out, ref)
                del kf, vf, ref
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                sdpa, gqa_mode = _sdpa_flash(q, k, v)
                _check(checks, "sdpa_flash_vs_ours", shape, sdpa(), out.float())
                t_torch = _time(sdpa)
            t_ours = _time(lambda: prefill_attention(q, k, v, causal=True))
            flops = prefill_attention_flops(b, HQ, s, s, D, True)
            rows.append(_row("prefill_attn", f"b{b}.s{s}", shape, "prefill_attn", t_ours, t_torch, flops=flops))
            rows[-1]["sdpa_gqa"] = gqa_mode
            if sweep is not None and s >= 4096:
                for cfg in _variants()["prefill"]:
                    t = _time(lambda: prefill_attention(q, k, v, causal=True, config=cfg), methods=("graph",))["graph"]
                    sweep.append({"op": "prefill_attn", "name": f"b{b}.s{s}", "shape": shape, "config": asdict(cfg),
                                  **t, "torch_median_us": t_torch["graph"]["median_us"]})
            del q, k, v


# ----------------------------------------------------------------------------------- decode attention
def _decode_launch(cfg, b: int, c: int, d: int = D) -> tuple:
    """What a decode config launches at (b, c): variants with equal keys run the same kernels."""
    from kernels import configs
    from kernels.decode_attention import _merge_block
    from kernels.gemm import sm_count

    import torch

    splits = configs.decode_num_splits(b, HKV, c, sm_count(torch.device(DEVICE)), cfg)[0]
    merge = (cfg.merge, _merge_block(cfg, splits, HQ // HKV, d, cfg.num_warps)) if splits > 1 else None
    return splits, cfg.block_n, cfg.num_warps, cfg.num_stages, merge


def _decode_graph_check(checks: list) -> None:
    """Each merge mode captured in a CUDA graph, replayed on two fresh input sets (copied into the
    captured tensors): checks the arrival counters' reset and the device-side lengths."""
    import torch

    from kernels.configs import DecodeConfig
    from kernels.decode_attention import decode_attention, decode_attention_ref

    b, c = 2, 8192
    for merge in ("fused", "two_pass"):
        cfg = DecodeConfig(merge=merge)
        q, kc, vc = _randn(b, HQ, D), _randn(b, HKV, c, D), _randn(b, HKV, c, D)
        lens = torch.full((b,), c, device=DEVICE, dtype=torch.int32)
        with torch.cuda.stream(torch.cuda.Stream()):
            decode_attention(q, kc, vc, lens, config=cfg)                   # compile outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = decode_attention(q, kc, vc, lens, config=cfg)
            for _ in range(2):
                for x in (q, kc, vc):
                    x.copy_(torch.randn_like(x))
                lens.copy_(torch.randint(1, c + 1, (b,), device=DEVICE, dtype=torch.int32))
                out.fill_(float("nan"))
                graph.replay()
                torch.cuda.synchronize()
                _check(checks, "decode_attention", {"b": b, "c": c, "d": D, "merge": merge, "graph_replay": True},
                       out, decode_attention_ref(q, kc, vc, lens))


def decode_rows(checks: list, rows: list, sweep: list | None, copy_bw: float) -> None:
    """Check (random lengths; with --sweep every variant too, and graph replays) then time ours at full
    length; bandwidth = KV bytes / time vs copy.  Variants that launch what an earlier one did are skipped."""
    import torch

    from kernels.configs import decode_attention_config
    from kernels.decode_attention import decode_attention, decode_attention_bytes, decode_attention_ref

    for d in (64, 80, 96, 256):                   # the other head dims (256: the narrow config), checked only
        q, kc, vc = _randn(4, HQ, d), _randn(4, HKV, 3000, d), _randn(4, HKV, 3000, d)
        lens = torch.randint(1, 3001, (4,), device=DEVICE, dtype=torch.int32)
        with _poisoned():
            out = decode_attention(q, kc, vc, lens)
        _check(checks, "decode_attention", {"b": 4, "h": HQ, "kv_h": HKV, "c": 3000, "d": d, "lengths": "random"},
               out, decode_attention_ref(q, kc, vc, lens))
    if sweep is not None:
        with _guard(checks, "decode_attention graph replay"):
            _decode_graph_check(checks)
    for b, c in DECODE:
        with _guard(checks, f"decode_attention b{b}.c{c}"):
            shape = {"b": b, "h": HQ, "kv_h": HKV, "c": c, "d": D}
            variants, seen = [], {_decode_launch(decode_attention_config(D), b, c)}
            for cfg in _variants()["decode"] if sweep is not None else []:
                if _decode_launch(cfg, b, c) not in seen:
                    seen.add(_decode_launch(cfg, b, c))
                    variants.append(cfg)
            q, kc, vc = _randn(b, HQ, D), _randn(b, HKV, c, D), _randn(b, HKV, c, D)
            lens = torch.randint(1, c + 1, (b,), device=DEVICE, dtype=torch.int32)
            lens[0] = c
            ref = decode_attention_ref(q, kc, vc, lens)
            for cfg in [None, *variants]:
                with _poisoned():
                    out = decode_attention(q, kc, vc, lens, config=cfg)
                _check(checks, "decode_attention", {**shape, "lengths": "random", "config": cfg and asdict(cfg)}, out, ref)
            del q, kc, vc, out, ref
            full = torch.full((b,), c, device=DEVICE, dtype=torch.int32)
            nbytes = decode_attention_bytes([c] * b, HKV, D)
            nxt = _rotating(lambda: (_randn(b, HQ, D), _randn(b, HKV, c, D), _randn(b, HKV, c, D)), nbytes)
            t_ours = _time(lambda: decode_attention(*nxt(), full))
            rows.append(_row("decode_attn", f"b{b}.c{c}", shape, "decode_attn_bw", t_ours, nbytes=nbytes, copy_bw=copy_bw))
            rows[-1].update(kv_bytes=nbytes, splits=_decode_launch(decode_attention_config(D), b, c)[0])
            for cfg in variants:
                with _guard(sweep, f"decode_attn b{b}.c{c} {cfg}"):
                    t = _time(lambda: decode_attention(*nxt(), full, config=cfg), methods=("graph",))["graph"]
                    sweep.append({"op": "decode_attn", "name": f"b{b}.c{c}", "shape": shape, "config": asdict(cfg),
                                  "splits": _decode_launch(cfg, b, c)[0], **t,
                                  "bw_frac": nbytes / (t["median_us"] * 1e-6) / copy_bw})
            del nxt


# ------------------------------------------------------------------------------------------- output
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
    sys.path.insert(0, str(ROOT))
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
