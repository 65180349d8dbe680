"""Serving runs of the reference engine's continuous-batching variant, without torch: the workloads they serve,
the arrival rates named from the simulator's predicted capacity, their latency summaries, the simulator's replay
of a run, and reading a run file (docs/CONTRACTS.md, "Serving run").

Rates: `light`, `near` and `over` are 0.3, 0.9 and 1.5 times the capacity the serving simulator predicts for the
arch, GPU, maximum batch and the run's lengths (requests a second of a replica whose queue never empties: all
requests arriving at once), never a measured figure.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from simulator.arch import ArchSpec
from simulator.catalog import get_arch
from simulator.defaults import model_and_fit
from simulator.deployment import Deployment, ServingResult, serve
from simulator.errors import UserError
from simulator.gpus import GPUSpec, get_gpu
from simulator.workload import Workload, synthetic

RATE_LEVELS = {"light": 0.3, "near": 0.9, "over": 1.5}  # x the simulator's predicted capacity
POLICY = "prefill-one"  # calibration/engine_variants/serving.py's iteration structure
STACK = "triton"
SUMMARY_KEYS = ("ttft_p50", "ttft_p95", "tpot_p50", "tpot_p95", "tokens_per_s")


def parse_rates(text: str) -> list[tuple[str, float | None, float | None]]:
    """(label, factor of capacity or None, requests/s or None) per comma item: a level of RATE_LEVELS or a number."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if item in RATE_LEVELS:
            out.append((item, RATE_LEVELS[item], None))
            continue
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"--rate '{item}': give requests/s > 0 or one of {', '.join(RATE_LEVELS)}")
        out.append((f"{value:g}/s", None, value))
    if not out:
        raise UserError(f"--rate '{text}': give requests/s > 0 or one of {', '.join(RATE_LEVELS)}")
    return out


def replay(arch: ArchSpec, gpu: GPUSpec, workload: Workload, max_batch: int, fit: bool = True) -> ServingResult:
    """The serving simulator on `workload` with the engine's policy on one GPU (its table, its fit or none)."""
    model, coefficients, _ = model_and_fit(gpu, STACK, not fit)
    return serve(arch, gpu, workload, Deployment(gpu.name, 1, 1, max_batch, None, POLICY), model=model,
                 coefficients=coefficients)


def predicted_capacity(arch: ArchSpec, gpu: GPUSpec, prompt: np.ndarray, output: np.ndarray, max_batch: int) -> float:
    """Requests/s the simulator predicts (table and fit) when these requests all arrive at once."""
    w = Workload(np.zeros(len(prompt)), np.asarray(prompt), np.asarray(output), "all at once")
    res = replay(arch, gpu, w, max_batch)
    return len(prompt) / res.makespan_s


def run_workload(lengths: str, rate_per_s: float, requests: int, span_s: float, seed: int) -> Workload:
    """The first min(requests, rate x span) requests of `synthetic(lengths, rate, requests, seed)`: lengths do not
    depend on the rate, so the runs of one distribution serve prefixes of the same requests."""
    w = synthetic(lengths, rate_per_s, requests, seed)
    n = max(1, min(requests, math.ceil(rate_per_s * span_s)))
    return Workload(w.arrival_s[:n], w.prompt[:n], w.output[:n], f"{w.source}, first {n}")


def summary(arrival: np.ndarray, output: np.ndarray, first: np.ndarray, finish: np.ndarray) -> dict:
    """TTFT and TPOT P50/P95 (s) and throughput (output tokens/s, first arrival to last token) of served requests."""
    ttft = first - arrival
    many = output > 1
    tpot = (finish[many] - first[many]) / (output[many] - 1)
    pct = {f"{name}_p{q}": float(np.percentile(v, q)) if v.size else math.nan
           for name, v in (("ttft", ttft), ("tpot", tpot)) for q in (50, 95)}
    makespan = float(finish.max() - arrival.min())
    return {**pct, "tokens_per_s": float(output.sum()) / makespan, "makespan_s": makespan}


def _field(obj: dict, key: str, where: str):
    if key not in obj:
        raise UserError(f"{where}: field '{key}' is missing; write the file with python -m calibration.serve_run")
    return obj[key]


def load_runs(path: str | Path) -> tuple[dict, list[dict]]:
    """(the file's header, its complete runs with numpy arrays) of a serving run file; UserError naming the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON serving run file ({e}); pass one of serve_run's files") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a serving run file (an object with 'runs'); pass one of serve_run's files")
    for key in ("arch", "gpu", "max_batch", "engine_version"):
        _field(data, key, str(path))
    runs = []
    for i, run in enumerate(_field(data, "runs", str(path))):
        where = f"{path} run {i}"
        w, m = _field(run, "workload", where), _field(run, "measured", where)
        arrays = {k: np.asarray(_field(w, k, where), dtype=float) for k in ("arrival_s", "prompt_tokens",
                                                                             "output_tokens")}
        arrays |= {k: np.asarray(_field(m, k, where), dtype=float) for k in ("first_token_s", "finish_s")}
        n = arrays["arrival_s"].size
        if n == 0 or any(a.size != n for a in arrays.values()):
            raise UserError(f"{where}: workload and measured arrays differ in length or are empty; rewrite the file")
        if run.get("complete", True) and np.all(np.isfinite(arrays["finish_s"])):
            runs.append({**run, **arrays})
    return data, runs


def arch_and_gpu(data: dict) -> tuple[ArchSpec, GPUSpec]:
    """The catalog arch and GPU a run file names."""
    return get_arch(data["arch"]), get_gpu(data["gpu"])
