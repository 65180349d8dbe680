"""`idealrt profile`: the paper's per-model profile T(p, o) = F(p) + g·(o − 1), fitted to a grid of
measured queries or of simulated ones, with the error of each form (linear, piecewise, + p²).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from simulator.errors import UserError

PROMPTS = (1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
OUTPUTS = (1, 16, 64, 256)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': give integers >= 1, e.g. 1,64,512")
    return values


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="architecture: catalog name, or the name of a measured architecture whose rows carry its spec")
    parser.add_argument("--gpu", help="GPU (catalog name); default: every GPU measured, or h100-sxm if --simulated")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--measurements", nargs="+", metavar="FILE",
                        help="measurement JSON Lines files (default: calibration/measurements/*.jsonl)")
    source.add_argument("--simulated", action="store_true", help="profile the simulator's predictions instead")
    parser.add_argument("--t", type=int, help="tensor-parallel degree (default: all measured / smallest that fits)")
    parser.add_argument("--b", type=int, default=None, help="batch size (default: all measured / 1)")
    parser.add_argument("--stack", default="triton", help="software stack (default triton)")
    parser.add_argument("--prompts", type=_int_list, default=None,
                        help=f"simulated grid of p (comma list; default {','.join(map(str, PROMPTS))}, "
                             "clipped to the model's max_positions)")
    parser.add_argument("--outputs", type=_int_list, default=None,
                        help=f"simulated grid of o (comma list; default {','.join(map(str, OUTPUTS))})")
    parser.add_argument("--max-knots", type=int, default=2, help="knots F may bend at (default 2)")
    parser.add_argument("--json", action="store_true", help="print the fits as JSON")


def measured_rows(args: argparse.Namespace) -> list[dict]:
    """The checked rows of --measurements (default: the shipped files)."""
    from calibration.measurements_io import read_measurements
    from idealrt.cli_fit import measurement_files

    return read_measurements(measurement_files(args.measurements))


def model_arch(name: str, rows: list[dict]):
    """The ArchSpec of `name`: rebuilt from a measured row of it (which may carry its spec), else the catalog's."""
    from calibration.measurements_io import arch_of
    from simulator.catalog import get_arch

    mine = [r for r in rows if r["arch"] == name]
    return arch_of(mine[0]) if mine else get_arch(name)


def measured_grids(args: argparse.Namespace, arch: str, rows: list[dict]) -> list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]:
    """(label, p, o, total_s) per (GPU, t, b) of the reference engine's queries of `arch`, both splits."""
    from calibration.measurements_io import REFERENCE_ENGINE as ENGINE
    from simulator.gpus import get_gpu

    gpu = get_gpu(args.gpu).name if args.gpu else None
    rows = [r for r in rows
            if r["arch"] == arch and r["backend"] == args.stack and r["engine"] == ENGINE
            and (gpu is None or get_gpu(r["gpu"]).name == gpu)
            and args.t in (None, r["t"]) and args.b in (None, r["b"])]
    if not rows:
        raise UserError(f"no '{args.stack}' measurements of {arch} match --gpu/--t/--b; try --simulated")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((get_gpu(r["gpu"]).name, r["t"], r["b"]), []).append(r)
    return [({"gpu": g, "t": t, "b": b, "source": "measured", "queries": len(rs)},
             *(np.array([r[k] for r in rs], dtype=float) for k in ("p", "o", "total_s")))
            for (g, t, b), rs in sorted(groups.items())]


