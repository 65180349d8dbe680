"""The public Python API: the same defaults as the CLI (the GPU's table for the stack, its fit applied).

    >>> import idealrt
    >>> idealrt.predict("llama-3.1-8b", "h100-sxm", prompt=2048, output=128).decode_step_s
    >>> idealrt.plan("llama-3.1-8b", ["h100-sxm", "h200"], idealrt.synthetic("fixed:p=512,o=128", 10, 500),
    ...              "ttft_p95=0.5,tpot_p95=0.05").meeting[0]
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.defaults import model_and_fit, resolve_arch, with_precision
from simulator.errors import UserError
from simulator.gpus import GIB, GPUSpec, get_gpu
from simulator.memory import check_pp, check_tp, smallest_fitting_layout, tp_per_request
from simulator.pipeline import predict_parallel
from simulator.predict import Prediction, memory_warning
from simulator.predictor import Predictor
from simulator.tables import derived_classes

if TYPE_CHECKING:  # the serving modules load when serve or plan is called: `import idealrt` stays fast
    from simulator.deployment import ServingResult
    from simulator.plan import PlanResult
    from simulator.workload import Workload

WARNING_SEP = " | "  # warnings of a sweep row, joined in one CSV field


def load_config(path: str | Path) -> ArchSpec:
    """The architecture of a Hugging Face config.json (file or folder); unknown fields are refused by name."""
    return resolve_arch(None, str(path))


def _arch(model: str | Path | ArchSpec) -> ArchSpec:
    if isinstance(model, ArchSpec):
        return model
    text = str(model)
    return resolve_arch(None, text) if text.endswith(".json") or Path(text).is_dir() else resolve_arch(text, None)


def _gpu(gpu: str | GPUSpec) -> GPUSpec:
    return gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)


def predict(model: str | Path | ArchSpec, gpu: str | GPUSpec, prompt: ArrayLike, output: ArrayLike,
            batch: ArrayLike = 1, tp: int | None = None, *, pp: int | None = None, microbatches: int = 1,
            stack: str = "triton", fit: bool = True, price_per_hour_usd: float | None = None,
            weights: str | None = None, kv: str | None = None) -> Prediction:
    """Idealized runtime of `batch` sequences of `prompt` and `output` tokens (arrays broadcast) of a catalog
    model, a config.json or an ArchSpec on a catalog GPU; tp (across nodes above a node's GPUs) and pp (pipeline
    stages, with `microbatches`; simulator/pipeline.py) None: the fewest GPUs that fit, one stage when tp is given.
    weights ("bf16", "fp8", "int4") and kv ("bf16", "fp8"): the precision served (None: as the model's config
    says)."""
    arch, spec = with_precision(_arch(model), weights, kv), _gpu(gpu)
    time_model, coefficients, _ = model_and_fit(spec, stack, not fit)
    return predict_parallel(arch, spec, prompt, output, batch, tp, pp, microbatches, model=time_model,
                            coefficients=coefficients, price_per_hour_usd=price_per_hour_usd)


def predictor(model: str | Path | ArchSpec, gpu: str | GPUSpec, tp: int | None = None, *, stack: str = "triton",
              fit: bool = True) -> Predictor:
    """A reusable predictor of single requests (simulator/predictor.py) with the CLI's defaults:
    `idealrt.predictor("llama-3.1-8b", "h100-sxm")(2048, 128).total_s`."""
    spec = _gpu(gpu)
    time_model, coefficients, _ = model_and_fit(spec, stack, not fit)
    return Predictor(_arch(model), spec, tp, model=time_model, coefficients=coefficients)


def _layouts(arch: ArchSpec, gpu: GPUSpec, tp: int, pp: int | None, requests: tuple[np.ndarray, ...]
             ) -> list[tuple[int, int, np.ndarray]]:
    """(t, pp, flat indices) groups of the requests: tp 0 is auto, per request on one stage; pp None: one stage,
    and the requests no t fits on one stage on the fewest GPUs that fit them all (simulator.memory)."""
    p, o, b = requests
    if pp is not None:
        t, pp = smallest_fitting_layout(arch, gpu, b, p, o, tp or None, check_pp(arch, pp)) if tp == 0 else \
            (check_tp(arch, tp), pp)
        return [(t, check_pp(arch, pp), np.arange(p.size))]
    if tp:
        return [(check_tp(arch, tp), 1, np.arange(p.size))]
    tps = tp_per_request(arch, gpu, b, p, o)
    groups = [(int(t), 1, np.flatnonzero(tps == t)) for t in np.unique(tps) if t > 0]
    short = np.flatnonzero(tps == 0)
    if short.size:
        t, pp = smallest_fitting_layout(arch, gpu, b[short], p[short], o[short])
        groups.append((t, pp, short))
    return groups


def _rows(arch: ArchSpec, gpu: GPUSpec, layout: tuple[int, int | None, int], requests: tuple[np.ndarray, ...],
          setting: tuple, price: float | None) -> list[dict]:
    """Rows of one (arch, GPU, layout) over the flat request arrays (p, o, b); layout (tp, pp, microbatches), tp 0
    auto and pp None one stage where one fits (_layouts). `setting` is (time model, coefficients, fit label) as
    `model_and_fit` returns it."""
    p, o, b = requests
    model, coefficients, fit_label = setting
    tp, pp, micro = layout
    rows = []
    for t, stages, sel in _layouts(arch, gpu, tp, pp, requests):
        pred = predict_parallel(arch, gpu, p[sel], o[sel], b[sel], t, stages, micro, model=model,
                                coefficients=coefficients, price_per_hour_usd=price)
        notes = _row_warnings(arch, gpu, int(t), pred)
        cols = {"prefill_s": pred.prefill_s, "decode_step_s": pred.decode_step_s, "decode_s": pred.decode_s,
                "total_s": pred.total_s, "tokens_per_s": pred.tokens_per_s,
                "mem_per_gpu_gib": pred.mem_per_gpu_bytes / GIB, "fits": pred.fits,
                "cost_usd": pred.cost_usd, "energy_j": pred.energy_j}
        cols = {k: v.tolist() for k, v in cols.items()}
        for i, j in enumerate(sel):
            rows.append({"_order": int(j), "arch": arch.name, "gpu": gpu.name, "t": int(t), "pp": pred.pp,
                         "microbatches": pred.microbatches, "nodes": pred.nodes, "n_gpus": pred.n_gpus,
                         "b": int(b[j]), "p": int(p[j]), "o": int(o[j]),
                         **{k: v[i] for k, v in cols.items()},
                         "time_model": pred.time_model, "fit": fit_label, "warnings": notes[i]})
    rows.sort(key=lambda r: r.pop("_order"))
    return rows


def _row_warnings(arch: ArchSpec, gpu: GPUSpec, t: int, pred: Prediction) -> list[list[str]]:
    """Each request's own warnings (flat order): those its shapes caused, and memory at its own need."""
    notes: list[list[str]] = [[] for _ in range(pred.p.size)]
    for text, where in pred.warned.items():
        if not text.startswith("memory:"):
            for j in np.flatnonzero(where):
                notes[j].append(text)
    short = np.flatnonzero(~pred.fits.ravel())
    if short.size:
        b, p, o = (a.ravel()[short] for a in (pred.b, pred.p, pred.o))
        fitting, need = tp_per_request(arch, gpu, b, p, o), pred.mem_per_gpu_bytes.ravel()[short]
        for j, tp_fit, bytes_ in zip(short, fitting.tolist(), need.tolist()):
            notes[j].append(memory_warning(gpu, t, bytes_, tp_fit))
    return [sorted(n) for n in notes]


