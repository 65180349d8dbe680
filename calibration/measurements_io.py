"""Measurement files (JSON Lines, one configuration query a row): atomic append, resume keys, summary.

Each append rewrites the file through a temporary file in the same folder and os.replace, so a run
killed at any moment leaves the file whole; a re-run skips the queries whose key is already there.
"""
from __future__ import annotations

import json
import os
from collections import Counter

from simulator.atomic import write_atomic
from simulator.errors import UserError

KEY_FIELDS = ("arch", "gpu", "t", "b", "p", "o", "engine", "backend")


def row_key(row: dict) -> tuple:
    """What makes a row the same query: architecture, GPU, t, b, p, o, engine and backend."""
    return tuple(row[f] for f in KEY_FIELDS)


def read_rows(path: str) -> list[dict]:
    """All rows of a measurement file ([] when it does not exist); a bad line is a UserError."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not a JSON row ({e.msg}); fix or delete that line") from None
    return rows


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
