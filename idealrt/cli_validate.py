"""`idealrt validate`: error of the fitted simulator on held-out measured queries, beside the table alone,
the roofline alone and the FLOP-only baseline; `--leave-out-arch` refits without one architecture, `--fit-on-archs`
on a few architectures alone.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from calibration.measurements_io import REFERENCE_ENGINE as ENGINE
from simulator.errors import UserError

from idealrt.cli_fit import FITS_DIR, add_row_args, excluded_archs, fit_path, read_chosen_rows, rows_by_gpu


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", help="GPU to validate (catalog name); default: every GPU in the measurements")
    parser.add_argument("--stack", default="triton",
                        help="software stack (the rows' 'backend'); default triton; 'all': every (engine, stack) of "
                             "the rows with current rows and a fit, side by side (--engine is then ignored)")
    add_row_args(parser)
    parser.add_argument("--fits-dir", type=Path, default=FITS_DIR, help="where the fit files are (default calibration/fits)")
    parser.add_argument("--leave-out-arch", metavar="NAME",
                        help="fit without this architecture's queries and predict all of them ('each': every one in turn)")
    parser.add_argument("--fit-on-archs", type=int, metavar="K",
                        help="fit on the queries of K architectures alone and predict every other architecture's, "
                             "each combination of K in turn")
    parser.add_argument("--max-queries", type=int, default=6, help="queries a leave-out refit may use (default 6)")
    parser.add_argument("--include-moe", action="store_true", help="let MoE queries into leave-out refits, as in fit")
    parser.add_argument("--write-band", action="store_true",
                        help="with --leave-out-arch each: store the errors as the fit file's error band, which "
                             "predict reports (simulator/band.py)")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")


def read_fit(fits_dir: Path, gpu: str, stack: str, engine: str = ENGINE) -> tuple[dict[str, float], str]:
    """Coefficients of the fit file of `gpu`, `stack` and `engine` (checked as predict checks them), and its path."""
    from simulator.fits import check_coefficients

    path = fit_path(fits_dir, gpu, stack, engine)
    try:
        coefs = json.loads(path.read_text())["coefficients"]
    except FileNotFoundError:
        how = "" if engine == ENGINE else f" --engine {engine}"
        raise UserError(f"no fit {path}: run 'idealrt fit --gpu {gpu} --stack {stack}{how}' first") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"fit {path} is unreadable or has no 'coefficients'; re-run 'idealrt fit'") from None
    return check_coefficients(coefs, where=f"fit {path}"), str(path)


def heldout_records(gpu: str, rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], str, set[str]]:
    """Every method's error records on the held-out rows of one GPU, the fit file used and the warnings."""
    from calibration.fit import SimulatorFeatures
    from calibration.validate import compare, flop_only_times

    table = SimulatorFeatures(args.stack)
    heldout = table.predictable([r for r in rows if r["split"] == "heldout"])
    if not heldout:
        raise UserError(f"no 'heldout' queries for {gpu}: nothing to validate on (see calibration/measurements/README.md)")
    coefs, path = read_fit(args.fits_dir, gpu, args.stack, args.engine)
    records = compare(heldout, coefs, table, SimulatorFeatures(args.stack, roofline=True), flop_only_times)
    return with_kind(records, table, heldout), path, table.warnings


def with_kind(records: list[dict], features, rows: list[dict]) -> list[dict]:
    """The records of `rows`, each tagged with its architecture's kind: "dense" or "moe"."""
    kinds = {a: "moe" if features.moe(r) else "dense" for a, r in {r["arch"]: r for r in rows}.items()}
    return [{**r, "kind": kinds[r["arch"]]} for r in records]


def leave_out_records(rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], set[str]]:
    """Error records of refits that never saw the left-out architecture(s), and the warnings."""
    from calibration.fit import SimulatorFeatures
    from calibration.validate import leave_arch_out

    features, records = SimulatorFeatures(args.stack), []
    rows = features.predictable(rows)
    present = sorted({r["arch"] for r in rows})
    wanted = present if args.leave_out_arch == "each" else [a for a in present if a == args.leave_out_arch]
    excluded = excluded_archs(rows, features, args.include_moe)
    warnings = features.warnings
    for arch in wanted:  # a GPU that never ran the architecture has nothing to predict
        # the layer-shape GEMM points only the left-out architecture brought are not used (simulator.layer_points)
        fold = features.without_layers_of([r for r in rows if r["arch"] == arch])
        records += leave_arch_out(rows, arch, fold, args.max_queries, exclude_archs=excluded)[1]
        warnings |= fold.warnings
    return with_kind(records, features, rows), warnings


