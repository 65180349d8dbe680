"""The kernels calibration/kernel_bench.py checks and times, one section each: GEMM, prefill attention, decode
attention (ours against torch's, and with --sweep the launch-config variants)."""
from __future__ import annotations

from dataclasses import asdict

from calibration import kernel_bench_base as base
from calibration.kernel_bench_base import (_check, _gemm_group, _guard, _poisoned, _randn, _rotating, _time,
                                           _variants, D, DECODE, DECODE_GEMMS, DECODE_MS, HKV, HQ, METHODS, PREFILL,
                                           SWEEP_EXTRA_MS, TARGETS)


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

    splits = configs.decode_num_splits(b, HKV, c, sm_count(torch.device(base.DEVICE)), cfg)[0]
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
        lens = torch.full((b,), c, device=base.DEVICE, dtype=torch.int32)
        with torch.cuda.stream(torch.cuda.Stream()):
            decode_attention(q, kc, vc, lens, config=cfg)                   # compile outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = decode_attention(q, kc, vc, lens, config=cfg)
            for _ in range(2):
                for x in (q, kc, vc):
                    x.copy_(torch.randn_like(x))
                lens.copy_(torch.randint(1, c + 1, (b,), device=base.DEVICE, dtype=torch.int32))
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
        lens = torch.randint(1, 3001, (4,), device=base.DEVICE, dtype=torch.int32)
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
            lens = torch.randint(1, c + 1, (b,), device=base.DEVICE, dtype=torch.int32)
            lens[0] = c
            ref = decode_attention_ref(q, kc, vc, lens)
            for cfg in [None, *variants]:
                with _poisoned():
                    out = decode_attention(q, kc, vc, lens, config=cfg)
                _check(checks, "decode_attention", {**shape, "lengths": "random", "config": cfg and asdict(cfg)}, out, ref)
            del q, kc, vc, out, ref
            full = torch.full((b,), c, device=base.DEVICE, dtype=torch.int32)
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
