"""GPU check of the engine variant `best` (calibration/engine_variants/best.py): its logits against the triton
engine's and a float32 forward of the same weights, and its per-shape kernel choices against the simulator's.

Each model is cut to 2 layers (widths kept). Both engines prefill b x 37 prompts (b = 2, 8) and decode 3 steps
through their CUDA graphs, the triton engine fed the best engine's tokens; errors are ||x - ref|| / ||ref|| per
sequence and position (bf16 tolerance of calibration/engine_check.py). Every shape the best engine dispatched is
looked up in the simulated op list of the same requests (simulator.ops, shapes as simulator.dispatch sees them)
and its stack compared: they must be the same shapes with the same choices.

    python3 -m benchmarks.check_best --out check_best.json
"""
from __future__ import annotations

import argparse

from calibration.engine_check import MOE_FLIP_MAX, MOE_FLIP_SHARE, TOL

MODELS = ("llama-3.1-8b", "falcon-7b", "olmoe-1b-7b")  # GQA 4 hd 128, MQA hd 64, MoE
BATCHES, PROMPT, STEPS = (2, 8), 37, 3


def simulated_choices(arch, rule, b: int, p: int, steps: int, t: int = 1) -> dict[tuple, str]:
    """(op class, *shape as the engine's Chooser keys it) -> stack, of every dispatched op of a prefill of b x p
    and `steps` decode steps after it, from the simulator's op lists."""
    from simulator.dispatch import dispatch_shape, dispatched
    from simulator.ops import decode_ops, prefill_ops

    ops = prefill_ops(arch, b, p, t) + [op for c in range(p + 1, p + steps + 1) for op in decode_ops(arch, b, c, t)]
    out = {}
    for op in ops:
        if dispatched(op.op_class, op.shape):
            shape = dispatch_shape(op.op_class, op.shape)
            out[(op.op_class, *(int(v) for v in shape.values()))] = rule.choose(op.op_class, op.shape)
    return out


def compare_choices(engine_choices: dict[tuple, str], simulated: dict[tuple, str]) -> dict:
    """Shapes the engine dispatched that the simulator lists (and whether the stacks agree), and the others."""
    common = sorted(set(engine_choices) & set(simulated))
    return {"engine_shapes": len(engine_choices), "simulated_shapes": len(simulated), "common": len(common),
            "disagree": [list(k) for k in common if engine_choices[k] != simulated[k]],
            "engine_only": [list(k) for k in sorted(set(engine_choices) - set(simulated))],
            "simulated_only": [list(k) for k in sorted(set(simulated) - set(engine_choices))],
            "vendor_share": sum(v != "triton" for v in engine_choices.values()) / max(len(engine_choices), 1)}


def check_one(arch, device: str = "cuda", gpu: str | None = None) -> tuple[list[float], list[float], dict]:
    """Relative errors against the triton engine and against float32, and the comparison of the choices."""
    import torch

    from calibration.engine.reference import reference_logits
    from calibration.engine.runner import Engine
    from calibration.engine_variants.best import make_engine

    dtype = torch.bfloat16
    ref_engine = Engine(arch, "triton", 1, 0, None, device, dtype, seed=7)
    best = make_engine(arch, device=device, dtype=dtype, gpu=gpu)
    best.model.load_state_dict(ref_engine.model.state_dict())
    state = {k: v.clone() for k, v in best.model.state_dict().items()}
    vs_triton, vs_fp32, simulated = [], [], {}
    for b in BATCHES:
        prompt = torch.randint(0, arch.vocab, (b, PROMPT), generator=torch.Generator().manual_seed(b)).to(device)
        got, want, seq = [], [], [prompt]
        for e in (best, ref_engine):
            e.prepare(b, PROMPT + STEPS + 1)
            e.capture(PROMPT + 1, PROMPT + STEPS)
        got.append(best.prefill(prompt).float().clone())
        want.append(ref_engine.prefill(prompt).float().clone())
        for _ in range(STEPS):
            seq.append(best.tokens.clone()[:, None])
            ref_engine.tokens.copy_(best.tokens)
            got.append(best.step().float().clone())
            want.append(ref_engine.step().float().clone())
        ref = reference_logits(arch, state, torch.cat(seq, 1))[:, PROMPT - 1:]  # (B, STEPS + 1, V)
        for i, (g, w) in enumerate(zip(got, want)):  # one error per sequence
            vs_triton += ((g - w).norm(dim=-1) / w.norm(dim=-1)).tolist()
            vs_fp32 += ((g - ref[:, i]).norm(dim=-1) / ref[:, i].norm(dim=-1)).tolist()
        simulated |= simulated_choices(arch, best.chooser.rule, b, PROMPT, STEPS)
    return vs_triton, vs_fp32, compare_choices(best.chooser.choices, simulated)


def passed(arch, errs: list[float]) -> bool:
    """Within bf16 tolerance (an MoE model may flip a near-tie expert for a few sequences)."""
    share_over = sum(e > TOL for e in errs) / len(errs)
    return max(errs) <= TOL or (arch.is_moe and max(errs) <= MOE_FLIP_MAX and share_over <= MOE_FLIP_SHARE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the results (with provenance)")
    ap.add_argument("--models", default=",".join(MODELS), help="catalog names to check")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a dry run (Triton interpreter)")
    ap.add_argument("--gpu", help="GPU whose table the best engine dispatches by (default: detected)")
    args = ap.parse_args()

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from simulator.catalog import get_arch

    rows, ok = [], True
    for name in args.models.split(","):
        arch = get_arch(name).with_(n_layers=2)
        try:
            vs_triton, vs_fp32, choices = check_one(arch, args.device, args.gpu)
        except Exception as e:  # noqa: BLE001 - a failing model is reported, the others still run
            rows.append({"arch": name, "error": f"{type(e).__name__}: {e}"})
            ok = False
            print(f"{name:20s} ERROR {type(e).__name__}: {e}", flush=True)
            write_json_atomic(args.out, {"results": rows, "passed": ok, "provenance": provenance()})
            continue
        good = passed(arch, vs_triton) and passed(arch, vs_fp32) and not choices["disagree"] \
            and not choices["engine_only"]
        ok &= good
        rows.append({"arch": name, "max_rel_err_vs_triton": max(vs_triton), "max_rel_err_vs_fp32": max(vs_fp32),
                     "tolerance": TOL, "choices": choices, "passed": good})
        print(f"{name:20s} vs triton {max(vs_triton):.2e}, vs fp32 {max(vs_fp32):.2e}; {choices['common']} of "
              f"{choices['engine_shapes']} dispatched shapes in the simulated op list, {len(choices['disagree'])} "
              f"disagree, vendor share {choices['vendor_share']:.0%}: {'ok' if good else 'FAIL'}", flush=True)
        write_json_atomic(args.out, {"results": rows, "passed": ok, "provenance": provenance()})  # each model
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
