"""The study's serving view: per model on the base GPU and stack, the cheapest deployment that serves a stated
stream of requests within a stated latency target (continuous batching, simulator/plan.py), and its cost and
energy per 1,000 output tokens, beside the paper's single-request figure (the mix at b = 1, one request at a time).
Nothing is measured here; the serving figures are simulated, as `idealrt plan`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.study import Setting, mix_arrays
from simulator.catalog import get_arch
from simulator.errors import UserError
from simulator.plan import parse_slo, plan
from simulator.workload import synthetic


@dataclass(frozen=True)
class ServingStudy:
    """The stream, the target and the search of the serving view."""

    lengths: str = "lognormal:p=1024,o=256,sigma=0.5"
    rate_per_s: float = 4.0
    requests: int = 400
    seed: int = 0
    slo: str = "ttft_p95=1.0,tpot_p95=0.1"
    replicas: tuple[int, ...] = (1, 2, 4)
    batches: tuple[int, ...] = (16, 64, 256)

    def label(self) -> str:
        """The stream and the target, in one line."""
        return f"{self.lengths} at {self.rate_per_s:g} requests/s ({self.requests} requests), target {self.slo}"


def single_usd_per_1k(row: dict, arch) -> float:
    """Cost per 1,000 output tokens of the mix served one request at a time (the study row's mean cost per request
    over its mean output tokens); NaN for a row without numbers."""
    if "cost_usd" not in row:
        return float("nan")
    _, o, w, _ = mix_arrays(arch)
    return row["cost_usd"] / float(np.sum(w * o)) * 1000.0


def serving_rows(models: list[str], s: Setting, base_rows: list[dict], study: ServingStudy = ServingStudy()
                 ) -> list[dict]:
    """One row per model: the cheapest deployment meeting the target (or a note why none does), beside the mix's
    single-request cost per 1,000 output tokens."""
    workload = synthetic(study.lengths, study.rate_per_s, study.requests, study.seed)
    slo = parse_slo(study.slo)
    single = {r["model"]: r for r in base_rows}
    rows = []
    for name in models:
        arch = get_arch(name)
        row = {"model": arch.name, "gpu": s.gpu.name, "stack": s.stack,
               "single_usd_per_1k_tokens": single_usd_per_1k(single.get(arch.name, {}), arch)}
        if int((workload.prompt + workload.output - 1).max()) > arch.max_positions:
            rows.append({**row, "note": f"the stream's requests exceed max_positions {arch.max_positions}"})
            continue
        try:
            result = plan(arch, [s.gpu], workload, slo, {s.gpu.name: (s.model, s.coefficients)},
                          replicas=study.replicas, batches=study.batches)
        except UserError as e:
            rows.append({**row, "note": str(e).split(";")[0]})
            continue
        if not result.meeting:
            why = "no deployment searched meets the target" if result.rows else "no deployment fits in memory"
            rows.append({**row, "note": why})
            continue
        best = result.meeting[0]
        rows.append({**row, **{k: best[k] for k in ("t", "pp", "replicas", "n_gpus", "max_batch", "usd_per_1k_tokens",
                                                     "joules_per_1k_tokens", "tokens_per_s_per_gpu", "ttft_p95",
                                                     "tpot_p95")},
                     "note": ""})
    return rows
