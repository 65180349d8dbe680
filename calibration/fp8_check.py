"""GPU checks of the FP8 engine variant before it is measured: its kernels against torch references, and its
logits against the bf16 engine's.

1. `kernels.quant_fp8.quantize_rows` equals its torch reference value for value (codes and scales).
2. The w8a8 linear (per-token quantization, then `kernels.gemm_fp8.matmul_fp8` with per-channel weight scales)
   against the float32 product of the same FP8 operands (relative error under LINEAR_TOL) and against the bf16
   product of the unquantized operands (reported: e4m3's rounding).
3. The FP8-KV kernels (kernels/decode_attention_fp8.py) against their torch references.
4. One architecture, random weights: the bf16 triton engine and each FP8 variant (fp8, fp8_kv; same seed) on one
   prompt, prefill then decode steps fed the same tokens; per logit row the cosine similarity and whether the
   argmax agrees. It passes when every cosine exceeds MIN_COSINE or every argmax agrees.

    python -m calibration.fp8_check --out OUT.json [--arch llama-3.2-1b]
"""
from __future__ import annotations

import argparse
import sys

LINEAR_TOL = 2e-2  # as calibration/lowp_bench.py checks the FP8 GEMM
MIN_COSINE = 0.99
QUANT_SHAPES = ((1, 4096), (7, 14336), (300, 4096), (2048, 3072))
LINEAR_SHAPES = ((1, 6144, 4096), (16, 4096, 14336), (2048, 28672, 4096))
KV_TOL = 1e-2  # bf16 output of fp32 accumulation, as decode attention is checked
KV_SHAPES = ((1, 32, 8, 4096, 128), (16, 32, 8, 1000, 128), (4, 16, 16, 300, 64))  # b, hq, hkv, s, d


def check_quant() -> list[dict]:
    """quantize_rows against quantize_rows_ref: mismatched codes and the largest scale difference per shape."""
    import torch

    from kernels.quant_fp8 import quantize_rows, quantize_rows_ref

    out = []
    for t, k in QUANT_SHAPES:
        x = torch.randn(t, k, device="cuda", dtype=torch.bfloat16) * 3
        x[0] = 0  # an all-zero row keeps a finite scale
        q, s = quantize_rows(x)
        qr, sr = quantize_rows_ref(x)
        bad = int((q.view(torch.uint8) != qr.view(torch.uint8)).sum())
        out.append({"shape": [t, k], "codes_differing": bad, "scale_max_abs_diff": float((s - sr).abs().max()),
                    "ok": bad == 0 and bool(torch.equal(s, sr))})
    return out


def check_linear() -> list[dict]:
    """The FP8 engine's linear against the float32 product of its FP8 operands, and against bf16."""
    import torch
    import torch.nn.functional as F

    from calibration.engine.backends import get_backend
    from calibration.engine_variants.fp8 import Fp8Weight, fp8_backend
    from kernels.gemm_fp8 import matmul_fp8_ref, quantize_fp8
    from kernels.quant_fp8 import quantize_rows

    linear = fp8_backend(get_backend("triton")).linear
    out = []
    for m, n, k in LINEAR_SHAPES:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * k ** -0.5
        fw = Fp8Weight(*quantize_fp8(w, rowwise=True))
        got = linear(x, fw).float()
        qa, sa = quantize_rows(x)
        ref = matmul_fp8_ref(qa, fw.q, sa, fw.scale)
        bf = F.linear(x.float(), w.float())
        rel = float((got - ref).norm() / ref.norm())
        out.append({"shape": [m, n, k], "rel_err_vs_fp8_ref": rel, "rel_err_vs_bf16": float((got - bf).norm() / bf.norm()),
                    "ok": rel < LINEAR_TOL})
    return out


