"""The paper's efficiency study, reproduced and extended with idealrt's simulator.

For each model and GPU: the idealized runtime, cost and energy of a stated request mix, the GPU count the
smallest-t-that-fits rule picks, the model's F(p) and g, and the FLOP-only baseline beside them; then the
same across GPUs, software stacks, t, batch sizes and long contexts. Every number is a call of
`simulator.predict.predict` / `simulator.metrics` / `simulator.profile.fit_profile`: nothing is measured here
(numpy only, like the simulator).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.catalog import ARCHS, get_arch
from simulator.defaults import model_and_fit
from simulator.errors import UserError
from simulator.gpus import GIB, GPUSpec, get_gpu
from simulator.memory import valid_tps
from simulator.metrics import from_prediction, metrics
from simulator.precision import FLAG_WEIGHTS
from simulator.predict import predict
from simulator.profile import fit_profile
from simulator.tables import derived_classes
from simulator.timemodel import TimeModel


@dataclass(frozen=True)
class RequestKind:
    """One kind of request of the mix: prompt and output tokens and its share of the traffic."""

    name: str
    p: int
    o: int
    weight: float


# An illustrative HELM-like mix (Liang et al. 2022 run few-shot prompts of a few hundred to ~1,500 tokens with
# short answers, summaries of ~100 tokens, and open generation); these four kinds stand for those scenario
# families, with equal weights. They are not HELM's per-scenario token counts.
REQUEST_MIX = (
    RequestKind("multiple choice, 5-shot (MMLU-like)", 512, 1, 0.25),
    RequestKind("reading comprehension QA (NarrativeQA-like)", 1536, 8, 0.25),
    RequestKind("summarization (CNN/DailyMail-like)", 1024, 128, 0.25),
    RequestKind("open-ended generation", 128, 256, 0.25),
)

# The paper's study models (Narayanan et al. 2023 / HELM 2022) and today's open models, as catalog names.
PAPER_MODELS = ("gpt3-davinci-175b", "j1-large-7.5b", "j1-grande-17b", "j1-jumbo-178b", "anthropic-lm-52b",
                "cohere-xl-52b", "mt-nlg-530b", "gpt-j-6b", "gpt-neox-20b", "opt-66b", "opt-175b", "bloom-176b",
                "yalm-100b")
OPEN_MODELS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b",
               "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-7b", "qwen2.5-72b", "gemma-2-9b", "phi-3-mini")
MEASURED_GPUS = ("h100-sxm", "h200")
DERIVED_GPUS = ("a100-80gb", "v100", "b200", "mi300x")
BATCHES = (1, 2, 4, 8, 16, 32, 64)
BATCH_REQUEST = (1024, 128)  # p, o of the batch study (the mix's summarization request)
LONG_CONTEXTS = (8192, 32768, 131072)
PROFILE_P_MAX = 2048  # F(p) is fitted over the paper's prompt range, then extrapolated to long contexts


def default_models() -> list[str]:
    """The paper's study models and today's open models that the catalog holds."""
    return [m for m in PAPER_MODELS + OPEN_MODELS if m in ARCHS]


def mix_arrays(arch: ArchSpec, mix=REQUEST_MIX) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """p, o, weights of the mix for this model; prompts are shortened to fit max_positions (clipped=True)."""
    o = np.array([k.o for k in mix])
    p = np.array([k.p for k in mix])
    fit_p = np.minimum(p, arch.max_positions - o + 1)  # p + o − 1 positions (the last token is not fed back)
    if np.any(fit_p < 1):
        raise UserError(f"{arch.name}: max_positions={arch.max_positions} is too short for the request mix")
    w = np.array([k.weight for k in mix], dtype=float)
    return fit_p, o, w / w.sum(), bool(np.any(fit_p != p))


@dataclass
class Setting:
    """Where a prediction comes from: GPU spec, time model, fit coefficients, and labels for them."""

    gpu: GPUSpec
    stack: str
    model: TimeModel
    coefficients: dict | None
    fit_label: str


def setting(gpu_name: str, stack: str, use_fit: bool = True) -> Setting:
    """The GPU's time model (measured, derived or roofline) and fit, as `idealrt predict` would use."""
    gpu = get_gpu(gpu_name)
    model, coefs, label = model_and_fit(gpu, stack, not use_fit)
    return Setting(gpu, stack, model, coefs, label)


def mix_row(arch: ArchSpec, s: Setting, t: int | None = None) -> dict:
    """One study row: the mix's weighted mean runtime, cost and energy per request (b = 1), the t chosen,
    and the FLOP-only baseline; a row with `note` and no numbers when the model does not fit."""
    p, o, w, clipped = mix_arrays(arch)
    row = {"model": arch.name, "gpu": s.gpu.name, "stack": s.stack, "params_b": arch.param_count() / 1e9}
    try:
        pred = predict(arch, s.gpu, p, o, 1, t, model=s.model, coefficients=s.coefficients)
    except UserError as e:
        return {**row, "note": str(e).split(";")[0]}  # e.g. "... does not fit on 8 x h100-sxm: it needs ..."
    m = from_prediction(pred, arch, s.gpu)
    avg = lambda a: float(np.sum(w * np.asarray(a)))  # noqa: E731 (weighted mean over the mix)
    tokens = w * (p + o)  # the mix's tokens by kind: its cost per 1,000 tokens is its mean cost over its mean tokens
    return {**row, "weights": arch.precision.weights, "t": pred.t, "n_gpus": pred.n_gpus, "runtime_s": avg(m.total_s),
            "cost_usd": avg(m.cost_per_request_usd),
            "usd_per_1k_tokens": float(np.sum(tokens * m.cost_per_1k_tokens_usd) / np.sum(tokens)),
            "energy_j": avg(m.energy_per_request_j), "mem_per_gpu_gib": float(np.max(pred.mem_per_gpu_bytes)) / GIB,
            "flop_only_s": avg(m.flop_only_total_s),
            "flop_only_error_pct": 100 * (avg(m.flop_only_total_s) - avg(m.total_s)) / avg(m.total_s),
            "fits": bool(np.all(pred.fits)), "time_model": pred.time_model, "fit": s.fit_label,
            "power": pred.power_source, "note": "prompts clipped to max_positions" if clipped else ""}


