"""Idealized runtime of requests, vectorised over numpy arrays of p, o and b: prefill, every decode step,
totals, the breakdown by op class, memory per GPU, GPU count, cost and energy.

Speed: op lists are built once per (arch, b, t) over a grid of prompt lengths and once over all decode
contexts 1..max(p + o − 1); each request then reads its prefill from the grid and its decode sum from a
cumulative sum over contexts (exact: step p + j attends to p + j tokens, j = 1..o − 1). No Python loop
runs per request.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.band import BAND_KEY, error_band
from simulator.fits import PATH_KEY, check_coefficients
from simulator.gpus import GIB, GPUSpec
from simulator.hostmodel import ENGINE as HF_EAGER, has_engine_host, has_host_model, parse_engine_host
from simulator.memory import Memory, check_tp, memory_per_gpu, smallest_fitting_tp, tp_per_request
from simulator.opclasses import OP_CLASSES
from simulator.precision import BF16, Precision
from simulator.ops import HOST_MODES, decode_ops, prefill_ops
from simulator.overlap import exposed_s
from simulator.power import SOURCE as OP_POWER_SOURCE
from simulator.power import PowerModel, phase_energy, power_model, times_and_energy
from simulator.sustained import recovery_factor
from simulator.tables import default_model, derived_classes
from simulator.timemodel import TimeModel, describe, phase_time


@dataclass(frozen=True)
class Prediction:
    """Arrays broadcast over the request arrays p, o, b; seconds unless the name says otherwise."""

    arch: str
    gpu: str
    t: int
    n_gpus: int
    p: np.ndarray
    o: np.ndarray
    b: np.ndarray
    prefill_s: np.ndarray
    decode_s: np.ndarray  # all o − 1 decode steps
    decode_step_s: np.ndarray  # mean step; the first step's time when o == 1
    decode_first_step_s: np.ndarray  # step at context p + 1
    decode_last_step_s: np.ndarray  # step at context p + o − 1 (p + 1 when o == 1)
    total_s: np.ndarray
    tokens_per_s: np.ndarray  # output tokens of the whole batch per second: b · o / total_s
    prefill_by_class: dict[str, np.ndarray]  # unscaled sums that `coefficients` multiply
    decode_by_class: dict[str, np.ndarray]
    coefficients: dict[str, float]  # as applied: 1 per class and 0 fixed seconds without a fit
    memory: Memory  # per GPU
    mem_capacity_bytes: int
    fits: np.ndarray
    cost_usd: np.ndarray  # whole batch: total_s × n_gpus × price per GPU-hour
    energy_j: np.ndarray  # whole batch, all n_gpus: prefill_energy_j + decode_energy_j
    prefill_energy_j: np.ndarray
    decode_energy_j: np.ndarray  # all o − 1 decode steps
    energy_by_class: dict[str, np.ndarray]  # whole batch, scaled; "idle": no kernel running ({}: one power figure)
    price_per_hour_usd: float
    power_w: float | np.ndarray  # mean board power per GPU: energy_j / (total_s × n_gpus)
    power_source: str
    time_model: str  # roofline / measured / derived table
    fit: str | None  # path of the fit applied, "given coefficients", or None
    warnings: tuple[str, ...]  # of all these requests
    warned: dict[str, np.ndarray]  # per warning, the requests whose own shapes caused it (bool, shape of p)
    expected_error: dict | None  # median and P95 % error of total time on unseen architectures (simulator/band.py)
    outside_validated: tuple[str, ...]  # how the request lies outside what was validated
    precision: Precision = BF16  # dtypes served (simulator/precision.py)
    derived_classes: tuple[str, ...] = ()  # op classes timed by the roofline ratio to a measured one, not measured
    pp: int = 1  # pipeline stages (simulator/pipeline.py); n_gpus = t · pp
    microbatches: int = 1  # of the batch, in flight through the stages
    nodes: int = 1  # nodes the n_gpus occupy (GPUSpec.gpus_per_node each)
    pipeline: dict | None = None  # pp > 1: stage and pass times, point-to-point seconds, bubble fractions
    # an eager host's queue (simulator.overlap): (X, Y) seconds of the prefill and summed over the decode steps;
    # None where host and GPU overlap fully (the longer counts)
    prefill_exposed: tuple[np.ndarray, np.ndarray] | None = None
    decode_exposed: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def mem_per_gpu_bytes(self) -> np.ndarray:
        return self.memory.total_bytes


def _positive_ints(field: str, value: ArrayLike) -> np.ndarray:
    """A numpy integer array of `value`, or a UserError naming the field if any element is not an integer >= 1."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu" or arr.size == 0:
        raise UserError(f"{field}: must be whole numbers >= 1, got {value!r}")
    if arr.min() < 1:
        raise UserError(f"{field}: must be >= 1, got {arr.min()}")
    return arr.astype(np.int64, copy=False)


