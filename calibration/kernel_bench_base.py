"""What calibration/kernel_bench.py times and how: the shapes, targets and launch-config variants, the two timing
methods, input rotation past L2, NaN-poisoned outputs and checks against a float32 reference, the copy and matmul
ceilings."""
from __future__ import annotations

import contextlib
import json
import sys

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