def fit_on_records(rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], set[str]]:
    """Error records of fits on each combination of `--fit-on-archs` architectures, on the other architectures'
    rows; a combination whose queries cannot be fitted is left out with a warning."""
    from calibration.fit import SimulatorFeatures
    from calibration.validate import fit_on_archs

    features, records = SimulatorFeatures(args.stack), []
    rows = features.predictable(rows)
    excluded = excluded_archs(rows, features, args.include_moe)
    candidates = sorted({r["arch"] for r in rows} - excluded)
    warnings, skipped, combos = features.warnings, [], list(itertools.combinations(candidates, args.fit_on_archs))
    for combo in combos:
        others = [r for r in rows if r["arch"] not in combo]
        if not others:
            continue
        fold = features.without_layers_of(others)  # no layer-shape GEMM point only a predicted architecture brought
        try:
            recs = fit_on_archs(rows, frozenset(combo), fold, args.max_queries, exclude_archs=excluded)[1]
        except UserError as e:
            skipped.append(str(e))
            continue
        records += [{**r, "fit_archs": "+".join(combo)} for r in recs]
        warnings |= fold.warnings
    if skipped:
        warnings.add(f"{len(skipped)} of {len(combos)} combinations left out; first: {skipped[0]}")
    return with_kind(records, features, rows), warnings


def console():
    """A rich console, 120 columns wide when the output is not a terminal (files, pipes)."""
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=120)


def print_table(title: str, summary: list[dict], keys: list[str]) -> None:
    """One rich table: the key columns, then n, median and P95 APE."""
    from rich.table import Table

    table = Table(title=title)
    for k in keys + ["n", "median %", "P95 %"]:
        table.add_column(k, justify="left" if k in ("gpu", "arch", "phase", "method") else "right")
    for s in summary:
        table.add_row(*(str(s[k]) for k in keys), str(s["n"]), f"{s['median_pct']:.2f}", f"{s['p95_pct']:.2f}")
    console().print(table)


def print_comparison(summary: list[dict], by: list[str]) -> None:
    """The methods side by side: one row per GPU, t, (stack,) kind and phase, 'median / P95' APE per method."""
    from rich.table import Table

    from calibration.validate import METHODS

    methods = [m for m in METHODS if any(s["method"] == m for s in summary)]
    keys = ["gpu", "t", *by, "kind", "phase"]
    table = Table(title="Same held-out queries, absolute % error (median / P95)")
    for col in [*keys, "n", *methods]:
        table.add_column(col, justify="left" if col in ("gpu", "stack", "kind", "phase") else "right")
    cells: dict[tuple, dict] = {}
    for s in summary:
        cells.setdefault(tuple(s[k] for k in keys), {"n": s["n"]})[s["method"]] = \
            f"{s['median_pct']:.2f} / {s['p95_pct']:.2f}"
    for key, row in cells.items():
        table.add_row(*map(str, key), str(row["n"]), *(row.get(m, "-") for m in methods))
    console().print(table)


def validation_provenance(rows: list[dict], args: argparse.Namespace) -> dict:
    """What a validation was computed from: command, date, engine version, the measurement files and tables."""
    import datetime

    from calibration.engine_variants import BACKEND_VARIANTS
    from calibration.engine_version import engine_version
    from calibration.fit import data_provenance

    variant = args.stack if args.stack in BACKEND_VARIANTS else None  # a variant's rows carry its version
    version = {"engine": engine_version(), **{v: engine_version(v) for v in BACKEND_VARIANTS}} \
        if args.stack == "all" else engine_version(variant)
    return {"command": "idealrt " + " ".join(sys.argv[1:]), "date": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "engine_version": version, "stack": args.stack,
            "engine": args.engine, "measurements": data_provenance(rows)}


def write_band(path: Path, records: list[dict], rows: list[dict]) -> None:
    """Store the leave-one-architecture-out errors of `records` in the fit file at `path` (atomically)."""
    from calibration.measurements_io import arch_of
    from calibration.table_io import write_json_atomic
    from simulator.band import BAND_KEY, band_entry

    if not path.is_file():
        raise UserError(f"--write-band: no fit file {path}; run 'idealrt fit' first")
    data = json.loads(path.read_text())
    seen = {r["arch"] for r in records}
    data[BAND_KEY] = band_entry([r for r in records if r["method"] == "fitted"],
                                {r["arch"]: arch_of(r) for r in rows if r["arch"] in seen})
    write_json_atomic(path, data)
    print(f"error band written to {path}", file=sys.stderr)


