"""What the calibration report shows, gathered from the data files: throughput table, measured
configuration queries, the fit, and the simulator's prediction for each query.

Every source may be absent (data lands over time); absent ones are None or empty, and the report
shows a "not measured yet" note for them instead of failing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.errors import UserError
from simulator.paths import CALIBRATION_DIR
STACKS = ("triton", "torch")


@dataclass
class CalibrationInputs:
    """Everything the calibration report draws, for one GPU and software stack."""

    gpu: str
    stack: str
    gpu_label: str = ""
    table: dict | None = None
    table_path: Path | None = None
    table_derived_from: str = ""  # the measured GPU a derived table comes from ("" for its own table)
    measurements: list[dict] = field(default_factory=list)  # the rows of this stack
    measurement_files: list[Path] = field(default_factory=list)
    fit: dict | None = None
    fit_path: Path | None = None
    predicted: list[dict | None] = field(default_factory=list)  # per measurement: prefill_s, decode_step_s, total_s
    predict_note: str = ""  # why predictions are missing, if they are


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: the {what} is not valid JSON ({e.msg}); re-create it") from None


def load_inputs(gpu: str, stack: str = "triton", data_dir: Path = CALIBRATION_DIR,
                predict: bool = True) -> CalibrationInputs:
    """Read the table (its own, else one derived from a measured GPU's), measurements and fit of `gpu`
    (catalog name) and `stack` under `data_dir`."""
    from simulator.gpus import get_gpu

    if stack not in STACKS:
        raise UserError(f"--stack is '{stack}'; use one of {', '.join(STACKS)}")
    spec = get_gpu(gpu)
    inp = CalibrationInputs(gpu=spec.name, stack=stack, gpu_label=spec.label)
    table_path = data_dir / "tables" / (spec.table or f"{spec.name}.json")
    if table_path.exists():
        inp.table, inp.table_path = _read_json(table_path, "throughput table"), table_path
    else:  # no table of its own: the one derived from the nearest measured GPU's, as predictions use it
        from simulator.tables import table_model_for

        model = table_model_for(spec, stack, tables_dir=data_dir / "tables")
        inp.table = model.table if model is not None else None
        inp.table_derived_from = model.derived_from or "" if model is not None else ""
    inp.measurement_files = sorted((data_dir / "measurements").glob(f"{spec.name}_t*.jsonl"))
    if inp.measurement_files:
        from calibration.measurements_io import read_measurements

        rows = read_measurements(inp.measurement_files)
        inp.measurements = [{**r, "decode_step_s": r["decode_s"] / (r["o"] - 1) if r["o"] > 1 else 0.0}
                            for r in rows if r.get("backend", stack) == stack]
    fit_path = data_dir / "fits" / f"{spec.name}_{stack}.json"
    if fit_path.exists():
        inp.fit, inp.fit_path = _read_json(fit_path, "fit"), fit_path
    if predict and inp.measurements:
        inp.predicted, inp.predict_note = predict_rows(inp.measurements, spec.name, stack, inp.fit)
    return inp


def predict_rows(rows: list[dict], gpu: str, stack: str, fit: dict | None) -> tuple[list[dict | None], str]:
    """The simulator's prefill, decode-step and total time for each measured query (with the fit's
    coefficients when there is a fit); (predictions, note on anything left out)."""
    try:
        from calibration.measurements_io import arch_of
        from simulator.gpus import get_gpu
        from simulator.predict import predict
        from simulator.tables import table_model_for
    except ImportError as e:
        return [None] * len(rows), f"the simulator is not available yet ({e.name}); no predictions drawn"
    spec = get_gpu(gpu)
    model = table_model_for(spec, stack)
    coefs = fit.get("coefficients") if fit else None
    out, refused = [], {}
    for r in rows:
        try:
            pr = predict(arch_of(r), spec, r["p"], r["o"], r["b"], r["t"], model=model, coefficients=coefs)
        except UserError as e:  # e.g. an architecture the catalog lacks, or p + o past its max_positions
            why = str(e).split(";")[0]  # the reason, without the CLI's advice
            refused[why] = refused.get(why, 0) + 1
            out.append(None)
            continue
        out.append({k: float(np.ravel(getattr(pr, k))[0]) for k in ("prefill_s", "decode_step_s", "total_s")})
    note = "; ".join(f"{n} queries left out: {why}" for why, n in refused.items())
    return out, note


def points(table: dict | None, op: str) -> list[dict]:
    """The table's points of one op class with a positive median time."""
    if not table:
        return []
    return [p for p in table.get("points", []) if p.get("op") == op and p.get("median_us", 0) > 0]


def stack_label(stack: str) -> str:
    """How a stack is named in the charts: ours (Triton) against the vendor's (torch: cuBLAS, SDPA, NCCL)."""
    return {"triton": "ours (Triton)", "torch": "vendor (torch)"}.get(stack, stack)


def err_pct(pred: float, meas: float) -> float:
    """Signed error of a prediction in percent, 100·(predicted − measured) / measured; NaN when nothing was
    measured (a decode step of a query with o = 1)."""
    return 100.0 * (pred - meas) / meas if meas > 0 else float("nan")