def sweep(models: Iterable[str | Path | ArchSpec], gpus: Iterable[str | GPUSpec], prompts: Iterable[int],
          outputs: Iterable[int], batches: Iterable[int] = (1,), tps: Iterable[int | None] = (None,), *,
          stack: str = "triton", fit: bool = True, price_per_hour_usd: float | None = None,
          weights: Iterable[str | None] = (None,), kvs: Iterable[str | None] = (None,),
          pps: Iterable[int | None] = (None,), microbatches: int = 1) -> list[dict]:
    """One tidy row per (GPU, model, precision, tp, pp, p, o, b), as `idealrt sweep` writes them; tp None: the
    smallest that fits each request; pp None: one stage, or the fewest GPUs that fit where one stage cannot
    (simulator/pipeline.py); weights and kvs: the precisions to serve each model at (None: as its config says)."""
    archs, specs, tps, pps = [_arch(m) for m in models], [_gpu(g) for g in gpus], list(tps), list(pps)
    precisions = [(w, kv) for w in weights for kv in kvs]
    p, o, b = (a.ravel() for a in np.meshgrid(list(prompts), list(outputs), list(batches), indexing="ij"))
    rows = []
    for arch in archs:
        keep = arch.positions_used(p, o) <= arch.max_positions
        if not keep.any():
            raise UserError(f"every prompt + output - 1 of the sweep exceeds {arch.name}'s max_positions "
                            f"{arch.max_positions}; use shorter --prompt/--output values")
        if not keep.all():
            warnings.warn(f"{arch.name}: {int((~keep).sum())} of {p.size} requests skipped (prompt + output - 1 over its "
                          f"max_positions {arch.max_positions})", SweepWarning, stacklevel=2)
        for gpu, (w, kv) in itertools.product(specs, precisions):
            # a fresh time model per model, GPU and precision, so its warnings are about these rows only
            setting, served = model_and_fit(gpu, stack, not fit), with_precision(arch, w, kv)
            for t, pp in itertools.product(tps, pps):
                new = _rows(served, gpu, (t or 0, pp, microbatches), (p[keep], o[keep], b[keep]), setting,
                            price_per_hour_usd)
                rows += _with_precision(new, served, setting[0])
    order = {g.name: i for i, g in enumerate(specs)}
    rows.sort(key=lambda r: order[r["gpu"]])  # GPU-major, as before: stable within a GPU
    return rows