def _grid(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grid, index) with grid[index] == values: all of 1..max when that is no longer than the input
    (no sort needed), else the distinct values."""
    top = int(values.max())
    if top <= max(values.size, 1024):
        return np.arange(1, top + 1), values - 1
    return np.unique(values, return_inverse=True)


def _gather(by_class: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class values at `index` of the grid they were computed on (constants broadcast)."""
    return {c: (v[index] if v.ndim else np.full(index.shape, float(v))) for c, v in by_class.items()}


def _decode(arch: ArchSpec, b: int, t: int, model: TimeModel, coef: dict[str, float], p: np.ndarray,
            o: np.ndarray, fused: bool, host: str, power: PowerModel | None,
            warned: dict[str, np.ndarray]) -> tuple:
    """Per-class sums of seconds and of joules over steps at contexts p+1..p+o−1, their (scaled) total time, the
    first and last step, and the sums of an eager host's exposed seconds (simulator.overlap; None without); adds to `warned` (per warning, which requests) the requests whose steps, or reported
    next step, caused each."""
    steps = np.maximum(o - 1, 1)  # o == 1: no steps, but report the step a next token would take
    c0 = int(p.min())  # contexts c0 + 1 .. max(p + steps): the steps of these requests
    contexts = np.arange(c0 + 1, int((p + steps).max()) + 1)  # (C,)
    by_step: dict[str, np.ndarray] = {}
    runs: list | None = [] if host == HF_EAGER else None
    per_step, per_step_j = times_and_energy(decode_ops(arch, b, contexts, t, fused=fused, host=host), model, power,
                                            by_step, runs)
    exposed = None if runs is None else tuple(np.broadcast_to(v, contexts.shape)
                                              for v in exposed_s(runs, arch.n_layers))
    cum = lambda v: np.concatenate(([0.0], np.cumsum(np.broadcast_to(v, contexts.shape))))  # noqa: E731
    first, end = p - c0, p + o - 1 - c0  # in cum: steps at contexts p + 1 .. p + o − 1
    sums = [{}, {}]
    for out, by_class in zip(sums, (per_step, per_step_j)):
        for cls, v in by_class.items():
            c = cum(v)  # c[j] = Σ of the first j steps
            out[cls] = c[end] - c[first]
    for text, where in by_step.items():
        hits = cum(where)  # steps that caused it, among the first j
        warned[text] = hits[p + steps - c0] > hits[first]
    step_s = coef["decode_fixed_s"] + phase_time(per_step, coef, exposed) * np.ones(contexts.shape)
    total = cum(step_s)
    exposed_sums = None if exposed is None else tuple(cum(v)[end] - cum(v)[first] for v in exposed)
    return sums[0], sums[1], total[end] - total[first], step_s[first], step_s[p + steps - 1 - c0], exposed_sums


