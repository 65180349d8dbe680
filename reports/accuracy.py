"""Capability against efficiency: read a model → accuracy CSV and find the Pareto frontiers of accuracy
against idealized runtime and against cost, and which models leave the frontier when the metric changes.

CSV: a header with `model` and `accuracy` columns (a `source` column is optional); lines whose first cell
starts with `#` are comments. Model names are catalog names or aliases.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from reports.pareto import pareto_front
from simulator.errors import UserError


def read_accuracy(path: str | Path) -> dict[str, tuple[float, str]]:
    """catalog name -> (accuracy, source); one-line UserError naming the line for any bad row."""
    from simulator.catalog import get_arch

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"--accuracy {path}: cannot read it ({e.strerror})") from None
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UserError(f"--accuracy {path}: no rows; write a header 'model,accuracy' and one model a line")
    reader = csv.DictReader([ln for _, ln in lines])
    cols = [c.strip() for c in reader.fieldnames or []]
    if "model" not in cols or "accuracy" not in cols:
        raise UserError(f"--accuracy {path}:{lines[0][0]}: the header must name columns 'model' and 'accuracy', "
                        f"got {', '.join(cols)}")
    out: dict[str, tuple[float, str]] = {}
    for (lineno, _), rec in zip(lines[1:], reader):
        rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items()}
        where = f"--accuracy {path}:{lineno}"
        try:
            name = get_arch(rec["model"]).name
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        try:
            acc = float(rec["accuracy"])
        except ValueError:
            raise UserError(f"{where}: accuracy '{rec['accuracy']}' of {rec['model']} is not a number; "
                            "write it as a plain number such as 0.62 or 62.0") from None
        if not math.isfinite(acc):
            raise UserError(f"{where}: accuracy of {rec['model']} must be a finite number, got {rec['accuracy']}")
        if name in out:
            raise UserError(f"{where}: {name} is listed twice; keep one row per model")
        out[name] = (acc, rec.get("source", ""))
    return out


def frontiers(rows: list[dict], accuracy: dict[str, tuple[float, str]],
              metrics: tuple[str, ...] = ("runtime_s", "cost_usd")) -> dict[str, list[str]]:
    """Per metric: the models on the Pareto frontier of accuracy (higher is better) against it (lower is better)."""
    out = {}
    for metric in metrics:
        sel = [r for r in rows if r["model"] in accuracy and r.get(metric) is not None]
        front = pareto_front([r[metric] for r in sel], [accuracy[r["model"]][0] for r in sel], maximize_value=True)
        out[metric] = [sel[i]["model"] for i in front]
    return out


def frontier_changes(front: dict[str, list[str]]) -> list[str]:
    """Sentences saying which models leave (or join) the frontier when the metric changes."""
    names = list(front)
    out = []
    for a, b in zip(names, names[1:]):
        left = [m for m in front[a] if m not in front[b]]
        joined = [m for m in front[b] if m not in front[a]]
        out.append(f"from {a} to {b}: " + ("; ".join(filter(None, [
            f"leave the frontier: {', '.join(left)}" if left else "",
            f"join it: {', '.join(joined)}" if joined else ""])) or "the frontier is the same"))
    return out
