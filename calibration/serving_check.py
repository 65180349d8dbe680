"""GPU checks of the continuous-batching engine variant, before its serving runs are trusted.

1. kernels.rope_slots against its float64 reference on the GPU (rotated q, k and the cache rows it writes).
2. Per architecture (cut to 2 layers, widths kept): one prompt prefilled into slot 2 of a SlotEngine while slots
   0, 1 and 3 hold prompts of other lengths, then decode steps through the CUDA graphs, each slot at its own
   position; slot 2's logits at every step against the static engine (batch 1, same weights) and against a plain
   float32 forward of the same weights, as ||got - ref|| / ||ref|| (bf16 tolerance), and its argmax tokens.

    python3 -m calibration.serving_check --out serving_check.json [--models a,b] [--device cpu]
"""
from __future__ import annotations

import argparse

TOL = 3e-2  # relative L2 error of bf16 logits, as calibration/engine_check.py
MODELS = "llama-3.2-1b,llama-3.1-8b,qwen2.5-7b"
KERNEL_CASES = ((True, 32, 8, 128), (True, 32, 8, 64), (True, 28, 4, 128), (False, 16, 16, 96))  # rope, hq, hkv, d


def check_kernel(device: str) -> list[dict]:
    """rope_slots (Triton on the GPU, torch ops on the CPU) against rope_slots_ref, per KERNEL_CASES."""
    import torch

    from calibration.engine_variants.slot_engine import slot_rope
    from kernels.rope_slots import rope_slots_ref

    impl = slot_rope("triton" if device == "cuda" else "torch")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = []
    for rope, hq, hkv, d in KERNEL_CASES:
        g = torch.Generator(device="cpu").manual_seed(hq * d)
        t, b, s_max = 40, 6, 300
        qkv = torch.randn(t, hq + 2 * hkv, d, generator=g).to(device, dtype)
        cos, sin = (torch.randn(s_max, d, generator=g).to(device, dtype) for _ in range(2)) if rope else (None, None)
        slot = torch.randint(0, b, (t,), generator=g).to(device)
        pos = torch.randperm(s_max, generator=g)[:t].to(device)  # distinct rows: no write order to depend on
        caches = [torch.zeros(b, hkv, s_max, d, dtype=dtype, device=device) for _ in range(4)]
        ref = rope_slots_ref(qkv, cos, sin, caches[2], caches[3], slot, pos)
        out = qkv.clone()
        impl(out, cos, sin, caches[0], caches[1], slot, pos)
        errs = [float((a.double() - r.double()).norm() / r.double().norm())
                for a, r in ((out, ref), (caches[0], caches[2]), (caches[1], caches[3]))]
        rows.append({"rope": rope, "hq": hq, "hkv": hkv, "d": d, "tokens": t, "rel_err_qkv_k_v": errs,
                     "passed": max(errs) <= 1e-2})
    return rows


def check_engine(name: str, device: str, steps: int = 4) -> dict:
    """Slot 2 of a continuous-batching engine against the static engine and the float32 forward (docstring)."""
    import torch

    from calibration.engine.reference import reference_logits
    from calibration.engine.runner import Engine
    from calibration.engine_variants.slot_engine import SlotEngine
    from simulator.catalog import get_arch

    arch = get_arch(name).with_(n_layers=2)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    static = Engine(arch, "triton" if device == "cuda" else "torch", device=device, dtype=dtype, seed=7)
    g = torch.Generator().manual_seed(11)
    p, others = 100, (37, 150, 9)
    prompt = torch.randint(0, arch.vocab, (1, p), generator=g).to(device)
    static.prepare(1, p + steps + 1)
    static.capture(p + 1, p + steps)
    ref_static = [static.prefill(prompt).float().clone()]
    seq = [prompt]
    for _ in range(steps):
        seq.append(static.tokens.clone()[:, None])
        ref_static.append(static.step().float().clone())
    ref_f32 = reference_logits(arch, static.model.state_dict(), torch.cat(seq, 1))[0, p - 1:]  # (steps + 1, V)
    slots = SlotEngine(arch, 4, 256, engine=static)
    slots.capture([p, *others], 256)
    lengths = {0: others[0], 1: others[1], 3: others[2]}
    for s, n in lengths.items():
        slots.prefill(s, torch.randint(0, arch.vocab, (n,), generator=g).to(device))
    got = [slots.prefill(2, prompt[0]).float().clone()]
    tokens_same = []
    for i in range(steps):
        tokens_same.append(bool(slots.tokens[2] == seq[i + 1][0, 0]))
        got.append(slots.decode([lengths[0] + i, lengths[1] + i, p + i, lengths[3] + i])[2:3].float().clone())
    slots.sync()
    err_static = [float((a - r).norm() / r.norm()) for a, r in zip(got, ref_static)]
    err_f32 = [float((a[0] - r).norm() / r.norm()) for a, r in zip(got, ref_f32)]
    passed = max(err_static) <= TOL and max(err_f32) <= TOL
    return {"arch": name, "n_layers": 2, "prompt": p, "other_slots": list(others), "steps": steps,
            "rel_err_vs_static": err_static, "rel_err_vs_float32": err_f32, "same_tokens_as_static": tokens_same,
            "tolerance": TOL, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    """Run both checks, print a line each, write the JSON (atomic) with provenance; exit 1 if one fails."""
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m calibration.serving_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a float32 dry run")
    args = ap.parse_args(argv)
    kernel = check_kernel(args.device)
    for r in kernel:
        print(f"rope_slots rope={r['rope']} hq={r['hq']} hkv={r['hkv']} d={r['d']}: rel err "
              f"{max(r['rel_err_qkv_k_v']):.2e} {'ok' if r['passed'] else 'FAIL'}", flush=True)
    engines = []
    for name in args.models.split(","):
        r = check_engine(name, args.device)
        engines.append(r)
        print(f"{name} slot vs static max rel err {max(r['rel_err_vs_static']):.2e}, vs float32 "
              f"{max(r['rel_err_vs_float32']):.2e}, same tokens {all(r['same_tokens_as_static'])}: "
              f"{'ok' if r['passed'] else 'FAIL'}", flush=True)
    ok = all(r["passed"] for r in kernel + engines)
    write_json_atomic(args.out, {"kernel": kernel, "engine": engines, "passed": ok, "provenance": provenance()})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