def simulated_grid(args: argparse.Namespace, arch_spec) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(label, p, o, total_s) of the simulator's predictions over the --prompts × --outputs grid."""
    from simulator.fits import load_fit
    from simulator.gpus import GIB, get_gpu
    from simulator.memory import smallest_fitting_tp
    from simulator.predict import predict
    from simulator.tables import default_model

    gpu = get_gpu(args.gpu or "h100-sxm")
    p, o = (a.ravel() for a in np.meshgrid(args.prompts or PROMPTS, args.outputs or OUTPUTS))  # (n,) each
    keep = arch_spec.positions_used(p, o) <= arch_spec.max_positions
    if not keep.all() and (args.prompts or args.outputs):  # the default grid is clipped; a given one is not
        raise UserError(f"--prompts/--outputs: p + o - 1 up to {int(arch_spec.positions_used(p, o).max())} exceeds "
                        f"{arch_spec.name}'s max_positions {arch_spec.max_positions}; keep every "
                        f"p + o <= {arch_spec.max_positions + 1}")
    p, o = p[keep], o[keep]
    b = args.b or 1
    fit = load_fit(gpu.name, args.stack)
    pred = predict(arch_spec, gpu, p, o, b, args.t, model=default_model(gpu, args.stack), coefficients=fit)
    if not pred.fits.all():
        need = float(pred.mem_per_gpu_bytes.max()) / GIB
        best = smallest_fitting_tp(arch_spec, gpu, b, p, o)
        raise UserError(f"--t {pred.t}: {arch_spec.name} needs {need:.1f} GiB per GPU, over the "
                        f"{gpu.mem_gib:.0f} GiB of {gpu.name}; use --t {best} or leave --t out")
    label = {"gpu": gpu.name, "t": pred.t, "b": b, "source": "simulated", "queries": int(p.size),
             "time_model": pred.time_model, "fit": pred.fit}
    return label, p.astype(float), o.astype(float), np.asarray(pred.total_s, dtype=float)


def print_profile(label: dict, fits: list[dict]) -> None:
    """The forms' parameters and errors, then the worst error at each prompt length per form."""
    from rich.table import Table

    from idealrt.cli_validate import console

    con = console()
    head = Table(title=" ".join(f"{k}={v}" for k, v in label.items()))
    for col in ("form", "F(0) ms", "knots (p)", "slopes us/token", "q ns/token^2", "g ms/token",
                "median %", "P95 %", "max %"):
        head.add_column(col, justify="left" if col in ("form", "knots (p)", "slopes us/token") else "right")
    for f in fits:
        form = f["form"]
        head.add_row(form["name"], f"{1e3 * form['intercept_s']:.3f}", ", ".join(f"{k:g}" for k in form["knots"]) or "-",
                     ", ".join(f"{1e6 * s:.3g}" for s in form["slopes_s"]), f"{1e9 * form['quad_s']:.3g}",
                     f"{1e3 * form['g_s']:.4f}", f"{f['median_pct']:.2f}", f"{f['p95_pct']:.2f}", f"{f['max_pct']:.2f}")
    con.print(head)
    by_p = Table(title="worst absolute % error at each prompt length")
    by_p.add_column("p", justify="right")
    for f in fits:
        by_p.add_column(f["form"]["name"], justify="right")
    for p in fits[0]["worst_by_p"]:
        by_p.add_row(str(p), *(f"{f['worst_by_p'][p]:.2f}" for f in fits))
    con.print(by_p)


def run(args: argparse.Namespace) -> int:
    from calibration.profile_fit import profile
    from simulator.catalog import get_arch

    if args.max_knots < 0:
        raise UserError(f"--max-knots is {args.max_knots}; use 0 or more")
    for flag, value in (("--t", args.t), ("--b", args.b)):
        if value is not None and value < 1:
            raise UserError(f"{flag} is {value}; use a whole number >= 1 (or leave {flag} out)")
    if args.simulated:
        arch = get_arch(args.model)
        grids = [simulated_grid(args, arch)]
    else:
        rows = measured_rows(args)
        arch = model_arch(args.model, rows)
        grids = measured_grids(args, arch.name, rows)
    results = [{**label, "model": arch.name, "fits": profile(p, o, y, args.max_knots)} for label, p, o, y in grids]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for res in results:
        print_profile({k: v for k, v in res.items() if k != "fits"}, res["fits"])
    return 0
