"""Reading and writing throughput tables (docs/CONTRACTS.md): atomic replaces, resumable sweeps.

A sweep appends points to a `TableWriter`, which rewrites the whole file through a temp file and
`os.replace` every few seconds, so a killed sweep leaves a valid table holding every point measured up to
the last checkpoint; on restart the writer loads those points (when the file was measured on the same GPU)
and the sweep skips them. Points that raised are kept apart under `errors` and retried by the next run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from simulator.atomic import write_atomic
from simulator.errors import UserError
from simulator.paths import TABLES_DIR
from simulator.tables import load_table


def dumps_table(obj: dict) -> str:
    """JSON text with one line per top-level key and one line per item of its lists (points diff well)."""
    def value(v) -> str:
        if isinstance(v, list) and v:
            return "[\n  " + ",\n  ".join(json.dumps(x) for x in v) + "\n ]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in obj.items()) + "\n}\n"


def write_json_atomic(path: str | Path, obj: dict) -> None:
    """Write JSON to `path` via a temp file in the same folder and os.replace (never half-written)."""
    write_atomic(path, dumps_table(obj))


def merge_section(section: dict, table_path: str | Path, key: str) -> None:
    """Write a measured section into the table file at `table_path` under `key` (atomic); entries of an older
    section under that key that the new one does not have (another measurement's) stay."""
    with open(table_path) as f:
        table = json.load(f)
    table[key] = {**(table.get(key) or {}), **section}
    write_json_atomic(table_path, table)


def point_key(op: str, stack: str, shape: dict) -> tuple:
    """Identity of a point: op class, stack and shape (order of shape keys does not matter)."""
    return op, stack, tuple(sorted(shape.items()))


def new_table(provenance: dict) -> dict:
    """An empty table with the contract's top-level keys; its launch model is the shipped table's
    (`shipped_launch_model`)."""
    return {"provenance": provenance, "derived": None, "status": "partial", "ceilings": {}, "power_w": None,
            "launch_model": shipped_launch_model(provenance.get("gpu")), "points": [], "errors": []}


def shipped_launch_model(gpu: str | None) -> dict | None:
    """The launch model (simulator.quanta.LaunchModel) of the shipped table of `gpu`, else of the first shipped
    table that has one, saying where it was copied from; None when no shipped table has one."""
    paths = sorted(TABLES_DIR.glob("*.json"), key=lambda p: p.stem != gpu)
    for path in paths:
        try:
            entry = load_table(path).get("launch_model")
        except UserError:
            continue
        if isinstance(entry, dict) and "values" in entry:
            return {"values": entry["values"], "source": f"copied from {path.name}: {entry.get('source', '')}"}
    return None


class TableWriter:
    """Collects points of one sweep into `path`, checkpointing atomically every `every_s` seconds."""

    def __init__(self, path: str | Path, provenance: dict, *, resume: bool = True, every_s: float = 5.0):
        self.path, self.every_s = Path(path), every_s
        self.table = new_table(dict(provenance))
        if resume and self.path.exists():
            old = load_table(self.path)
            old_gpu = old.get("provenance", {}).get("gpu_name")
            if old_gpu != provenance.get("gpu_name"):
                raise UserError(f"--out {self.path} holds a table of '{old_gpu}', not of this "
                                f"'{provenance.get('gpu_name')}'; pass another --out or --fresh")
            self.table = old
            self.table["errors"] = []  # errors are retried
            runs = self.table["provenance"].setdefault("resumed_by", [])
            runs.append({k: provenance.get(k) for k in ("date", "command", "driver", "torch", "triton")})
        # where each measured point sits in the table's list, by point_key
        self.done = {point_key(p["op"], p["stack"], p["shape"]): i for i, p in enumerate(self.table["points"])}
        self._last = time.monotonic()

    @property
    def provenance(self) -> dict:
        return self.table["provenance"]

    def add(self, row: dict) -> None:
        """Add one measured point (a dict with op, stack, shape and the timing fields)."""
        self.done[point_key(row["op"], row["stack"], row["shape"])] = len(self.table["points"])
        self.table["points"].append(row)
        self.checkpoint()

    def get(self, row: dict) -> dict:
        """The table's point with the same op, stack and shape as `row`."""
        return self.table["points"][self.done[point_key(row["op"], row["stack"], row["shape"])]]

    def replace(self, row: dict) -> None:
        """Put `row` in place of the table's point with the same op, stack and shape."""
        self.table["points"][self.done[point_key(row["op"], row["stack"], row["shape"])]] = row
        self.checkpoint()

    def add_error(self, op: str, stack: str, shape: dict, message: str) -> None:
        """Record a point that failed; the sweep goes on and a later run retries it."""
        self.table["errors"].append({"op": op, "stack": stack, "shape": shape, "error": message[:300]})
        self.checkpoint()

    def checkpoint(self, force: bool = False) -> None:
        """Rewrite the file if `every_s` seconds passed since the last write (or when forced)."""
        if force or time.monotonic() - self._last >= self.every_s:
            write_json_atomic(self.path, self.table)
            self._last = time.monotonic()

    def finish(self, complete: bool) -> None:
        """Final write; `complete` marks a table whose whole grid was attempted."""
        self.table["status"] = "complete" if complete else "partial"
        self.checkpoint(force=True)


def merge_points(path: str | Path, rows: list[dict], provenance: dict) -> dict:
    """Put `rows` (e.g. all-reduce points of another run) into the table at `path`, each with its provenance.

    A point with the same op, stack and shape is replaced. Creates the file if absent. Returns the table.
    """
    path = Path(path)
    table = load_table(path) if path.exists() else new_table(dict(provenance))
    keys = {point_key(r["op"], r["stack"], r["shape"]) for r in rows}
    kept = [p for p in table["points"] if point_key(p["op"], p["stack"], p["shape"]) not in keys]
    table["points"] = kept + [dict(r, provenance=provenance) for r in rows]
    write_json_atomic(path, table)
    return table


def seed_table(source: str | Path, out: str | Path, ops: tuple[str, ...], stack: str, provenance: dict) -> int:
    """Start table `out` (provenance `provenance`, this run's) with `source`'s points of `ops` on `stack`, each
    tagged with the provenance of the run that measured it (the last of `source`'s runs whose command names its
    class), so a calibrate run resuming `out` measures only the nodes `source` lacks. Returns the points copied."""
    src = load_table(source)
    runs = [src["provenance"]] + list(src["provenance"].get("resumed_by") or [])
    table = new_table(dict(provenance))
    for p in src["points"]:
        if p["op"] in ops and p["stack"] == stack:
            own = p.get("provenance") or next((r for r in reversed(runs) if p["op"] in str(r.get("command", ""))),
                                              src["provenance"])
            table["points"].append(dict(p, provenance={k: v for k, v in own.items() if k != "resumed_by"}))
    write_json_atomic(out, table)
    return len(table["points"])