def _phase_times(arch: ArchSpec, t: int, model: TimeModel, coef: dict[str, float],
                 p: np.ndarray, o: np.ndarray, b: np.ndarray, fused: bool, host: str,
                 power: PowerModel | None = None) -> dict:
    """Flat per-request arrays: by-class prefill and decode sums of seconds and of joules (unscaled; none
    without a power model), the (scaled) decode total, first and last decode steps, and an eager host's exposed
    seconds (simulator.overlap) of the prefill and summed over the decode steps (None without)."""
    n = p.size
    pre = {c: np.zeros(n) for c in OP_CLASSES}
    dec = {c: np.zeros(n) for c in OP_CLASSES}
    pre_j: dict[str, np.ndarray] = {}
    dec_j: dict[str, np.ndarray] = {}
    first, last, dec_total = np.zeros(n), np.zeros(n), np.zeros(n)
    warned: dict[str, np.ndarray] = {}  # warning -> (n,) requests that caused it
    exposed = None if host != HF_EAGER else {k: np.zeros(n) for k in ("pre_x", "pre_y", "dec_x", "dec_y")}
    batches = np.unique(b)
    for bv in batches:  # one pass per distinct batch size (a handful), never per request
        sel = slice(None) if batches.size == 1 else np.flatnonzero(b == bv)
        ps, os_ = p[sel], o[sel]
        grid, index = _grid(ps)
        at_grid: dict[str, np.ndarray] = {}
        runs: list | None = None if exposed is None else []
        by_class, joules = times_and_energy(prefill_ops(arch, int(bv), grid, t, fused=fused, host=host), model, power,
                                            at_grid, runs)
        here = {text: np.broadcast_to(where, grid.shape)[index] for text, where in at_grid.items()}
        steps: dict[str, np.ndarray] = {}
        sums, sums_j, dec_total[sel], first[sel], last[sel], dec_exposed = _decode(
            arch, int(bv), t, model, coef, ps, os_, fused, host, power, steps)
        if exposed is not None:
            for k, v in zip(("pre_x", "pre_y"), exposed_s(runs, arch.n_layers)):
                exposed[k][sel] = np.broadcast_to(v, grid.shape)[index]
            exposed["dec_x"][sel], exposed["dec_y"][sel] = dec_exposed
        for into, values in ((pre, _gather(by_class, index)), (pre_j, _gather(joules, index)), (dec, sums),
                             (dec_j, sums_j)):
            for c, v in values.items():
                into.setdefault(c, np.zeros(n))[sel] = v
        for text, where in [*here.items(), *steps.items()]:
            warned.setdefault(text, np.zeros(n, bool))[sel] |= where
    return {"pre": pre, "dec": dec, "pre_j": pre_j, "dec_j": dec_j, "dec_total": dec_total, "first": first,
            "last": last, "warned": warned, "exposed": exposed}


def memory_warning(gpu: GPUSpec, t: int, need_bytes: float, fitting_tp: int) -> str:
    """The warning of requests needing `need_bytes` a GPU at tp=t, more than the GPU holds; fitting_tp: the
    smallest tp that fits them (0: none)."""
    fix = f"tp={fitting_tp} fits" if fitting_tp > 0 else "no tp <= 8 fits: use pp stages"
    return f"memory: {need_bytes / GIB:.1f} GiB per GPU at tp={t} exceeds the {gpu.mem_gib:.0f} GiB of {gpu.name} ({fix})"


