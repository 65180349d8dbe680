"""Predicted energy per query against the GPU energy measured with it (NVML's counter, `energy_j` of a row).

For every measured row with `energy_j`: the measured energy of a run is its timed runs' energy over their time
(`mean_power_w` x `total_s`), since the counter advances in 100 ms steps (calibration/energy_meter.py); the median
run's reading (`energy_j`) is kept beside it. Rows metered over a window of runs back to back (`metering` "window":
`idealrt measure --energy-window`, calibration/energy_window.py; calibration/measurements/energy_windows/) read
whole counter steps over at least a second; the others (`metering` "runs") read the counter around each run. The simulator's energy (simulator/power.py: the table's `op_power`
section, measured on microbenchmarks; nothing is fitted to these rows) beside the measured one, with the two
factors it is made of — time, and mean board power (energy / time) — and beside the baseline of one board power
figure for every op (the table's NVML p90, else the datasheet). Methods: `table` (the table alone, every row) and
`fitted` (the shipped fit of the GPU and stack applied, on its `heldout` rows only: the fit saw the others).
A fitted variant is reported apart: `table_loao_scale`, the table's energy times one factor per (GPU, t, stack), the
median measured / predicted energy of the OTHER architectures' rows (leave-one-architecture-out).
Errors are signed percentages (predicted − measured) / measured · 100; summaries give the median and P95 of their
absolute values, and the median signed error (the bias).

    python -m benchmarks.validate_energy [--measurements FILE ...] [--out benchmarks/results/validate_energy.json]
"""
from __future__ import annotations

import argparse
import datetime
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration.fit import TABLE_STACK, data_provenance, fused_elementwise, host_of
from calibration.measurements_io import arch_of, of_current_engine, read_measurements
from simulator.errors import UserError
from simulator.paths import MEASUREMENTS_DIR, REPO

METHODS = ("table", "fitted", "table_loao_scale")
OUT = REPO / "benchmarks" / "results" / "validate_energy.json"
WINDOWS_DIR = MEASUREMENTS_DIR / "energy_windows"  # rows of `idealrt measure --energy-window`
METER = REPO / "benchmarks" / "results" / "energy_meter_{gpu}.json"  # the counter's step (calibration/energy_meter.py)
STEPS_BAR = 10  # counter steps a run spans for its one-step reading error to be within the 10 % energy bar
# signed % error fields of a record, "<name>_err_pct"; "meter": the median run's reading (energy_j) against
# all runs' (mean_power_w), how far the measurement disagrees with itself
ERRORS = ("energy", "time", "power", "baseline_energy", "meter")


def stack_of(row: dict) -> str:
    """The row's stack as results name it: the backend of the reference engine, else the engine."""
    return row["backend"] if row["engine"] == "idealrt" else row["engine"]


def metering(row: dict) -> str:
    """How the row's energy was metered: "window" (runs back to back over whole counter steps,
    calibration/energy_window.py) or "runs" (the counter read around each timed run)."""
    return "window" if "energy_window" in row else "runs"


def window_s(row: dict) -> float:
    """Seconds of runs the row's energy reading spans: its window, else its timed runs back to back."""
    return row["energy_window"]["seconds"] if "energy_window" in row else row["total_s"] * row.get("repeats", 1)


def default_paths() -> list[Path]:
    """The shipped measurement files and the energy-window files beside them."""
    return sorted(MEASUREMENTS_DIR.glob("*.jsonl")) + sorted(WINDOWS_DIR.glob("*.jsonl"))


def _pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured


