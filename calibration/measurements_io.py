"""Measurement files, one configuration query a row: the one checked reader, atomic append, resume keys, summary.

A file is JSON Lines (what `idealrt measure` writes, docs/CONTRACTS.md "Measurement") or a CSV with the
minimum row's columns, for rows from another engine. Each append rewrites the file through a temporary
file in the same folder and os.replace, so a run killed at any moment leaves the file whole; a re-run
skips the queries whose key is already there.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from simulator.atomic import write_atomic
from simulator.errors import UserError

REFERENCE_ENGINE = "idealrt"  # calibration/engine/: the engine whose rows fit and validate use by default
KEY_FIELDS = ("arch", "gpu", "t", "b", "p", "o", "engine", "backend")
# the minimum row any engine can bring: arch (or arch_spec), gpu, t, b, p, o, prefill_s, total_s, engine,
# backend; decode_s is total_s - prefill_s when absent, split follows calibration/queries.py when absent
REQUIRED_FIELDS = {"arch": str, "gpu": str, "t": int, "b": int, "p": int, "o": int,
                   "prefill_s": float, "total_s": float, "engine": str, "backend": str}
INT_COLUMNS = ("t", "b", "p", "o")
FLOAT_COLUMNS = ("prefill_s", "decode_s", "total_s")


def row_key(row: dict) -> tuple:
    """What makes a row the same query: architecture, GPU, t, b, p, o, engine and backend."""
    return tuple(row[f] for f in KEY_FIELDS)


def read_rows(path: str | Path) -> list[dict]:
    """All rows of a JSON Lines measurement file, unchecked ([] when it does not exist); a line that is not
    a JSON object is a UserError naming file:line."""
    return [row for _, row in _jsonl_rows(path)]


def _jsonl_rows(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, row) of every non-empty line of a JSON Lines file; [] when it does not exist."""
    if not os.path.exists(path):
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"cannot read measurements '{path}': {e.strerror}; check --measurements") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg}); fix or remove that line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: a measurement row must be a JSON object; fix or remove that line")
        rows.append((n, row))
    return rows


def _csv_rows(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, row) of a CSV with the minimum row's columns, numbers converted, empty cells left out."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
    except OSError as e:
        raise UserError(f"cannot read measurements '{path}': {e.strerror}; check --measurements") from None
    rows = []
    for n, rec in enumerate(table, 2):  # line 1 is the header
        row: dict = {k.strip(): v.strip() for k, v in rec.items() if k and v is not None and v.strip() != ""}
        for name, kind in [(c, int) for c in INT_COLUMNS] + [(c, float) for c in FLOAT_COLUMNS]:
            if name in row:
                try:
                    row[name] = kind(row[name])
                except ValueError:
                    raise UserError(f"{path}:{n}: field '{name}' is {row[name]!r}; it must be a "
                                    f"{kind.__name__}") from None
        rows.append((n, row))
    return rows


def check_row(row: dict, where: str, engine: str | None = None) -> dict:
    """The row completed (arch from arch_spec, engine, decode_s, split) and checked; a bad field is a
    one-line UserError naming `where` (file:line), the field and the fix."""
    from calibration.queries import Query, split_of

    row = dict(row)
    if "arch" not in row and isinstance(row.get("arch_spec"), dict) and "name" in row["arch_spec"]:
        row["arch"] = row["arch_spec"]["name"]
    if "engine" not in row and engine is not None:
        row["engine"] = engine
    for name, kind in REQUIRED_FIELDS.items():
        if name not in row:
            raise UserError(f"{where}: field '{name}' is missing; add it (docs/CONTRACTS.md, \"Measurement\")"
                            + (" or pass --engine NAME" if name == "engine" else ""))
        _check_type(row, name, kind, where)
    for name in ("t", "b", "p", "o", "prefill_s", "total_s"):
        if row[name] <= 0:
            raise UserError(f"{where}: field '{name}' is {row[name]!r}; it must be positive")
    if "decode_s" not in row:
        row["decode_s"] = row["total_s"] - row["prefill_s"]
    _check_type(row, "decode_s", float, where)
    if row["decode_s"] < 0 or (row["o"] > 1 and row["decode_s"] <= 0):
        raise UserError(f"{where}: field 'decode_s' is {row['decode_s']!r} (total_s - prefill_s when absent); "
                        "it must be positive when o > 1 and zero when o = 1")
    row.setdefault("split", split_of(row["arch"], Query(row["b"], row["p"], row["o"], row["t"])))
    if row["split"] not in ("fit", "heldout"):
        raise UserError(f"{where}: field 'split' is {row['split']!r}; use 'fit' or 'heldout' (or leave it out)")
    if "arch_spec" in row:
        arch_of(row, where)  # a spec that does not build is refused here, where the file is named
    return row


