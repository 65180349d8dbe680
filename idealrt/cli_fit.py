"""`idealrt fit`: fit the simulator's coefficients per GPU to measured queries and write the fit files.

Writes calibration/fits/<gpu>_<stack>.json (atomically), which `idealrt predict` then uses by default.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

from simulator.errors import UserError
from simulator.paths import FITS_DIR, MEASUREMENTS_DIR


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", help="GPU to fit (catalog name); default: every GPU in the measurements")
    parser.add_argument("--stack", default="triton", help="software stack (the rows' 'backend'); default triton")
    parser.add_argument("--max-queries", type=int, default=6, help="queries the fit may use (default 6)")
    parser.add_argument("--measurements", nargs="+", metavar="FILE",
                        help="measurement JSON Lines files (default: calibration/measurements/*.jsonl)")
    parser.add_argument("--bounds", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                        help="bounds of each op-class multiplier (default 0.7 1.5; launch and allreduce_latency "
                             "keep 0 1.5, elementwise 0.7 2.5: calibration/fit.py CLASS_BOUNDS)")
    parser.add_argument("--out-dir", type=Path, default=FITS_DIR, help="where fit files go (default calibration/fits)")
    parser.add_argument("--include-moe", action="store_true",
                        help="let MoE architectures' queries into the fit (left out by default: the reference "
                             "engine runs MoE layers non-ideally)")


def measurement_files(given: list[str] | None) -> list[Path]:
    """The files named, or every calibration/measurements/*.jsonl."""
    return [Path(f) for f in given] if given else sorted(MEASUREMENTS_DIR.glob("*.jsonl"))


def rows_by_gpu(rows: list[dict], stack: str, gpu: str | None) -> dict[str, list[dict]]:
    """Reference-engine rows of `stack`, grouped by catalog GPU name (only `gpu` when given)."""
    from calibration.fit import ENGINE
    from simulator.gpus import get_gpu

    mine = [r for r in rows if r["backend"] == stack and r["engine"] == ENGINE]
    if not mine:
        stacks = sorted({r["backend"] for r in rows if r["engine"] == ENGINE})
        raise UserError(f"no '{ENGINE}' engine measurements with backend '{stack}'; --stack is one of "
                        f"{', '.join(stacks) or '(none: measure with idealrt measure --engine idealrt)'}")
    want = get_gpu(gpu).name if gpu else None
    groups: dict[str, list[dict]] = {}
    for r in mine:
        name = get_gpu(r["gpu"]).name
        if want in (None, name):
            groups.setdefault(name, []).append(r)
    if not groups:
        have = sorted({r["gpu"] for r in mine})
        raise UserError(f"no '{stack}' measurements for GPU '{gpu}'; the files have {', '.join(have)}")
    return groups


MOE_NOTE = ("MoE: left out so the coefficients come from dense layers and MoE queries test how they transfer "
            "(validate --leave-out-arch); on the torch stack the engine's experts are not ideal either "
            "(calibration/measurements/README.md)")


def excluded_archs(rows: list[dict], features, include_moe: bool) -> frozenset:
    """Architectures a fit leaves out: the MoE ones, unless --include-moe."""
    return frozenset() if include_moe else frozenset(a for a in {r["arch"] for r in rows} if features.moe(a))


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
        note = " (no time in the queries: left at 1)" if name in result.unfitted else ""
        print(f"  {name:<16} {value * 1e6:12.2f} us{note}" if name.endswith("_s") else f"  {name:<16} {value:12.4f}{note}")
    for res in result.residuals:
        print(f"  {res['arch']:<18} t={res['t']} b={res['b']:<3} p={res['p']:<6} o={res['o']:<5} "
              f"{res['phase']:<8} measured {res['measured_s']:.5f} s  fitted {res['fitted_s']:.5f} s  "
              f"{100 * res['rel_err']:+.2f}%")
    for w in sorted(warnings):
        print(f"  warning: {w}")


def run(args: argparse.Namespace) -> int:
    from calibration.fit import MULTIPLIER_BOUNDS, SimulatorFeatures, fit_pool, fit_rows, read_measurements
    from calibration.table_io import write_json_atomic
    from simulator.fits import check_coefficients

    if not args.out_dir.is_dir():
        raise UserError(f"--out-dir {args.out_dir}: no such folder; create it first or choose another")
    rows = read_measurements(measurement_files(args.measurements))
    for gpu, gpu_rows in rows_by_gpu(rows, args.stack, args.gpu).items():
        features = SimulatorFeatures(args.stack)
        gpu_rows = features.predictable(gpu_rows)
        excluded = excluded_archs(gpu_rows, features, args.include_moe)
        result = fit_rows(gpu_rows, features, args.max_queries, tuple(args.bounds or MULTIPLIER_BOUNDS), excluded)
        pool = fit_pool(gpu_rows, excluded)
        path = args.out_dir / f"{gpu}_{args.stack}.json"
        check_coefficients(result.coefficients, where=f"fit of {gpu}")  # what predict will accept
        prov = fit_provenance(pool, features, gpu, args.max_queries, excluded)
        write_json_atomic(path, result.to_json(gpu, args.stack, prov))
        print_fit(gpu, args.stack, path, result, len(pool), features.warnings)
        if excluded:
            print(f"  left out of the fit: {', '.join(sorted(excluded))} ({MOE_NOTE}; --include-moe to use them)")
    return 0