def predict_rows(rows: Sequence[dict], method: str) -> list[dict]:
    """One record per row of one (arch, GPU, t, engine, backend): measured and predicted energy, time, power."""
    from simulator.fits import load_fit
    from simulator.gpus import get_gpu
    from simulator.predict import board_power, predict
    from simulator.tables import default_model

    first = rows[0]
    gpu = get_gpu(first["gpu"])
    stack = TABLE_STACK.get(first["backend"], first["backend"])
    model = default_model(gpu, stack)
    fit = load_fit(gpu.name, stack) if method == "fitted" else None
    p, o, b = (np.array([r[k] for r in rows]) for k in ("p", "o", "b"))  # (n,) each
    pred = predict(arch_of(first), gpu, p, o, b, first["t"], model=model, coefficients=fit,
                   fused=fused_elementwise(first), host=host_of(first))
    baseline_w, _ = board_power(model, gpu)
    out = []
    for i, r in enumerate(rows):
        energy, total = float(pred.energy_j[i]), float(pred.total_s[i])
        # all timed runs' energy over their time (back to back: one counter step of error over the whole window),
        # not the median run's reading (one step of error over one run: the counter advances every 100 ms)
        measured_w = r.get("mean_power_w", r["energy_j"] / r["total_s"])
        measured_j, predicted_w = measured_w * r["total_s"], energy / total
        baseline = total * pred.n_gpus * baseline_w
        out.append({"gpu": gpu.name, "t": r["t"], "stack": stack_of(r), "metering": metering(r), "arch": r["arch"],
                    "b": r["b"], "p": r["p"],
                    "o": r["o"], "split": r.get("split"), "method": method, "measured_j": measured_j,
                    "median_run_j": r["energy_j"], "window_s": window_s(r),
                    "predicted_j": energy, "baseline_j": baseline, "measured_s": r["total_s"], "predicted_s": total,
                    "measured_w": measured_w, "predicted_w": predicted_w,
                    "energy_err_pct": _pct(energy, measured_j), "time_err_pct": _pct(total, r["total_s"]),
                    "power_err_pct": _pct(predicted_w, measured_w),
                    "baseline_energy_err_pct": _pct(baseline, measured_j),
                    "meter_err_pct": _pct(r["energy_j"], measured_j),
                    "idle_j": float(pred.energy_by_class.get("idle", np.zeros(p.shape))[i]),
                    "power_source": pred.power_source, "fit": None if fit is None else fit.get("path")})
    return out


def records(rows: Sequence[dict]) -> list[dict]:
    """Every method's records over the rows with energy (`fitted`: only where a fit exists, its heldout rows)."""
    from simulator.fits import load_fit
    from simulator.gpus import get_gpu

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["arch"], get_gpu(r["gpu"]).name, r["t"], r["engine"], r["backend"], fused_elementwise(r), host_of(r))
        groups.setdefault(key, []).append(r)
    out = []
    for (_, gpu, _, engine, backend, _, _), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        out += predict_rows(group, "table")
        heldout = [r for r in group if r.get("split") == "heldout"]
        if engine == "idealrt" and heldout and load_fit(gpu, TABLE_STACK.get(backend, backend)) is not None:
            out += predict_rows(heldout, "fitted")
    return out + loao_scaled(out)


def loao_scaled(recs: Sequence[dict]) -> list[dict]:
    """The `table` records with energy times the median measured / predicted ratio of the other architectures'
    rows of the same GPU, t and stack (method `table_loao_scale`); none where no other architecture has rows."""
    table = [r for r in recs if r["method"] == "table"]
    out = []
    for r in table:
        others = [q["measured_j"] / q["predicted_j"] for q in table
                  if (q["gpu"], q["t"], q["stack"], q["metering"]) == (r["gpu"], r["t"], r["stack"], r["metering"])
                  and q["arch"] != r["arch"]]
        if not others:
            continue
        k = float(np.median(others))
        energy = k * r["predicted_j"]
        out.append({**r, "method": "table_loao_scale", "scale": k, "predicted_j": energy,
                    "predicted_w": energy / r["predicted_s"], "energy_err_pct": _pct(energy, r["measured_j"]),
                    "power_err_pct": _pct(energy / r["predicted_s"], r["measured_w"])})
    return out


