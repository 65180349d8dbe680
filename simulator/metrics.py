"""Efficiency metrics of a prediction: idealized runtime, cost and energy per request and per 1,000 tokens,
throughput per GPU, and the FLOP-only baseline beside them so that its error is visible.

Per request: a batch of b requests runs together, so each pays 1/b of the batch's GPU time. Tokens per
1,000 count prompt and output tokens (p + o), as API prices do. Numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.gpus import GPUSpec
from simulator.predict import Prediction, predict


def flop_only_time_s(arch: ArchSpec, gpu: GPUSpec, tokens, b=1, t: int = 1) -> np.ndarray:
    """The FLOP-only baseline: 24·h²·l FLOPs per token (b sequences of `tokens` each) over t GPUs at
    their dense bf16 peak; no memory traffic, attention, launch or communication cost."""
    flops = 24.0 * arch.hidden**2 * arch.n_layers * np.asarray(tokens, dtype=float) * np.asarray(b)
    return flops / (t * gpu.peak_bf16_flops)


@dataclass(frozen=True)
class Metrics:
    """Arrays broadcast over p, o, b; seconds, US dollars and joules."""

    prefill_s: np.ndarray
    decode_step_s: np.ndarray
    total_s: np.ndarray  # runtime of the batch = latency of each request in it
    n_gpus: int
    cost_per_request_usd: np.ndarray
    energy_per_request_j: np.ndarray
    cost_per_1k_tokens_usd: np.ndarray  # tokens = p + o
    energy_per_1k_tokens_j: np.ndarray
    output_tokens_per_s_per_gpu: np.ndarray  # b · o / total_s / n_gpus
    flop_only_total_s: np.ndarray  # 24·h²·l·(p + o − 1)·b / (t · peak)
    flop_only_error_pct: np.ndarray  # (FLOP-only − idealized) / idealized · 100
    power_source: str  # where the energy's power figure came from


def from_prediction(pred: Prediction, arch: ArchSpec, gpu: GPUSpec) -> Metrics:
    """Metrics of a `simulator.predict.Prediction` (its cost_usd and energy_j are for the whole batch)."""
    tokens = pred.b * (pred.p + pred.o)
    flop_s = flop_only_time_s(arch, gpu, pred.p + pred.o - 1, pred.b, pred.t)
    return Metrics(
        prefill_s=pred.prefill_s, decode_step_s=pred.decode_step_s, total_s=pred.total_s, n_gpus=pred.n_gpus,
        cost_per_request_usd=pred.cost_usd / pred.b, energy_per_request_j=pred.energy_j / pred.b,
        cost_per_1k_tokens_usd=1000.0 * pred.cost_usd / tokens,
        energy_per_1k_tokens_j=1000.0 * pred.energy_j / tokens,
        output_tokens_per_s_per_gpu=pred.b * pred.o / pred.total_s / pred.n_gpus,
        flop_only_total_s=flop_s, flop_only_error_pct=100.0 * (flop_s - pred.total_s) / pred.total_s,
        power_source=pred.power_source)


def metrics(arch: ArchSpec, gpu: GPUSpec, p, o, b=1, t: int | None = None, **predict_kwargs) -> Metrics:
    """Predict b requests of p prompt and o output tokens on `gpu` (t=None: smallest t that fits) and
    return their metrics; `predict_kwargs` go to `simulator.predict.predict` (model, coefficients, price)."""
    return from_prediction(predict(arch, gpu, p, o, b, t, **predict_kwargs), arch, gpu)
