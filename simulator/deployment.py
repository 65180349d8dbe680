"""A workload served by a deployment: replicas of t GPUs each, continuous batching on each (simulator/serving.py),
and what it yields: latency per request, throughput, GPU-hours, cost and energy per 1,000 output tokens.

Requests go to replicas in turn (round robin, in arrival order). Each replica's KV cache holds what the memory
model leaves beside the weights and one iteration's activations (simulator/memory.py). Cost and energy count
every GPU for the whole run (first arrival to last token), at the catalog's (or the given) price. Energy is
`simulator.predict`'s model: with a table's measured power per op class (simulator/power.py), each iteration's
kernels at their power and every GPU at idle power the rest of the run; without it, one board power figure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.memory import kv_capacity_tokens
from simulator.network import note
from simulator.power import SOURCE as OP_POWER_SOURCE
from simulator.predict import board_power
from simulator.serving import check_policy, simulate
from simulator.stepcost import StepCost
from simulator.timemodel import TimeModel, describe
from simulator.workload import Workload

LATENCIES = ("ttft_s", "tpot_s", "e2e_s", "queue_s")
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Deployment:
    """What is deployed: GPU kind, tensor-parallel degree, replicas, each replica's scheduler, and its pipeline
    stages (one micro-batch in flight)."""

    gpu: str
    t: int
    replicas: int
    max_batch: int
    chunk_tokens: int | None = None
    policy: str = "prefill-first"
    pp: int = 1

    @property
    def n_gpus(self) -> int:
        return self.t * self.pp * self.replicas


@dataclass(frozen=True)
class ServingResult:
    """Per request (arrival order) latencies in seconds; per run throughput, cost and energy."""

    arch: str
    deployment: Deployment
    workload: Workload
    queue_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray  # NaN for a request of one output token
    e2e_s: np.ndarray
    makespan_s: float  # first arrival to last token
    iterations: int
    kv_tokens: int  # KV-cache capacity of one replica
    price_per_hour_usd: float
    power_w: float  # mean board power per GPU over the run
    energy_j: float  # every GPU, the whole run
    power_source: str
    time_model: str
    warnings: tuple[str, ...]

    @property
    def output_tokens(self) -> int:
        return int(self.workload.output.sum())

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.makespan_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.deployment.n_gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        """Decode speed one user sees: the mean over requests of 1 / TPOT."""
        tpot = self.tpot_s[np.isfinite(self.tpot_s) & (self.tpot_s > 0)]
        return float(np.mean(1.0 / tpot)) if tpot.size else float("nan")

    @property
    def gpu_hours(self) -> float:
        return self.deployment.n_gpus * self.makespan_s / 3600.0

    @property
    def usd_per_1k_tokens(self) -> float:
        return self.gpu_hours * self.price_per_hour_usd / self.output_tokens * 1000.0

    @property
    def joules_per_1k_tokens(self) -> float:
        return self.energy_j / self.output_tokens * 1000.0

    def percentile(self, latency: str, q: float) -> float:
        """The q-th percentile of one of LATENCIES over the requests it applies to."""
        values = getattr(self, latency)
        values = values[np.isfinite(values)]
        return float(np.percentile(values, q)) if values.size else float("nan")

    def row(self) -> dict:
        """One flat row: the deployment, throughput, cost, energy and latency percentiles (`ttft_p95`...)."""
        d = self.deployment
        out = {"arch": self.arch, "gpu": d.gpu, "t": d.t, "pp": d.pp, "replicas": d.replicas, "n_gpus": d.n_gpus,
               "max_batch": d.max_batch, "chunk_tokens": d.chunk_tokens, "policy": d.policy,
               "requests": len(self.workload), "kv_tokens": self.kv_tokens, "makespan_s": self.makespan_s,
               "tokens_per_s": self.tokens_per_s, "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
               "tokens_per_s_per_user": self.tokens_per_s_per_user, "gpu_hours": self.gpu_hours,
               "usd_per_1k_tokens": self.usd_per_1k_tokens, "joules_per_1k_tokens": self.joules_per_1k_tokens}
        for name in LATENCIES:
            for q in PERCENTILES:
                out[f"{name[:-2]}_p{q}"] = self.percentile(name, q)
        return out


def activation_tokens(workload: Workload, deployment: Deployment) -> int:
    """Tokens of the largest iteration the memory model reserves activations for: the chunk budget, else the
    longest prompt (at least one decode token per request of a full batch)."""
    per_iteration = deployment.chunk_tokens or int(workload.prompt.max())
    return max(per_iteration, deployment.max_batch)


def serve(arch: ArchSpec, gpu: GPUSpec, workload: Workload, deployment: Deployment, *, model: TimeModel,
          coefficients: dict | None = None, price_per_hour_usd: float | None = None,
          step: StepCost | None = None) -> ServingResult:
    """Serve `workload` with `deployment` of `arch` on `gpu` (module docstring). `step`: iteration times to
    reuse across deployments of the same arch, GPU and t (default: a new StepCost)."""
    check_policy(deployment.policy, deployment.chunk_tokens, deployment.max_batch)
    if deployment.replicas < 1:
        raise UserError(f"replicas {deployment.replicas}: give a whole number >= 1")
    used = arch.positions_used(workload.prompt, workload.output)
    if used.max() > arch.max_positions:
        row = int(np.argmax(used))
        raise UserError(f"request {row}: prompt + output - 1 = {int(used[row])} positions exceed max_positions="
                        f"{arch.max_positions} of {arch.name}; shorten it")
    kv = kv_capacity_tokens(arch, gpu, deployment.t, activation_tokens(workload, deployment), deployment.pp)
    step = step if step is not None else StepCost(arch, gpu, deployment.t, model, coefficients, pp=deployment.pp)
    step.prepare(workload.prompt)
    n = len(workload)
    start, first, finish = np.empty(n), np.empty(n), np.empty(n)
    iterations, ran = 0, []
    for r in range(deployment.replicas):
        sel = slice(r, None, deployment.replicas)
        step.reset()
        s = simulate(workload.arrival_s[sel], workload.prompt[sel], workload.output[sel], step,
                     deployment.max_batch, kv, deployment.chunk_tokens, deployment.policy)
        start[sel], first[sel], finish[sel] = s.start_s, s.first_token_s, s.finish_s
        iterations += s.iterations
        ran.append((getattr(step, "busy_s", 0.0), getattr(step, "work_j", 0.0)))
    arrival, o = workload.arrival_s, workload.output
    tpot = np.where(o > 1, (finish - first) / np.maximum(o - 1, 1), np.nan)
    price = gpu.price_per_hour_usd if price_per_hour_usd is None else float(price_per_hour_usd)
    makespan = float(finish.max() - arrival.min())
    energy, source = _energy(step, model, gpu, deployment, makespan, ran)
    warnings = set(model.warnings) | ({note(gpu)} if deployment.pp > 1 else set())
    return ServingResult(arch=arch.name, deployment=deployment, workload=workload, queue_s=start - arrival,
                         ttft_s=first - arrival, tpot_s=tpot, e2e_s=finish - arrival,
                         makespan_s=makespan, iterations=iterations, kv_tokens=kv,
                         price_per_hour_usd=price, power_w=energy / (deployment.n_gpus * makespan), energy_j=energy,
                         power_source=source, time_model=describe(model), warnings=tuple(sorted(warnings)))


def _energy(step, model: TimeModel, gpu: GPUSpec, deployment: Deployment, makespan_s: float,
            ran: list[tuple[float, float]]) -> tuple[float, str]:
    """Joules of every GPU over the run and where the power came from: per replica, its t GPUs of each stage ran
    their kernels for `busy` seconds at `work` joules (StepCost's sums, per GPU of a stage: the stages share the
    model's work), and draw idle power the rest of the run; without a power model, board power all along."""
    power = getattr(step, "power", None)
    if power is None:
        watts, source = board_power(model, gpu)
        return deployment.n_gpus * watts * makespan_s, source
    t, pp = deployment.t, deployment.pp
    joules = sum(t * work + power.idle_w * max(t * pp * makespan_s - t * busy, 0.0) for busy, work in ran)
    return joules, f"{OP_POWER_SOURCE}, idle {power.idle_w:.0f} W ({describe(model)})"