def summarize(recs: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    """Per group of `keys`: n, and for each error its median and P95 absolute % and median signed % (bias)."""
    groups: dict[tuple, list[dict]] = {}
    for rec in recs:
        groups.setdefault(tuple(rec[k] for k in keys), []).append(rec)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        entry = {**dict(zip(keys, key)), "n": len(groups[key])}
        for name in ERRORS:
            err = np.array([r[f"{name}_err_pct"] for r in groups[key]])
            entry[name] = {"median_abs_pct": round(float(np.median(np.abs(err))), 2),
                           "p95_abs_pct": round(float(np.percentile(np.abs(err), 95)), 2),
                           "median_pct": round(float(np.median(err)), 2)}
        out.append(entry)
    return out


def _loo_predict(kind: str, train: list[dict], test: dict, gpu, idle_w: float) -> float:
    """Watts of `test` from the other points of its (stack, class): the shipped activity model, or piecewise-linear
    interpolation (clamped) in log10 arithmetic intensity or in roofline utilisation (the alternatives weighed)."""
    from simulator.opclasses import op_cost, roofline_s
    from simulator.power import fit_activity, utilisation

    def coords(pt: dict) -> tuple[float, float, float]:
        flops, nbytes = (float(v) for v in op_cost(pt["op"], pt["shape"]))
        sec = pt["table_us"] * 1e-6
        u_mem, u_flop = (float(v) for v in utilisation(flops, nbytes, sec, gpu))
        roof = float(roofline_s(pt["op"], pt["shape"], gpu.peak_bf16_flops, gpu.hbm_bw_bytes_s,
                                 gpu.interconnect_bw_bytes_s))
        return u_mem, u_flop, {"log_intensity": np.log10(max(flops, 1) / max(nbytes, 1)), "utilisation": roof / sec}
    if kind == "activity":
        m, f, w = (np.array(c) for c in zip(*[(*coords(q)[:2], q["watts"]) for q in train]))
        a, b = fit_activity(m, f, w, idle_w, gpu.board_power_w)
        u_mem, u_flop, _ = coords(test)
        return float(min(gpu.board_power_w, idle_w + a * u_mem + b * u_flop))
    xs = np.array([coords(q)[2][kind] for q in train])
    order = np.argsort(xs)
    return float(np.interp(coords(test)[2][kind], xs[order], np.array([q["watts"] for q in train])[order]))


def point_loo(gpu_name: str) -> dict | None:
    """Leave-one-point-out over a table's op_power points, each (stack, class) apart: the shipped power model and
    the alternatives, median / P90 / mean absolute % error (how the model was chosen: docs/decisions.md)."""
    from simulator.gpus import get_gpu
    from simulator.paths import TABLES_DIR
    from simulator.tables import load_table

    gpu = get_gpu(gpu_name)
    section = load_table(TABLES_DIR / (gpu.table or f"{gpu.name}.json")).get("op_power")
    if not section:
        return None
    pts = section["points"]
    out = {}
    for kind in ("activity", "log_intensity", "utilisation"):
        errs = []
        for i, pt in enumerate(pts):
            train = [q for j, q in enumerate(pts) if j != i and (q["stack"], q["op"]) == (pt["stack"], pt["op"])]
            if train:
                errs.append(abs(_loo_predict(kind, train, pt, gpu, section["idle_w"]) / pt["watts"] - 1) * 100)
        e = np.array(errs)
        out[kind] = {"n": int(e.size), "median_abs_pct": round(float(np.median(e)), 1),
                     "p90_abs_pct": round(float(np.percentile(e, 90)), 1), "mean_abs_pct": round(float(e.mean()), 1)}
    return out


def energy_rows(paths: Sequence[Path], any_version: bool) -> tuple[list[dict], list[str]]:
    """The measured rows with energy, of the current engine version unless `any_version`; notes on what was left out."""
    rows = [r for r in read_measurements(paths) if r.get("energy_j")]
    if not rows:
        raise UserError(f"--measurements: no row of {', '.join(map(str, paths))} has 'energy_j'; "
                        "measure with 'idealrt measure' on a GPU with NVML's energy counter")
    kept, note = of_current_engine(rows, any_version)
    if not kept:
        raise UserError(f"{note}")
    return kept, [note] if note else []


def report(rows: list[dict], notes: list[str], command: str) -> dict:
    """The result file's content: provenance, summaries per (GPU, t, stack, method), per architecture, records."""
    recs = records(rows)
    keys = ["gpu", "t", "stack", "metering", "method"]
    return {"provenance": {"command": command, "date": datetime.datetime.now(datetime.timezone.utc)
                           .isoformat(timespec="seconds"), "measurements": data_provenance(rows),
                           "power_sources": sorted({r["power_source"] for r in recs})},
            "what": __doc__.split("\n\n")[1].replace("\n", " "), "notes": notes,
            "power_model_point_loo": {g: point_loo(g) for g in sorted({r["gpu"] for r in recs})},
            "summary": summarize(recs, keys), "by_arch": summarize(recs, keys[:3] + ["arch", "method"]),
            "by_phase_mix": summarize([{**r, "decode": r["o"] > 1} for r in recs], keys + ["decode"]),
            "by_batch": summarize(recs, keys + ["b"]),
            "by_above_board_limit": summarize([{**r, "above_limit": r["measured_w"] > _limit(r["gpu"])} for r in recs],
                                              keys + ["above_limit"]),
            # a run of a few counter steps reads whole steps: its energy is uncertain by up to one step
            "by_counter_steps": summarize([{**r, "counter_steps": _counter_steps(r)} for r in recs],
                                          keys + ["counter_steps"]),
            "records": [_slim(r) for r in recs if r["method"] != "table_loao_scale"]}


@functools.cache
def counter_step_s(gpu_name: str) -> float | None:
    """The measured interval between the GPU's energy counter updates under load (None: not measured); read once."""
    import json

    path = Path(str(METER).format(gpu=gpu_name))
    if not path.exists():
        return None
    return json.loads(path.read_text())["gemm_load"]["interval_ms_median"] / 1e3


def _counter_steps(rec: dict) -> str:
    """Whether a row's metered runs span STEPS_BAR counter steps, fewer, or the counter's step is unknown."""
    step = counter_step_s(rec["gpu"])
    if step is None:
        return "unknown"
    return f">= {STEPS_BAR}" if rec["window_s"] >= STEPS_BAR * step else f"< {STEPS_BAR}"


def _limit(gpu_name: str) -> float:
    """The GPU's board power limit (datasheet): a measured mean power above it is a short burst or the meter."""
    from simulator.gpus import get_gpu

    return get_gpu(gpu_name).board_power_w


def _slim(rec: dict) -> dict:
    """A record as the result file keeps it: no strings the provenance holds, 4 significant digits."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in rec.items()
            if k not in ("power_source", "fit", "baseline_j")}


def print_summary(summary: list[dict]) -> None:
    """One line per (GPU, t, stack, method): energy, time, power and baseline energy errors."""
    print(f"{'gpu':8s} {'t':>2s} {'stack':9s} {'metering':8s} {'method':7s} {'n':>4s}  "
          + "  ".join(f"{name + ' med/P95/bias %':>28s}" for name in ERRORS))
    for s in summary:
        cells = "  ".join(f"{s[n]['median_abs_pct']:8.1f} {s[n]['p95_abs_pct']:8.1f} {s[n]['median_pct']:+9.1f}  "
                          for n in ERRORS)
        print(f"{s['gpu']:8s} {s['t']:>2d} {s['stack']:9s} {s['metering']:8s} {s['method']:7s} {s['n']:>4d}  {cells}")


def main(argv: list[str] | None = None) -> int:
    """Command line: validate predicted energy on the measured rows and write the result JSON (atomic)."""
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="python -m benchmarks.validate_energy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--measurements", nargs="+", type=Path, help="JSONL files (default calibration/measurements/*.jsonl and energy_windows/*.jsonl)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT.relative_to(REPO)})")
    ap.add_argument("--any-engine-version", action="store_true", help="use rows of any engine version")
    args = ap.parse_args(argv)
    try:
        rows, notes = energy_rows(args.measurements or default_paths(),
                                  args.any_engine_version)
        result = report(rows, notes, "python -m benchmarks.validate_energy " + " ".join(sys.argv[1:]))
        write_json_atomic(args.out, result)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(result["summary"])
    for gpu, loo in result["power_model_point_loo"].items():
        print(f"{gpu}: op_power leave-one-point-out, median / P90 % by power model: "
              + ", ".join(f"{k} {v['median_abs_pct']} / {v['p90_abs_pct']}" for k, v in (loo or {}).items()))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.out}")
    return 0