def _with_precision(rows: list[dict], arch: ArchSpec, model) -> list[dict]:
    """Rows with the precision served beside the model: weights, kv, a label, and the op classes whose times are
    derived, not measured (empty when every time is measured)."""
    cols = {"weights": arch.precision.weights, "kv": arch.precision.kv, "precision": arch.precision.label}
    derived = {"derived_not_measured": " ".join(sorted(derived_classes(model)))}
    return [{"arch": r["arch"], "gpu": r["gpu"], **cols, **r, **derived} for r in rows]


class SweepWarning(UserWarning):
    """Rows a sweep skipped, one per model: requests longer than the model's positions."""


def synthetic(lengths: str, rate_per_s: float, n: int, seed: int = 0) -> Workload:
    """n requests with lengths from a named distribution (simulator/workload.py) and Poisson arrivals."""
    from simulator.workload import synthetic as _synthetic

    return _synthetic(lengths, rate_per_s, n, seed)


def load_trace(path: str | Path) -> Workload:
    """The requests of a CSV trace (arrival_s, prompt_tokens, output_tokens; docs/CONTRACTS.md)."""
    from simulator.workload import load_trace as _load_trace

    return _load_trace(path)


def _workload(workload: Workload | str | Path) -> Workload:
    from simulator.workload import Workload

    return workload if isinstance(workload, Workload) else load_trace(workload)


def serve(model: str | Path | ArchSpec, gpu: str | GPUSpec, workload: Workload | str | Path, tp: int, replicas: int = 1,
          max_batch: int = 64, *, pp: int = 1, chunk_tokens: int | None = None, policy: str = "prefill-first",
          stack: str = "triton", fit: bool = True, price_per_hour_usd: float | None = None) -> ServingResult:
    """A workload (a Workload, or a trace CSV's path) served by `replicas` replicas of `tp` GPUs (times `pp`
    pipeline stages) with continuous batching (simulator/deployment.py):
    `idealrt.serve("llama-3.1-8b", "h100-sxm", trace, 1).row()`."""
    from simulator.deployment import Deployment
    from simulator.deployment import serve as _serve

    arch, spec = _arch(model), _gpu(gpu)
    time_model, coefficients, _ = model_and_fit(spec, stack, not fit)
    deployment = Deployment(spec.name, check_tp(arch, tp), replicas, max_batch, chunk_tokens, policy,
                            pp=check_pp(arch, pp))
    return _serve(arch, spec, _workload(workload), deployment, model=time_model, coefficients=coefficients,
                  price_per_hour_usd=price_per_hour_usd)


def plan(model: str | Path | ArchSpec, gpus: Iterable[str | GPUSpec], workload: Workload | str | Path,
         slo: str | dict[str, float], *, tps: Iterable[int] | None = None, replicas: Iterable[int] | None = None,
         max_batch: Iterable[int] | None = None, chunk_tokens: int | None = None, policy: str = "prefill-first",
         stack: str = "triton", fit: bool = True, price_per_hour_usd: float | None = None,
         pps: Iterable[int] | None = None) -> PlanResult:
    """The deployments of `idealrt plan` (simulator/plan.py; replicas and max_batch None: its defaults; pps None:
    one pipeline stage, or the fewest that fit), SLO-meeting and cheapest first; each row's "pareto" says whether no other deployment has both more tokens/s per GPU and
    more tokens/s per user."""
    from reports.pareto import pareto_front
    from simulator.plan import DEFAULT_BATCHES, DEFAULT_REPLICAS, SLO_KEYS, parse_slo
    from simulator.plan import plan as _plan
    from simulator.serving import check_policy

    arch, specs = _arch(model), [_gpu(g.strip() if isinstance(g, str) else g) for g in gpus]
    slo = parse_slo(slo) if isinstance(slo, str) else dict(slo)
    for key in slo:
        if key not in SLO_KEYS:
            raise UserError(f"slo: unknown target '{key}'; use one of {', '.join(SLO_KEYS)}")
    settings = {g.name: model_and_fit(g, stack, not fit)[:2] for g in specs}
    check_policy(policy, chunk_tokens, 1)
    result = _plan(arch, specs, _workload(workload), slo, settings, tps=None if tps is None else list(tps),
                   replicas=tuple(replicas or DEFAULT_REPLICAS), batches=tuple(max_batch or DEFAULT_BATCHES),
                   chunk_tokens=chunk_tokens, policy=policy, price_per_hour_usd=price_per_hour_usd,
                   pps=None if pps is None else list(pps))
    ok = [i for i, r in enumerate(result.rows)
          if np.isfinite(r["tokens_per_s_per_gpu"]) and np.isfinite(r["tokens_per_s_per_user"])]
    front = {ok[i] for i in pareto_front([-result.rows[i]["tokens_per_s_per_gpu"] for i in ok],
                                         [result.rows[i]["tokens_per_s_per_user"] for i in ok], maximize_value=True)}
    for i, row in enumerate(result.rows):
        row["pareto"] = i in front
    return result