def stack_records(rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], dict, set[str]]:
    """Error records of one (engine, stack) over every GPU of its rows, the fit files used and the warnings."""
    records, fits, warnings = [], {}, set()
    for gpu, gpu_rows in rows_by_gpu(rows, args.stack, args.gpu, args.engine, args.any_engine_version).items():
        if args.fit_on_archs:
            recs, warns = fit_on_records(gpu_rows, args)
        elif args.leave_out_arch:
            recs, warns = leave_out_records(gpu_rows, args)
        else:
            recs, fits[gpu], warns = heldout_records(gpu, gpu_rows, args)
        records, warnings = records + recs, warnings | warns
        if args.write_band:
            write_band(fit_path(args.fits_dir, gpu, args.stack, args.engine), recs, gpu_rows)
    return records, fits, warnings


def all_stacks_records(rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], dict, set[str]]:
    """stack_records of every (engine, stack, GPU) of the rows, each record tagged with its stack ("engine/stack"
    for another engine than the reference one); one without current rows or a fit is left out with a warning."""
    from simulator.gpus import get_gpu

    records, fits, warnings = [], {}, set()
    gpus = {get_gpu(args.gpu).name} if args.gpu else {get_gpu(r["gpu"]).name for r in rows}
    for engine, stack, gpu in sorted({(r["engine"], r["backend"], get_gpu(r["gpu"]).name) for r in rows}):
        if gpu not in gpus:
            continue
        one = argparse.Namespace(**{**vars(args), "engine": engine, "stack": stack, "gpu": gpu})
        name = stack if engine == ENGINE else f"{engine}/{stack}"
        try:
            recs, stack_fits, warns = stack_records(rows, one)
        except UserError as e:
            warnings.add(f"{gpu} {name}: left out: {e}")
            continue
        records += [{**r, "stack": name} for r in recs]
        fits |= {f"{gpu} {name}": path for gpu, path in stack_fits.items()}
        warnings |= warns
    return records, fits, warnings


def run(args: argparse.Namespace) -> int:
    from calibration.validate import summarize
    from simulator.catalog import get_arch

    rows = read_chosen_rows(args)
    if args.leave_out_arch not in (None, "each") and args.leave_out_arch not in {r["arch"] for r in rows}:
        args.leave_out_arch = get_arch(args.leave_out_arch).name  # a catalog name, as the user may spell it
    if args.write_band and args.leave_out_arch != "each":
        raise UserError("--write-band needs --leave-out-arch each (the band is the error on unseen architectures)")
    if args.fit_on_archs is not None:
        if args.leave_out_arch:
            raise UserError("--fit-on-archs and --leave-out-arch are two ways to choose the fit's architectures: "
                            "give one")
        if args.fit_on_archs < 1:
            raise UserError(f"--fit-on-archs is {args.fit_on_archs}: give the number of architectures to fit on, "
                            "at least 1")
    every = args.stack == "all"
    records, fits, warnings = (all_stacks_records if every else stack_records)(rows, args)
    if not records and args.fit_on_archs:
        raise UserError(f"--fit-on-archs {args.fit_on_archs}: no combination of that many architectures could be "
                        f"fitted with another left to predict ({'; '.join(sorted(warnings))})")
    if not records:
        raise UserError(f"--leave-out-arch {args.leave_out_arch}: no measured queries of it; "
                        f"the data has {', '.join(sorted({r['arch'] for r in rows}))}")
    by = ["stack"] if every else []
    fitted = [r for r in records if r["method"] == "fitted"]
    by_arch = summarize(fitted, ["gpu", "t", *by, "arch", "phase"])
    by_gpu = summarize(fitted, ["gpu", "t", *by, "kind", "phase"])
    comparison = summarize(records, ["gpu", "t", *by, "kind", "phase", "method"])
    what = ("leave-one-architecture-out" if args.leave_out_arch else
            f"fitted on {args.fit_on_archs} architecture(s) at a time, other architectures" if args.fit_on_archs
            else "held-out queries")
    if args.json:
        print(json.dumps({"provenance": validation_provenance(rows, args), "what": what, "fits": fits,
                          "by_arch": by_arch, "by_gpu": by_gpu,
                          "comparison": comparison, "warnings": sorted(warnings)}, indent=1))
        return 0
    print_table(f"Fitted simulator, {what}: absolute % error", by_arch, ["gpu", "t", *by, "arch", "phase"])
    print_table(f"Fitted simulator, {what}, dense and MoE architectures", by_gpu, ["gpu", "t", *by, "kind", "phase"])
    if not args.leave_out_arch and not args.fit_on_archs:
        print_comparison(comparison, by)
        for gpu, path in fits.items():
            print(f"{gpu}: fit {path}")
    for w in sorted(warnings):
        print(f"warning: {w}")
    return 0