def check_kv() -> list[dict]:
    """FP8-KV kernels against their torch references: decode attention (relative error) and the rotary + cache
    write (codes differing, bf16 K and V handed to prefill attention)."""
    import torch

    from kernels.decode_attention_fp8 import (
        decode_attention_fp8,
        decode_attention_fp8_ref,
        rope_write_fp8,
        rope_write_fp8_ref,
    )

    out = []
    for b, hq, hkv, s, d in KV_SHAPES:
        kc, vc = (torch.randn(b, hkv, s, d, device="cuda").to(torch.float8_e4m3fn) for _ in range(2))
        q = torch.randn(b, hq, d, device="cuda", dtype=torch.bfloat16)
        lengths = torch.randint(1, s + 1, (b,), device="cuda", dtype=torch.int32)
        got = decode_attention_fp8(q, kc, vc, lengths, 0.5, 0.25).float()
        ref = decode_attention_fp8_ref(q, kc, vc, lengths, 0.5, 0.25)
        rel = float((got - ref).norm() / ref.norm())
        out.append({"kernel": "decode_attention_fp8", "shape": [b, hq, hkv, s, d], "rel_err": rel, "ok": rel < KV_TOL})
    b, hq, hkv, s, d = 2, 32, 8, 64, 128
    qkv = torch.randn(b, s, hq + 2 * hkv, d, device="cuda", dtype=torch.bfloat16)
    cos, sin = (torch.randn(s, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    caches = [torch.zeros(b, hkv, 256, d, device="cuda", dtype=torch.float8_e4m3fn) for _ in range(4)]
    q1, k1, v1 = rope_write_fp8(qkv, cos, sin, caches[0], caches[1], 0.5, 0.25)
    q2, k2, v2 = rope_write_fp8_ref(qkv, cos, sin, caches[2], caches[3], 0.5, 0.25)
    differ = float((caches[0].view(torch.uint8) != caches[2].view(torch.uint8)).float().mean()
                   + (caches[1].view(torch.uint8) != caches[3].view(torch.uint8)).float().mean()) / 2
    rel = max(float((x.double() - y.double()).norm() / y.double().norm()) for x, y in ((q1, q2), (k1, k2), (v1, v2)))
    out.append({"kernel": "rope_write_fp8", "shape": [b, s, hq, hkv, d], "codes_differing_share": differ,
                "rel_err_q_k_v": rel, "ok": differ < 1e-3 and rel < KV_TOL})
    return out


def check_engine(arch_name: str, variant: str = "fp8", b: int = 2, p: int = 128, steps: int = 8) -> dict:
    """Logits of the bf16 engine and an FP8 variant's (same random weights) on one prompt, in lockstep."""
    import importlib

    import torch
    import torch.nn.functional as F

    from calibration.engine.runner import Engine
    from simulator.catalog import get_arch

    make_engine = importlib.import_module(f"calibration.engine_variants.{variant}").make_engine
    arch = get_arch(arch_name)
    prompt = torch.randint(0, arch.vocab, (b, p), generator=torch.Generator().manual_seed(0)).cuda()
    logits, mem = [], []
    for build in (lambda: Engine(arch, "triton"), lambda: make_engine(arch)):
        torch.cuda.empty_cache()
        engine = build()
        mem.append(torch.cuda.memory_allocated())
        engine.prepare(b, p + steps + 1)
        rows, fed = [engine.prefill(prompt).float()], []
        for i in range(steps):
            if logits:  # the FP8 engine reads the bf16 engine's tokens: no drift on near-ties
                engine.tokens.copy_(logits[0][1][i])
            fed.append(engine.tokens.clone())
            rows.append(engine.step().float())
        logits.append((torch.stack(rows), fed))  # (steps + 1, b, vocab)
        del engine
    (ref, _), (got, _) = logits
    cos = F.cosine_similarity(got, ref, dim=-1).flatten()  # (steps + 1) x b rows
    agree = (got.argmax(-1) == ref.argmax(-1)).flatten()
    return {"variant": variant, "arch": arch.name, "b": b, "p": p, "decode_steps": steps, "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()), "argmax_agreement": float(agree.float().mean()),
            "rel_err": float((got - ref).norm() / ref.norm()), "bf16_engine_bytes": mem[0], "fp8_engine_bytes": mem[1],
            "ok": bool(cos.min() > MIN_COSINE) or bool(agree.all())}


def main(argv: list[str] | None = None) -> int:
    """Run the three checks, each recorded even when another fails; write the JSON (atomic) with provenance."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m calibration.fp8_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="llama-3.2-1b")
    args = ap.parse_args(argv)
    res: dict = {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " ")}
    checks = (("quant", check_quant), ("linear", check_linear), ("kv", check_kv),
              ("engine", lambda: check_engine(args.arch)), ("engine_kv", lambda: check_engine(args.arch, "fp8_kv")))
    for name, fn in checks:
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001 — recorded, the next check runs
            res[name] = {"error": f"{type(e).__name__}: {e}"[:500], "ok": False}
        print(name, res[name], flush=True)
        write_json_atomic(args.out, res)
    parts = [res[n] if isinstance(res[n], list) else [res[n]] for n, _ in checks]
    res["ok"] = all(r.get("ok") for part in parts for r in part)
    write_json_atomic(args.out, res)
    print("fp8 checks:", "passed" if res["ok"] else "FAILED", file=sys.stderr)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
