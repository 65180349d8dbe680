"""The cheapest deployments of a workload that meet a latency target: GPU kind × tensor-parallel degree t ×
pipeline stages pp × replicas × max batch, each pruned by memory or served by the simulator
(simulator/deployment.py). Stages default to 1, and on a GPU where no t fits one stage, to the fewest stages
that fit (PIPELINE_STAGES).

Pruning: a (GPU, t, pp) whose memory leaves no room for the KV cache of the workload's largest request beside the
weights and one iteration's activations serves nothing; its deployments are listed as pruned, not simulated.
A target (SLO) is a mapping like {"ttft_p95": 0.5, "tpot_p95": 0.05}: each named percentile of a latency
(ttft, tpot, e2e, queue; p50, p95, p99) at most that many seconds. Deployments meeting every limit come first,
cheapest (USD per 1,000 output tokens) first.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from simulator.arch import ArchSpec
from simulator.deployment import (
    LATENCIES,
    PERCENTILES,
    Deployment,
    ServingResult,
    activation_tokens,
    serve,
)
from simulator.errors import UserError
from simulator.gpus import GIB, GPUSpec
from simulator.memory import (
    MAX_TP_NODES,
    PIPELINE_STAGES,
    check_pp,
    kv_capacity_tokens,
    stage_arch,
    valid_tps,
    weight_bytes_per_gpu,
)
from simulator.stepcost import StepCost
from simulator.timemodel import TimeModel
from simulator.workload import Workload

SLO_KEYS = tuple(f"{name[:-2]}_p{q}" for name in LATENCIES for q in PERCENTILES)
DEFAULT_REPLICAS = (1, 2, 4, 8)
DEFAULT_BATCHES = (8, 16, 32, 64, 128, 256)
KEEP_BEST = 3


def parse_slo(text: str) -> dict[str, float]:
    """`ttft_p95=0.5,tpot_p95=0.05` as a mapping; a UserError naming the bad item."""
    slo = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        try:
            seconds = float(value) if eq else math.nan
        except ValueError:
            seconds = math.nan
        if key not in SLO_KEYS:
            raise UserError(f"--slo '{item}': unknown target '{key}'; use KEY=SECONDS with KEY one of "
                            f"{', '.join(SLO_KEYS)}")
        if not math.isfinite(seconds) or seconds <= 0:
            raise UserError(f"--slo '{item}': give {key}=SECONDS, a number > 0")
        slo[key] = seconds
    if not slo:
        raise UserError("--slo: give at least one target, e.g. ttft_p95=0.5,tpot_p95=0.05")
    return slo


def meets(row: dict, slo: dict[str, float]) -> bool:
    """Whether a deployment's row meets every limit of the target; a TPOT percentile is NaN, and no violation,
    when no request has two output tokens or more."""
    return all(row[k] <= v or (k.startswith("tpot") and math.isnan(row[k])) for k, v in slo.items())


@dataclass(frozen=True)
class PlanResult:
    """Simulated deployments (rows, the SLO's first, cheapest first) and the pruned ones with why."""

    rows: list[dict]  # ServingResult.row() plus "meets_slo"
    pruned: list[dict]  # gpu, t, reason
    slo: dict[str, float]
    warnings: tuple[str, ...]
    best: list[ServingResult]  # the first KEEP_BEST rows' whole results (per-request latencies)

    @property
    def meeting(self) -> list[dict]:
        return [r for r in self.rows if r["meets_slo"]]


def prune_reason(arch: ArchSpec, gpu: GPUSpec, t: int, workload: Workload, max_batch: int,
                 chunk_tokens: int | None, pp: int = 1) -> str | None:
    """Why (arch, gpu, t, pp) cannot serve the workload's largest request, or None if it can."""
    need = int((workload.prompt + workload.output).max())
    probe = Deployment(gpu.name, t, 1, max_batch, chunk_tokens, pp=pp)
    kv = kv_capacity_tokens(arch, gpu, t, activation_tokens(workload, probe), pp)
    if kv >= need:
        return None
    weights = weight_bytes_per_gpu(stage_arch(arch, pp), t) / GIB
    return (f"KV cache holds {kv} tokens beside {weights:.1f} GiB of weights per GPU, under the {need} tokens of the "
            "largest request")


def layouts(arch: ArchSpec, gpu: GPUSpec, workload: Workload, tps: list[int], pps: list[int] | None,
            batch: int, chunk_tokens: int | None) -> list[tuple[int, int]]:
    """(t, pp) to search on one GPU: every t with every given pp; pps None: one stage, or where no t fits one
    stage at `batch`, the fewest stages at which one does."""
    if pps is not None:
        return [(t, check_pp(arch, pp)) for t in tps for pp in pps]
    for pp in [s for s in PIPELINE_STAGES if s <= arch.n_layers]:
        ok = [t for t in tps if t in valid_tps(arch, MAX_TP_NODES)
              and prune_reason(arch, gpu, t, workload, batch, chunk_tokens, pp) is None]
        if ok:
            return [(t, pp) for t in tps]
    return [(t, 1) for t in tps]


def plan(arch: ArchSpec, gpus: list[GPUSpec], workload: Workload, slo: dict[str, float],
         settings: dict[str, tuple[TimeModel, dict | None]], *, tps: list[int] | None = None,
         replicas: tuple[int, ...] = DEFAULT_REPLICAS, batches: tuple[int, ...] = DEFAULT_BATCHES,
         chunk_tokens: int | None = None, policy: str = "prefill-first",
         price_per_hour_usd: float | None = None, pps: list[int] | None = None) -> PlanResult:
    """Serve `workload` on every deployment of the search (module docstring). settings: GPU name -> (time
    model, fit coefficients); tps None: every t the architecture allows on one node; pps None: one stage, or the
    fewest that fit."""
    rows, results, pruned, notes = [], [], [], set()
    for gpu in gpus:
        model, coefficients = settings[gpu.name]
        for t, pp in layouts(arch, gpu, workload, tps if tps is not None else valid_tps(arch), pps, min(batches),
                             chunk_tokens):
            if t not in valid_tps(arch, MAX_TP_NODES):
                pruned.append({"gpu": gpu.name, "t": t, "pp": pp,
                               "reason": f"t={t} does not divide the heads of {arch.name}"})
                continue
            reasons = {b: prune_reason(arch, gpu, t, workload, b, chunk_tokens, pp) for b in batches}
            fitting = [b for b in batches if reasons[b] is None]
            for b in sorted(set(batches) - set(fitting)):
                pruned.append({"gpu": gpu.name, "t": t, "pp": pp, "max_batch": b, "reason": reasons[b]})
            if not fitting:
                continue
            step = StepCost(arch, gpu, t, model, coefficients, pp=pp)
            for n, b in itertools.product(replicas, fitting):
                deployment = Deployment(gpu.name, t, n, b, chunk_tokens, policy, pp=pp)
                result = serve(arch, gpu, workload, deployment, model=model, coefficients=coefficients,
                               price_per_hour_usd=price_per_hour_usd, step=step)
                row = result.row()
                rows.append({**row, "meets_slo": meets(row, slo), "time_model": result.time_model})
                results.append(result)
                notes.update(result.warnings)
            notes.update(model.warnings)
    order = sorted(range(len(rows)), key=lambda i: (not rows[i]["meets_slo"], rows[i]["usd_per_1k_tokens"]))
    return PlanResult([rows[i] for i in order], pruned, slo, tuple(sorted(notes)),
                      [results[i] for i in order[:KEEP_BEST]])