def _warnings(arch: ArchSpec, gpu: GPUSpec, t: int, model: TimeModel, memory: Memory, fits: np.ndarray,
              b, p, o, caused: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per warning, the requests (bool, shape of p) that cause it: the time model's, memory and weights'."""
    out = {text: where.reshape(p.shape) for text, where in caused.items() if text in model.warnings and where.any()}
    if not fits.all():
        per_request = tp_per_request(arch, gpu, b, p, o)
        fitting = int(per_request.max()) if np.all(per_request > 0) else 0
        out[memory_warning(gpu, t, float(memory.total_bytes.max()), fitting)] = ~fits
    return out


def _energy(raw: dict, coef: dict[str, float], prefill_s: np.ndarray, decode_s: np.ndarray, t: int,
            power: PowerModel | None, model: TimeModel, gpu: GPUSpec) -> dict:
    """Energy of the whole batch on all t GPUs: per phase and per class with a power model (simulator/power.py),
    else time × t × one board power figure (board_power); and the mean power per GPU and where it came from."""
    shape = prefill_s.shape
    if power is None:
        watts, source = board_power(model, gpu)
        return {"prefill_energy_j": prefill_s * t * watts, "decode_energy_j": decode_s * t * watts,
                "energy_j": (prefill_s + decode_s) * t * watts, "energy_by_class": {}, "power_w": watts,
                "power_source": source}
    phases = [phase_energy({c: v.reshape(shape) for c, v in raw[k].items()},
                           {c: v.reshape(shape) for c, v in raw[k + "_j"].items()}, coef, wall, power.idle_w)
              for k, wall in (("pre", prefill_s), ("dec", decode_s))]
    pre_j, dec_j = (t * sum(ph.values()) for ph in phases)
    by_class = {c: t * (phases[0].get(c, 0.0) + phases[1].get(c, 0.0)) for c in {*phases[0], *phases[1]}}
    return {"prefill_energy_j": pre_j, "decode_energy_j": dec_j, "energy_j": pre_j + dec_j,
            "energy_by_class": by_class, "power_w": (pre_j + dec_j) / ((prefill_s + decode_s) * t),
            "power_source": f"{OP_POWER_SOURCE}, idle {power.idle_w:.0f} W ({describe(model)})"}


def check_precision(arch: ArchSpec, gpu: GPUSpec) -> None:
    """A UserError when the GPU cannot run the architecture's precision (FP8 GEMMs without FP8 tensor cores)."""
    if arch.precision.activations == "fp8" and not gpu.peak_flops("fp8"):
        raise UserError(f"weights fp8 (w8a8) on {gpu.name}: it has no FP8 tensor cores; use --weights int4 or bf16")


def board_power(model: TimeModel, gpu: GPUSpec) -> tuple[float, str]:
    """Board power: the 90th percentile of the NVML samples the table's calibration took (the board under
    load: the median mixes in the idle gaps between microbenchmarks), else the datasheet figure."""
    measured = getattr(model, "power_w", None)
    if isinstance(measured, dict):
        measured = measured.get("p90", measured.get("median"))
    if isinstance(measured, (int, float)) and np.isfinite(measured) and measured > 0:
        return float(measured), f"p90 of NVML samples during calibration ({describe(model)})"
    return gpu.board_power_w, "datasheet board power"


def predict(arch: ArchSpec, gpu: GPUSpec, p: ArrayLike, o: ArrayLike, b: ArrayLike = 1, t: int | None = None, *,
            model: TimeModel | None = None, coefficients: dict | None = None,
            price_per_hour_usd: float | None = None, fused: bool | None = None, host: str = "graph",
            recovery: bool = True) -> Prediction:
    """Idealized runtime, memory, cost and energy of b sequences of p prompt and o output tokens each.

    p, o, b broadcast as numpy arrays. t=None picks the smallest valid t that fits every request (see
    simulator/memory.py). model: a TimeModel (default: the GPU's table, else the roofline). coefficients:
    a fit's mapping; time = Σ_class coef · class time + prefill_fixed_s, + decode_fixed_s per decode step.
    fused: elementwise kernels fused as the reference engine's Triton stack runs them (simulator/ops.py);
    None: fused unless the model is a table of the torch stack. host: "graph" (the idealized stack replays each
    phase from a CUDA graph), "eager" (one host launch per kernel) or "hf-eager" (transformers' generate: its
    measured host model, simulator.hostmodel; "eager" where the table has none, saying so); a phase takes the
    longer of host and GPU.
    recovery: decode slowed while the clocks a long prefill lowered come back (simulator.sustained; False: each
    decode step as if alone, as simulator.predictor caches them).
    """
    if host not in HOST_MODES and parse_engine_host(host) is None:
        raise UserError(f"host: '{host}'; use one of {', '.join(HOST_MODES)}")
    p, o, b = np.broadcast_arrays(_positive_ints("prompt", p), _positive_ints("output", o),
                                  _positive_ints("batch", b))
    if arch.positions_used(p, o).max() > arch.max_positions:
        raise UserError(f"prompt + output - 1 = {arch.positions_used(p, o).max()} positions exceed max_positions="
                        f"{arch.max_positions} of {arch.name}; shorten --prompt or --output")
    check_precision(arch, gpu)
    t = smallest_fitting_tp(arch, gpu, b, p, o) if t is None else check_tp(arch, t)
    model = model if model is not None else default_model(gpu)
    coef = check_coefficients(coefficients or {})
    price = gpu.price_per_hour_usd if price_per_hour_usd is None else float(price_per_hour_usd)
    if not np.isfinite(price) or price < 0:
        raise UserError(f"price per hour: must be a finite number >= 0, got {price_per_hour_usd!r}")
    fused = getattr(model, "stack", "triton") != "torch" if fused is None else bool(fused)
    power = power_model(model)
    host, host_note = _host_mode(host, model, arch)
    raw = _phase_times(arch, t, model, coef, p.ravel(), o.ravel(), b.ravel(), fused, host, power)
    if host_note:
        model.warn(host_note)
        raw["warned"][host_note] = np.ones(p.size, bool)
    shape = p.shape
    ex = raw["exposed"]
    pre_exposed = None if ex is None else (ex["pre_x"], ex["pre_y"])
    prefill_s = phase_time(raw["pre"], coef, pre_exposed).reshape(shape) + coef["prefill_fixed_s"]
    decode_s = raw["dec_total"].reshape(shape)
    if recovery:  # the first decode steps run while the clocks a long prefill lowered come back
        slow = recovery_factor(model, prefill_s, decode_s)
        decode_s = decode_s * slow
        for by_class in (raw["dec"], raw["dec_j"], *([] if ex is None else [ex])):
            for c in by_class:
                if not c.startswith("pre_"):
                    by_class[c] = by_class[c] * slow.ravel()
    first, last = raw["first"].reshape(shape), raw["last"].reshape(shape)
    total_s = prefill_s + decode_s
    memory = memory_per_gpu(arch, b, p, o, t)
    fits = memory.total_bytes <= gpu.mem_bytes
    energy = _energy(raw, coef, prefill_s, decode_s, t, power, model, gpu)
    fit = None if not coefficients else str(coefficients.get(PATH_KEY, "given coefficients"))
    warned = _warnings(arch, gpu, t, model, memory, fits, b, p, o, raw["warned"])
    expected, outside = error_band((coefficients or {}).get(BAND_KEY), arch, t, describe(model))
    derived = _derived(model, raw)
    if derived:  # the band was validated on measured tables at bf16: it does not cover derived times
        expected = None
        outside = (*outside, f"precision {arch.precision.label}: {', '.join(derived)} derived, not measured")
    return Prediction(
        arch=arch.name, gpu=gpu.name, t=t, n_gpus=t, p=p, o=o, b=b,
        prefill_s=prefill_s, decode_s=decode_s,
        decode_step_s=np.where(o > 1, decode_s / np.maximum(o - 1, 1), first),
        decode_first_step_s=first, decode_last_step_s=last,
        total_s=total_s, tokens_per_s=b * o / total_s,
        prefill_by_class={c: v.reshape(shape) for c, v in raw["pre"].items()},
        decode_by_class={c: v.reshape(shape) for c, v in raw["dec"].items()},
        coefficients=coef, memory=memory, mem_capacity_bytes=gpu.mem_bytes, fits=fits,
        cost_usd=total_s * t * price / 3600.0, **energy, price_per_hour_usd=price,
        time_model=describe(model), fit=fit,
        warnings=tuple(sorted(warned)), warned=warned,
        expected_error=expected, outside_validated=outside, precision=arch.precision,
        derived_classes=derived, nodes=-(-t // gpu.gpus_per_node),
        prefill_exposed=None if ex is None else (ex["pre_x"].reshape(shape), ex["pre_y"].reshape(shape)),
        decode_exposed=None if ex is None else (ex["dec_x"].reshape(shape), ex["dec_y"].reshape(shape)))


def _host_mode(host: str, model: TimeModel, arch: ArchSpec) -> tuple[str, str | None]:
    """The host mode to time with, and a warning when hf-eager falls back to one launch per kernel (the table has
    no measured host model of the architecture's family)."""
    engine = parse_engine_host(host)
    if engine is not None:
        table = getattr(model, "table", None) or getattr(next(iter(getattr(model, "stacks", [])), None), "table", None)
        if has_engine_host(None if getattr(model, "derived_from", None) else table, engine[0]):
            return host, None
        return "graph", (f"host {host}: this table has no measured host model of the reference engine's {engine[0]} "
                         "stack (calibration/engine_host.py); timed as one graph launch a phase")
    if host != HF_EAGER or has_host_model(getattr(model, "table", None), arch):
        return host, None
    return "eager", (f"host {HF_EAGER}: this table has no measured host model of {arch.name}'s family "
                     "(calibration/host_bench.py); timed as one eager launch per kernel")


def _derived(model: TimeModel, raw: dict) -> tuple[str, ...]:
    """Op classes of these requests that the model timed from another class's points (TableModel.derived_classes,
    or each stack's for the best stack), not measured."""
    used = {c for part in ("pre", "dec") for c, v in raw[part].items() if np.any(v)}
    return tuple(sorted(derived_classes(model) & used))