def add_profile(row: dict, arch: ArchSpec, s: Setting) -> dict:
    """Add F(p) (value at p = 1 and slope of its last segment, fitted over p <= 2048, non-decreasing) and g to a
    row, and the form's error against the simulation: F's largest against the prefill of every prompt length it
    covers, and F(p) + g·(o − 1)'s on the mix's mean runtime (signed, as the FLOP-only baseline's)."""
    if "t" not in row:
        return row
    prof = fit_profile(arch, s.gpu, row["t"], model=s.model, coefficients=s.coefficients, p_max=PROFILE_P_MAX)
    every_p = np.arange(prof.p_first, prof.p_last + 1)  # F is fitted on a grid of them; its error is over all
    prefill = predict(arch, s.gpu, every_p, 1, 1, row["t"], model=s.model, coefficients=s.coefficients).prefill_s
    p, o, w, _ = mix_arrays(arch)
    form_s = float(np.sum(w * prof.total_s(p, o)))
    return {**row, "f0_ms": prof.f_knots_s[0] * 1e3, "f_slope_ms_per_1k": prof.slopes_s_per_token[-1] * 1e6,
            "g_ms": prof.g_s * 1e3, "f_max_error_pct": float(100 * np.max(np.abs(prof.f_s(every_p) / prefill - 1))),
            "form_error_pct": 100 * (form_s - row["runtime_s"]) / row["runtime_s"], "profile": prof}


def study_rows(models: list[str], gpus: list[str], stacks: list[str], use_fit: bool = True) -> list[dict]:
    """The study table: one row per model, GPU and stack, with F(p) and g."""
    archs = [get_arch(m) for m in models]
    rows = []
    for g in gpus:
        for stack in stacks:
            s = setting(g, stack, use_fit)
            rows += [add_profile(mix_row(a, s), a, s) for a in archs]
    return rows


def tp_rows(models: list[str], s: Setting) -> list[dict]:
    """The mix on every valid t from the smallest that fits up to 8, per model."""
    rows = []
    for name in models:
        arch = get_arch(name)
        base = mix_row(arch, s)
        if "t" in base:
            rows += [mix_row(arch, s, t) for t in valid_tps(arch) if t >= base["t"]]
    return rows


def batch_rows(models: list[str], s: Setting, batches=BATCHES) -> list[dict]:
    """Throughput per GPU and cost per 1,000 tokens of one request kind against batch size (smallest t
    that fits each batch)."""
    p, o = BATCH_REQUEST
    rows = []
    for name in models:
        arch = get_arch(name)
        for b in batches:
            try:
                m = metrics(arch, s.gpu, min(p, arch.max_positions - o + 1), o, b, None, model=s.model,
                            coefficients=s.coefficients)
            except UserError:
                continue  # this batch does not fit on 8 GPUs: the curve stops
            rows.append({"model": name, "gpu": s.gpu.name, "b": b, "n_gpus": m.n_gpus,
                         "tokens_per_s_per_gpu": float(m.output_tokens_per_s_per_gpu),
                         "usd_per_1k_tokens": float(m.cost_per_1k_tokens_usd), "runtime_s": float(m.total_s)})
    return rows


def long_context_rows(rows: list[dict], s: Setting) -> list[dict]:
    """How far F(p) fitted over p <= 2048 is off the simulator's prefill at 8k, 32k and 128k tokens, for
    models whose max_positions allow it (same t as in the study row)."""
    out = []
    for r in rows:
        if "profile" not in r:
            continue
        arch = get_arch(r["model"])
        ps = np.array([p for p in LONG_CONTEXTS if p <= arch.max_positions])
        if not len(ps):
            continue
        sim = predict(arch, s.gpu, ps, 1, 1, r["t"], model=s.model, coefficients=s.coefficients).prefill_s
        lin = r["profile"].f_s(ps)
        out += [{"model": r["model"], "t": r["t"], "p": int(p), "simulator_s": float(a), "linear_f_s": float(b),
                 "error_pct": float(100 * (b - a) / a)} for p, a, b in zip(ps, sim, lin)]
    return out


def precision_rows(models: list[str], s: Setting, weights=FLAG_WEIGHTS) -> list[dict]:
    """The mix at each weights precision (bf16, fp8, int4; KV cache bf16), per model: runtime, cost per request and
    per 1,000 tokens, memory per GPU, GPUs, and whether the times of its GEMMs are measured or derived from the bf16
    table (a fresh time model per precision)."""
    rows = []
    for w in weights:
        fresh = setting(s.gpu.name, s.stack, s.coefficients is not None)
        for name in models:
            arch = get_arch(name)
            row = mix_row(arch.with_(precision=arch.precision.with_flags(weights=w)), fresh)
            rows.append({**row, "weights": w})
        derived = " ".join(sorted(derived_classes(fresh.model)))
        for r in rows[-len(models):]:
            r["times"] = f"derived, not measured ({derived})" if derived else "measured"
    return rows

