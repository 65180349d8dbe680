"""Rendering shared by the CLI commands: rich tables on screen, JSON on stdout, CSV/JSON files written
atomically, and number formats with units. rich is imported inside functions (start-up time).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from simulator.atomic import write_atomic
from simulator.errors import UserError
from simulator.gpus import GIB


@contextmanager
def option_named(option: str) -> Iterator[None]:
    """A UserError raised inside (a file that cannot be written) names the option that gave its path first."""
    try:
        yield
    except UserError as e:
        raise UserError(f"{option} {e}") from None


def jsonable(x):
    """Plain Python (lists, floats, ints, str) of numpy values, nested in dicts, lists and tuples."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def print_json(obj) -> None:
    """Print obj as indented JSON on stdout."""
    print(json.dumps(jsonable(obj), indent=2))


def print_table(title: str | None, headers: list[str], rows: list[list], caption: str | None = None) -> None:
    """A rich table on stdout; numbers right-aligned."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, h in enumerate(headers):
        numeric = bool(rows) and all(isinstance(r[i], (int, float, np.number)) or _looks_numeric(r[i])
                                     for r in rows)
        table.add_column(h, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*(Text(str(v)) for v in r))  # Text: cells are never read as rich markup
    _console().print(table)


def _console():
    """A rich console on stdout: the terminal's width, or 160 columns when piped."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _looks_numeric(s) -> bool:
    """Whether a table cell reads as a number (right-aligned)."""
    return isinstance(s, str) and bool(s) and (s[0].isdigit() or s[0] in "-.")


def print_lines(lines: list[str]) -> None:
    """Plain lines (headers, warnings) through rich, so markup-like brackets print as they are."""
    console = _console()
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)  # piped: no line breaks inside a warning


def fmt_s(seconds: float) -> str:
    """Seconds with a readable unit: µs, ms or s."""
    seconds = float(seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def fmt_gib(nbytes: float) -> str:
    """Bytes as GiB, two decimals."""
    return f"{float(nbytes) / GIB:.2f} GiB"


def fmt_num(x: float, digits: int = 4) -> str:
    """A number in `digits` significant digits, no exponent for everyday sizes."""
    x = float(x)
    return f"{x:.{digits}g}" if x == 0 or 1e-4 <= abs(x) < 1e9 else f"{x:.{digits - 1}e}"


def write_rows(path: str, rows: list[dict], option: str = "-o") -> None:
    """Rows as CSV (.csv) or a JSON list (.json), chosen by the suffix; written atomically. `option` is the
    flag that named the path, for the error lines."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"{option} {path}: the file name must end in .csv or .json")
    if not out.parent.is_dir():
        raise UserError(f"{option} {path}: folder {out.parent} does not exist; create it first")
    rows = jsonable(rows)
    if suffix == ".csv":  # a list (a row's warnings) is one CSV field
        rows = [{k: " | ".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
    bad = [k for r in rows for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise UserError(f"{option} {path}: non-finite value in column '{bad[0]}'; refusing to write it")
    if suffix == ".json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    try:
        write_atomic(out, text)
    except UserError as e:
        raise UserError(f"{option} {e}") from None
