"""`idealrt fit`: fit the simulator's coefficients per GPU to measured queries and write the fit files.

Writes calibration/fits/<gpu>_<stack>.json (atomically), which `idealrt predict` then uses by default.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import tempfile
from pathlib import Path

from calibration.measurements_io import REFERENCE_ENGINE as ENGINE
from simulator.errors import UserError
from simulator.paths import FITS_DIR, MEASUREMENTS_DIR


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", help="GPU to fit (catalog name); default: every GPU in the measurements")
    parser.add_argument("--stack", default="triton", help="software stack (the rows' 'backend'); default triton")
    parser.add_argument("--max-queries", type=int, default=6, help="queries the fit may use (default 6)")
    add_row_args(parser)
    parser.add_argument("--bounds", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                        help="bounds of every coefficient's multiplier (default 0.7 1.5)")
    parser.add_argument("--out-dir", type=Path, default=FITS_DIR, help="where fit files go (default calibration/fits)")
    parser.add_argument("--include-moe", action="store_true",
                        help="let MoE architectures' queries into the fit (left out by default: the reference "
                             "engine runs MoE layers non-ideally)")


def add_row_args(parser: argparse.ArgumentParser) -> None:
    """Options that choose the measurement rows: files, engine and engine version (fit and validate)."""
    parser.add_argument("--measurements", nargs="+", metavar="FILE",
                        help="measurement files, JSON Lines or CSV (docs/CONTRACTS.md, \"Measurement\"; "
                             "default: calibration/measurements/*.jsonl)")
    parser.add_argument("--engine", default=ENGINE, metavar="NAME",
                        help=f"use the rows of this engine (default {ENGINE}, the reference engine); rows "
                             "without an 'engine' field are taken to be of it")
    parser.add_argument("--any-engine-version", action="store_true",
                        help="also use rows of other engine versions, or of none (default: when any row has an "
                             "'engine_version', only rows of the current engine code)")


def read_chosen_rows(args: argparse.Namespace) -> list[dict]:
    """The checked rows of --measurements (rows without an engine taken to be --engine's)."""
    from calibration.measurements_io import read_measurements

    return read_measurements(measurement_files(args.measurements), engine=args.engine)


def fit_path(out_dir: Path, gpu: str, stack: str, engine: str = ENGINE) -> Path:
    """The fit file of a GPU and stack: <gpu>_<stack>.json for the reference engine, else
    <gpu>_<stack>_<engine>.json (so another engine's fit never replaces the one predict uses)."""
    return out_dir / (f"{gpu}_{stack}.json" if engine == ENGINE else f"{gpu}_{stack}_{engine}.json")


def measurement_files(given: list[str] | None) -> list[Path]:
    """The files named, or every calibration/measurements/*.jsonl."""
    return [Path(f) for f in given] if given else sorted(MEASUREMENTS_DIR.glob("*.jsonl"))


def rows_by_gpu(rows: list[dict], stack: str, gpu: str | None, engine: str = ENGINE,
                any_version: bool = False) -> dict[str, list[dict]]:
    """Rows of `engine` and `stack`, grouped by catalog GPU name (only `gpu` when given); in each group only
    the rows of the current engine version (calibration/measurements_io.py `of_current_engine`), what was
    left out said on stderr."""
    from calibration.measurements_io import of_current_engine
    from simulator.gpus import get_gpu

    mine = [r for r in rows if r["backend"] == stack and r["engine"] == engine]
    if not mine:
        stacks = sorted({r["backend"] for r in rows if r["engine"] == engine})
        engines = sorted({r["engine"] for r in rows})
        raise UserError(f"no '{engine}' engine measurements with backend '{stack}'; "
                        + (f"--stack is one of {', '.join(stacks)}" if stacks else
                           f"--engine is one of {', '.join(engines)}"))
    want = get_gpu(gpu).name if gpu else None
    groups: dict[str, list[dict]] = {}
    for r in mine:
        name = get_gpu(r["gpu"]).name
        if want in (None, name):
            groups.setdefault(name, []).append(r)
    if not groups:
        have = sorted({r["gpu"] for r in mine})
        raise UserError(f"no '{stack}' measurements for GPU '{gpu}'; the files have {', '.join(have)}")
    out = {}
    for name, group in groups.items():
        kept, note = of_current_engine(group, any_version)
        if note:
            print(f"{name} ({engine}, {stack}): {note}", file=sys.stderr)
        if kept:
            out[name] = kept
    if not out:
        raise UserError(f"no '{engine}' '{stack}' rows of the current engine version; re-measure with "
                        "'idealrt measure' or pass --any-engine-version")
    return out


MOE_NOTE = ("MoE: left out so the coefficients come from dense layers and MoE queries test how they transfer "
            "(validate --leave-out-arch); on the torch stack the engine's experts are not ideal either "
            "(calibration/measurements/README.md)")


def excluded_archs(rows: list[dict], features, include_moe: bool) -> frozenset:
    """Architectures a fit leaves out: the MoE ones, unless --include-moe."""
    firsts = {r["arch"]: r for r in rows}  # one row of each architecture
    return frozenset() if include_moe else frozenset(a for a, r in firsts.items() if features.moe(r))


def fit_provenance(pool: list[dict], features, gpu: str, max_queries: int, excluded: frozenset) -> dict:
    """Provenance of a fit: command, date, the measurement files and the table it was fitted on."""
    from calibration.fit import RIDGE, data_provenance

    return {"command": "idealrt " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "objective": "min sum_i ((A_i x - y_i)/y_i)^2 + ridge*sum_c (beta_c - 1)^2, "
                         "beta in bounds, fixed costs >= 0", "ridge": RIDGE,
            "max_queries": max_queries, "measurements": data_provenance(pool),
            "excluded_archs": {a: MOE_NOTE for a in sorted(excluded)},
            "time_model": features.table_info(gpu), "warnings": sorted(features.warnings)}


def print_fit(gpu: str, stack: str, path: Path, result, pool_size: int, warnings: set[str]) -> None:
    """The coefficients, then each query's measured and fitted phase times."""
    print(f"{gpu} ({stack}): fitted on {len(result.queries)} of {pool_size} fit-split queries -> {path}")
    for name, value in result.coefficients.items():
        note = " (not fitted: left at 1)" if name in result.unfitted else ""
        print(f"  {name:<16} {value * 1e6:12.2f} us{note}" if name.endswith("_s") else f"  {name:<16} {value:12.4f}{note}")
    for res in result.residuals:
        print(f"  {res['arch']:<18} t={res['t']} b={res['b']:<3} p={res['p']:<6} o={res['o']:<5} "
              f"{res['phase']:<8} measured {res['measured_s']:.5f} s  fitted {res['fitted_s']:.5f} s  "
              f"{100 * res['rel_err']:+.2f}%")
    for w in sorted(warnings):
        print(f"  warning: {w}")


def run(args: argparse.Namespace) -> int:
    from calibration.fit import MULTIPLIER_BOUNDS, SimulatorFeatures, fit_pool, fit_rows
    from calibration.table_io import write_json_atomic
    from simulator.fits import check_coefficients

    if not args.out_dir.is_dir():
        raise UserError(f"--out-dir {args.out_dir}: no such folder; create it first or choose another")
    try:  # refused before any work, not after the fit
        with tempfile.TemporaryFile(dir=args.out_dir):
            pass
    except OSError as e:
        raise UserError(f"--out-dir {args.out_dir}: cannot write there ({e.strerror}); choose a folder you can "
                        "write to") from None
    rows = read_chosen_rows(args)
    for gpu, gpu_rows in rows_by_gpu(rows, args.stack, args.gpu, args.engine, args.any_engine_version).items():
        features = SimulatorFeatures(args.stack)
        gpu_rows = features.predictable(gpu_rows)
        excluded = excluded_archs(gpu_rows, features, args.include_moe)
        result = fit_rows(gpu_rows, features, args.max_queries, tuple(args.bounds or MULTIPLIER_BOUNDS), excluded)
        pool = fit_pool(gpu_rows, excluded)
        path = fit_path(args.out_dir, gpu, args.stack, args.engine)
        check_coefficients(result.coefficients, where=f"fit of {gpu}")  # what predict will accept
        prov = fit_provenance(pool, features, gpu, args.max_queries, excluded)
        write_json_atomic(path, result.to_json(gpu, args.stack, prov))
        print_fit(gpu, args.stack, path, result, len(pool), features.warnings)
        if excluded:
            print(f"  left out of the fit: {', '.join(sorted(excluded))} ({MOE_NOTE}; --include-moe to use them)")
    return 0
