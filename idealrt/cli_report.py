"""`idealrt report`: the calibration report of one GPU and software stack, or (with --whatif) the what-if
report of a sweep's rows, as one self-contained HTML file."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from idealrt.output import option_named
from reports.calibration_data import CALIBRATION_DIR, STACKS
from simulator.errors import UserError


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt report`."""
    parser.add_argument("--gpu", default="h100-sxm",
                        help="catalog GPU name (default h100-sxm; 'idealrt gpus' lists them)")
    parser.add_argument("--stack", default="triton", choices=STACKS,
                        help="software stack: triton (our kernels) or torch (cuBLAS, SDPA); default triton")
    parser.add_argument("-o", "--output", default=None,
                        help="HTML file to write (default report-<gpu>-<stack>.html, or whatif.html with --whatif)")
    parser.add_argument("--data-dir", default=str(CALIBRATION_DIR),
                        help="folder holding tables/, measurements/ and fits/ (default: the shipped calibration/)")
    parser.add_argument("--whatif", default=None, metavar="ROWS.json",
                        help="instead: the what-if report of the rows 'idealrt sweep -o ROWS.json' wrote")


def read_sweep_rows(path: str) -> list[dict]:
    """The rows of a sweep's JSON output file (a list of objects; not measurement rows, which
    calibration/measurements_io.py reads)."""
    try:
        rows = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"--whatif {path}: cannot read it ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"--whatif {path}: not valid JSON ({e.msg}); write it with 'idealrt sweep -o FILE.json'") \
            from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"--whatif {path}: expected a JSON list of row objects, as 'idealrt sweep -o FILE.json' writes")
    return rows


def _table_text(inp) -> str:
    """Which throughput table the report (and predict) uses."""
    if inp.table_path:
        return f", table {inp.table_path.name}"
    if inp.table_derived_from:
        return f", table derived from {inp.table_derived_from}'s"
    return ", no table (datasheet roofline)"


def run(args: argparse.Namespace) -> int:
    """Render and write the report; prints the path and which sections had no data."""
    from reports.render import check_output, write_html

    if args.output is not None:
        check_output(args.output, "-o")
    if args.whatif:
        from reports.whatif_report import render_whatif

        rows = read_sweep_rows(args.whatif)
        html = render_whatif(rows, f"idealrt what-if report: {len(rows)} configurations")
        with option_named("-o"):
            out = write_html(args.output or "whatif.html", html)
        print(f"wrote {out} (what-if report of {len(rows)} rows from {args.whatif})")
        return 0
    from reports.calibration_data import load_inputs
    from reports.calibration_report import build_sections, render_calibration

    data_dir = Path(args.data_dir)
    if not any((data_dir / sub).is_dir() for sub in ("tables", "measurements", "fits")):
        raise UserError(f"--data-dir {data_dir}: no tables/, measurements/ or fits/ folder there; point it at a "
                        "calibration folder (default: the shipped calibration/)")
    inp = load_inputs(args.gpu, args.stack, data_dir)
    html = render_calibration(inp)
    with option_named("-o"):
        out = write_html(args.output or f"report-{inp.gpu}-{inp.stack}.html", html)
    missing = [s.title for s in build_sections(inp) if s.missing]
    print(f"wrote {out} ({inp.gpu}, {inp.stack}: {len(inp.measurements)} measured queries"
          f"{_table_text(inp)}"
          f"{', fit ' + inp.fit_path.name if inp.fit_path else ', no fit'})")
    if missing:
        print(f"not measured yet: {', '.join(missing)}")
    return 0
