"""`idealrt predict`: idealized runtime, memory, GPUs, cost, energy and the F(p) + g·(o − 1) form of one
request, as a readable breakdown or JSON. Every output says which time model, fit and warnings apply."""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict

from simulator.errors import UserError
from simulator.defaults import model_and_fit, resolve_arch, with_precision
from simulator.gpus import GIB, GPUSpec, get_gpu
from simulator.opclasses import OP_CLASS
from simulator.memory import smallest_fitting_layout
from idealrt.output import fmt_gib, fmt_num, fmt_s, print_json, print_lines, print_table
from simulator.pipeline import predict_parallel
from simulator.predict import Prediction
from simulator.tables import STACKS


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt predict`."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="catalog name ('idealrt models' lists them)")
    src.add_argument("--config", help="a Hugging Face config.json (file or folder)")
    parser.add_argument("--gpu", required=True, help="catalog name ('idealrt gpus' lists them)")
    parser.add_argument("--tp", type=int, default=None, help="tensor-parallel degree, across nodes above a node's "
                        "GPUs (default: smallest that fits)")
    parser.add_argument("--pp", type=int, default=None, help="pipeline stages (default: 1 with --tp, else the fewest "
                        "GPUs t x pp that fit); network figures modelled, not measured")
    parser.add_argument("--microbatches", type=int, default=1,
                        help="micro-batches the batch is split into through the stages (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="sequences in the batch (default 1)")
    parser.add_argument("--prompt", type=int, required=True, help="prompt tokens p")
    parser.add_argument("--output", type=int, required=True, help="output tokens o (the first comes from prefill)")
    parser.add_argument("--weights", default=None, help="weights served as bf16, fp8 (w8a8) or int4 (weight-only, "
                        "group 128) (default: as the model's config says; catalog models bf16)")
    parser.add_argument("--kv", default=None, help="KV cache as bf16 or fp8 (default: as the config says)")
    add_common_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def price_per_hour(text: str) -> float:
    """A price per GPU-hour: a finite number >= 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a price; give USD per GPU-hour, a number >= 0")
    return value


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options predict and sweep share: software stack, fit, price."""
    parser.add_argument("--stack", choices=STACKS, default="triton",
                        help="whose kernel timings: our Triton kernels, torch (cuBLAS/SDPA), best (per op the "
                             "faster of the two, as the engine variant best runs them), or ideal (best's padded "
                             "envelope: no engine runs it, so no fit)")
    parser.add_argument("--no-fit", action="store_true", help="raw time model, no fitted coefficients")
    parser.add_argument("--price-per-hour", type=price_per_hour, default=None, metavar="USD",
                        help="price of one GPU-hour (default: the catalog's reference price)")


def run(args: argparse.Namespace) -> int:
    """Run `idealrt predict`; returns the exit code (bad input raises UserError)."""
    from simulator.profile import DEFAULT_P_MAX, fit_profile

    arch, gpu = with_precision(resolve_arch(args.model, args.config), args.weights, args.kv), get_gpu(args.gpu)
    model, coefficients, fit_label = model_and_fit(gpu, args.stack, args.no_fit)
    pred = predict_parallel(arch, gpu, args.prompt, args.output, args.batch, args.tp, args.pp, args.microbatches,
                            model=model, coefficients=coefficients, price_per_hour_usd=args.price_per_hour)
    if not pred.fits.all():
        need = float(pred.mem_per_gpu_bytes.max()) / GIB
        t, pp = smallest_fitting_layout(arch, gpu, args.batch, args.prompt, args.output)
        raise UserError(f"--tp {pred.t} --pp {pred.pp}: {arch.name} needs {need:.1f} GiB per GPU, over the "
                        f"{gpu.mem_gib:.0f} GiB of {gpu.name}; use --tp {t} --pp {pp} ({t * pp} GPUs) or leave "
                        "--tp and --pp out")
    prof = None if pred.pp > 1 else fit_profile(arch, gpu, pred.t, args.batch, model=model, coefficients=coefficients,
                                                p_max=max(DEFAULT_P_MAX, args.prompt),
                                                c_ref=args.prompt + args.output // 2)
    record = to_record(pred, prof, fit_label)
    if args.json:
        print_json(record)
    else:
        show(record, gpu)
    return 0


def to_record(pred: Prediction, prof, fit_label: str) -> dict:
    """Everything predict prints, as plain data (the JSON output)."""
    coef = pred.coefficients
    f = lambda a: float(a)  # noqa: E731  (0-d arrays of a single request)
    return {
        "model": pred.arch, "gpu": pred.gpu, "tp": pred.t, "pp": pred.pp, "microbatches": pred.microbatches,
        "nodes": pred.nodes, "n_gpus": pred.n_gpus,
        "pipeline": None if pred.pipeline is None else {k: f(v) for k, v in pred.pipeline.items()},
        "batch": int(pred.b), "prompt": int(pred.p), "output": int(pred.o),
        "time_model": pred.time_model, "fit": fit_label, "warnings": list(pred.warnings),
        "precision": {**asdict(pred.precision), "label": pred.precision.label,
                      "derived_classes": list(pred.derived_classes),
                      "times": "derived, not measured" if pred.derived_classes else "measured"},
        "expected_error": pred.expected_error, "outside_validated": list(pred.outside_validated),
        "prefill_s": f(pred.prefill_s), "decode_s": f(pred.decode_s), "decode_step_s": f(pred.decode_step_s),
        "decode_first_step_s": f(pred.decode_first_step_s), "decode_last_step_s": f(pred.decode_last_step_s),
        "total_s": f(pred.total_s), "tokens_per_s": f(pred.tokens_per_s),
        "by_class": {c: {"prefill_s": coef[OP_CLASS[c].coefficient] * f(pred.prefill_by_class[c]),
                         "decode_s": coef[OP_CLASS[c].coefficient] * f(pred.decode_by_class[c]),
                         "coefficient": coef[OP_CLASS[c].coefficient]}
                     for c in pred.prefill_by_class if c != "launch" and _shown(pred, c)},
        "host": {"prefill_s": coef["launch"] * f(pred.prefill_by_class["launch"]),
                 "decode_s": coef["launch"] * f(pred.decode_by_class["launch"]),
                 "note": "the host's launches, overlapped with the GPU's work: each phase takes the longer"},
        "fixed": {"prefill_fixed_s": coef["prefill_fixed_s"], "decode_fixed_s": coef["decode_fixed_s"]},
        "memory_per_gpu": {"weights_bytes": f(pred.memory.weights_bytes),
                           "kv_cache_bytes": f(pred.memory.kv_cache_bytes),
                           "activation_bytes": f(pred.memory.activation_bytes),
                           "total_bytes": f(pred.mem_per_gpu_bytes), "capacity_bytes": pred.mem_capacity_bytes,
                           "fits": bool(pred.fits)},
        "cost_usd": f(pred.cost_usd), "price_per_hour_usd": pred.price_per_hour_usd,
        "energy_j": f(pred.energy_j), "prefill_energy_j": f(pred.prefill_energy_j),
        "decode_energy_j": f(pred.decode_energy_j), "energy_by_class": {c: f(v) for c, v in pred.energy_by_class.items()},
        "power_w": f(pred.power_w), "power_source": pred.power_source,
        "profile": None if prof is None else {"knots_p": list(prof.knots_p), "f_knots_s": list(prof.f_knots_s),
                    "slopes_s_per_token": [float(s) for s in prof.slopes_s_per_token], "g_s": prof.g_s,
                    "c_ref": prof.c_ref, "f_max_rel_err": prof.max_rel_err,
                    "form_total_s": float(prof.total_s(pred.p, pred.o))},
    }


def _shown(pred: Prediction, op_class: str) -> bool:
    """Whether the breakdown lists a class: every measured one; a precision's own class (gemm_fp8, ...) when used."""
    return not (OP_CLASS[op_class].derived_from or OP_CLASS[op_class].when_used) or bool(
        float(pred.prefill_by_class[op_class]) or float(pred.decode_by_class[op_class]))


def show(r: dict, gpu: GPUSpec) -> None:
    """The readable breakdown of one prediction record."""
    o = r["output"]
    layout = f"tp={r['tp']}" + (f", pp={r['pp']}, {r['microbatches']} micro-batches" if r["pp"] > 1 else "")
    layout += f", {r['nodes']} nodes" if r["nodes"] > 1 else ""
    print_lines([f"{r['model']} on {r['n_gpus']} x {gpu.label} ({layout}), batch {r['batch']}, "
                 f"prompt {r['prompt']}, output {o}, precision {r['precision']['label']}",
                 f"time model: {r['time_model']}   fit: {r['fit']}"])
    print_table("Time", ["", "value"], [
        ["prefill", fmt_s(r["prefill_s"])],
        [f"decode step, first (context {r['prompt'] + 1})", fmt_s(r["decode_first_step_s"])],
        [f"decode step, last (context {r['prompt'] + max(o - 1, 1)})", fmt_s(r["decode_last_step_s"])],
        [f"decode, all {o - 1} steps", fmt_s(r["decode_s"])],
        ["total", fmt_s(r["total_s"])],
        ["output tokens/s (whole batch)", fmt_num(r["tokens_per_s"])]])
    shown = lambda s: s >= 5e-8  # noqa: E731  (a time that prints as 0.0 µs is left out)
    rows = [[c, fmt_s(v["prefill_s"]) if shown(v["prefill_s"]) else "-",
             fmt_s(v["decode_s"]) if shown(v["decode_s"]) else "-", fmt_num(v["coefficient"], 3)]
            for c, v in r["by_class"].items() if shown(v["prefill_s"]) or shown(v["decode_s"])]
    fixed = r["fixed"]
    if shown(fixed["prefill_fixed_s"]) or shown(fixed["decode_fixed_s"] * (o - 1)):
        rows.append(["fixed (fit)", fmt_s(fixed["prefill_fixed_s"]), fmt_s(fixed["decode_fixed_s"] * (o - 1)), ""])
    title = "By op class (coefficient applied)" + (", the work of every micro-batch over all stages" if r["pp"] > 1
                                                   else "")
    print_table(title, ["class", "prefill", "decode, all steps", "coefficient"], rows)
    m = r["memory_per_gpu"]
    print_table("Memory per GPU", ["", "value"], [
        ["weights", fmt_gib(m["weights_bytes"])], ["KV cache", fmt_gib(m["kv_cache_bytes"])],
        ["activations", fmt_gib(m["activation_bytes"])], ["total", fmt_gib(m["total_bytes"])],
        ["capacity", fmt_gib(m["capacity_bytes"])], ["fits", "yes" if m["fits"] else "NO"]])
    print_table("Cost and energy (whole batch)", ["", "value"], [
        ["GPUs", str(r["n_gpus"])], ["price per GPU-hour", f"${r['price_per_hour_usd']:.2f}"],
        ["cost", f"${fmt_num(r['cost_usd'])}"], ["energy", f"{fmt_num(r['energy_j'])} J"],
        ["energy: prefill / decode", f"{fmt_num(r['prefill_energy_j'])} / {fmt_num(r['decode_energy_j'])} J"],
        ["mean power", f"{r['power_w']:.0f} W per GPU ({r['power_source']})"]])
    if r["pipeline"]:
        pl = r["pipeline"]
        print_table(f"Pipeline ({r['pp']} stages of {pl['stage_layers']:.0f} layers, modelled sends)",
                    ["", "prefill", "decode, all steps"], [
                        ["one micro-batch through every stage", fmt_s(pl["pass_prefill_s"]), fmt_s(pl["pass_decode_s"])],
                        ["one micro-batch on the most loaded stage", fmt_s(pl["stage_prefill_s"]),
                         fmt_s(pl["stage_decode_s"])],
                        ["sends between stages (one pass; one step)", fmt_s(pl["p2p_prefill_s"]),
                         fmt_s(pl["p2p_decode_step_s"])],
                        ["bubble (stages' idle fraction)", f"{pl['bubble_prefill']:.1%}", f"{pl['bubble_decode']:.1%}"]])
    pf = r["profile"]
    if pf is None:
        print_lines([_band_line(r)] + [f"outside what was validated: {n}" for n in r["outside_validated"]]
                    + [f"warning: {w}" for w in r["warnings"]])
        return
    knots = ", ".join(f"p={k}: {fmt_s(v)}" for k, v in zip(pf["knots_p"], pf["f_knots_s"]))
    slopes = ", ".join(f"{s * 1e6:.3g} µs" for s in pf["slopes_s_per_token"])
    print_lines([f"F(p) + g·(o − 1): F knots {knots}",
                 f"  F slopes per prompt token: {slopes} (max error of F {pf['f_max_rel_err']:.1%})",
                 f"  g = {fmt_s(pf['g_s'])} (decode step at context {pf['c_ref']}); "
                 f"F(p) + g·(o − 1) = {fmt_s(pf['form_total_s'])} against {fmt_s(r['total_s'])} simulated"]
                + [_band_line(r)] + [f"outside what was validated: {n}" for n in r["outside_validated"]]
                + [f"warning: {w}" for w in r["warnings"]])


def _band_line(r: dict) -> str:
    """The expected error of the total time, as validation on unseen architectures measured it."""
    band = r["expected_error"]
    if not band:
        return "expected error: unknown (no validation applies)"
    return (f"expected error of the total on unseen architectures: median {band['median_pct']:.1f}%, "
            f"P95 {band['p95_pct']:.1f}% ({band['n']} validated queries at this t)")