def _check_type(row: dict, name: str, kind: type, where: str) -> None:
    v = row[name]
    ok = isinstance(v, str) if kind is str else (
        isinstance(v, int) if kind is int else isinstance(v, (int, float)) and math.isfinite(v))
    if not ok or isinstance(v, bool):
        raise UserError(f"{where}: field '{name}' is {v!r}; it must be a {kind.__name__}")


def read_measurements(paths: Sequence[str | Path], engine: str | None = None) -> list[dict]:
    """All rows of the given measurement files (.jsonl, or .csv), checked; each gets `_file` (its source).
    Rows without an `engine` field are taken to be of `engine` (when given)."""
    if not paths:
        raise UserError("no measurement files: pass --measurements FILE or run 'idealrt measure' first")
    rows = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"cannot read measurements '{path}': no such file; check --measurements")
        raw = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
        for line, r in raw:
            rows.append({**check_row(r, f"{path}:{line}", engine), "_file": str(path)})
    if not rows:
        raise UserError(f"no measurement rows in {', '.join(map(str, paths))}")
    return rows


_SPECS: dict[str, object] = {}  # json of an arch_spec -> its ArchSpec


def arch_of(row: dict, where: str = "measurement row"):
    """The ArchSpec of a row: rebuilt from its `arch_spec` when it carries one, else the catalog's `arch`."""
    from simulator.arch import ArchSpec
    from simulator.catalog import get_arch

    spec = row.get("arch_spec")
    if spec is None:
        return get_arch(row["arch"])
    key = json.dumps(spec, sort_keys=True)
    if key not in _SPECS:
        if not isinstance(spec, dict):
            raise UserError(f"{where}: field 'arch_spec' must be an object of ArchSpec fields")
        unknown = sorted(set(spec) - set(ArchSpec.field_names()))
        if unknown:
            raise UserError(f"{where}: field 'arch_spec' has unknown field '{unknown[0]}'; use the fields of "
                            "simulator/arch.py ArchSpec")
        try:
            _SPECS[key] = ArchSpec(**spec)
        except TypeError as e:
            raise UserError(f"{where}: field 'arch_spec' is incomplete ({e}); re-measure or add the field") from None
        except UserError as e:
            raise UserError(f"{where}: field 'arch_spec': {e}") from None
    return _SPECS[key]


def arch_spec_fields(arch) -> dict:
    """The ArchSpec's fields as a JSON object, for a row's `arch_spec`."""
    import dataclasses
    return dataclasses.asdict(arch)


def append_row(path: str, row: dict) -> None:
    """Add one row to `path` atomically (temporary file in the same folder, then os.replace)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    old = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    write_atomic(path, old + (json.dumps(row, sort_keys=False) + "\n").encode())


def summary_table(paths: list[str]) -> str:
    """A Markdown table of row counts per (file, GPU, t, engine, backend, arch) and their fit share."""
    counts: Counter = Counter()
    fits: Counter = Counter()
    for path in paths:
        for r in read_rows(path):
            k = (os.path.basename(path), r["gpu"], r["t"], r["engine"], r["backend"], r["arch"])
            counts[k] += 1
            fits[k] += r.get("split") == "fit"
    lines = ["| file | gpu | t | engine | backend | arch | rows | fit |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {' | '.join(str(x) for x in k)} | {n} | {fits[k]} |" for k, n in sorted(counts.items())]
    lines.append(f"\n{sum(counts.values())} rows in {len(paths)} files.")
    return "\n".join(lines)


def of_current_engine(rows: list[dict], any_version: bool = False) -> tuple[list[dict], str | None]:
    """The rows measured by the current engine code, and a note on what was left out (None: nothing).

    When any row carries `engine_version`, only rows of the current version (that of the row's
    `engine_variant`, if any: calibration/engine_variants) are kept; rows of another version, of none or of
    an unknown variant are left out unless `any_version`. When no row carries one (files written before
    the field existed), all rows are kept.
    """
    from calibration.engine_version import engine_version

    if any_version or not any("engine_version" in r for r in rows):
        return rows, None
    now = engine_version()

    def current(r: dict) -> bool:
        try:
            return r.get("engine_version") == engine_version(r.get("engine_variant"))
        except ValueError:  # a variant this checkout does not have
            return False
    kept = [r for r in rows if current(r)]
    other = Counter(r.get("engine_version", "none") for r in rows if not current(r))
    if not other:
        return kept, None
    what = ", ".join(f"{n} of version {v}" if v != "none" else f"{n} without a version" for v, n in sorted(other.items()))
    return kept, (f"left out {sum(other.values())} of {len(rows)} rows not measured by the current engine "
                  f"(version {now}): {what}; pass --any-engine-version to use them")
