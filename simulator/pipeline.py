"""Requests on pp pipeline stages of t GPUs each (t within a node or across nodes), with the batch in m
micro-batches, from two runs of `simulator.predict`: the whole model and the most loaded stage, each on a
micro-batch of b / m sequences.

A stage holds ceil(n_layers / pp) layers, and is taken to hold the embedding and the LM head as well (an upper
bound on the last stage; memory takes the same stage). Between stages each GPU sends its 1/t of the activations
(b/m · tokens · hidden · 2 bytes over t GPUs) point to point, over NVLink or the node's network (simulator/
network.py, modelled). Then (GPipe's schedule, no interleaving):
- a pass of one micro-batch through every stage takes T_pass = T(model) + the sends of all pp − 1 boundaries;
- a stage kept busy by one micro-batch takes T_stage = T(stage) + the slowest boundary's send;
- prefill: the last micro-batch leaves the last stage at T_pass + (m − 1) · T_stage (filling and draining the
  pipeline: the bubble);
- decode: in a step every micro-batch advances one token, and a micro-batch's next token needs its last one out
  of the last stage: a step takes max(T_pass, m · T_stage), so stages idle when m · T_stage < T_pass (m < pp);
  over a request's o − 1 steps, max(Σ T_pass, m · Σ T_stage).
Energy: the m micro-batches' work as predict prices it on t GPUs (their kernels and idle gaps), and every other
GPU-second of the t · pp GPUs at idle power (without a measured power model: board power all along, as predict).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GIB, GPUSpec
from simulator.memory import (
    check_pp,
    check_tp,
    memory_per_gpu,
    smallest_fitting_layout,
    stage_arch,
)
from simulator.network import note, p2p_s, stage_boundaries
from simulator.opclasses import ACT_BYTES
from simulator.power import power_model
from simulator.predict import Prediction, board_power, predict
from simulator.tables import default_model


def layout(arch: ArchSpec, gpu: GPUSpec, b, p, o, t: int | None, pp: int | None) -> tuple[int, int]:
    """(t, pp): as given (a layout that does not fit is predicted and marked so); t given alone keeps one stage;
    otherwise memory picks the fewest GPUs that fit (simulator.memory.smallest_fitting_layout)."""
    if t is not None:
        return check_tp(arch, t), 1 if pp is None else check_pp(arch, pp)
    return smallest_fitting_layout(arch, gpu, b, p, o, t, pp)


def bubble(m: int, pp: int) -> float:
    """Idle fraction of a GPipe prefill of m micro-batches on pp equal stages (no sends): (pp − 1) / (m + pp − 1)."""
    return (pp - 1) / (m + pp - 1)


def pipeline_times(pass_s, stage_s, m: int, steps) -> tuple[np.ndarray, np.ndarray]:
    """(prefill s, decode s) from a micro-batch's pass and stage times, (prefill, decode) pairs: the decode ones
    summed over `steps` steps (module docstring)."""
    (pass_pre, pass_dec), (stage_pre, stage_dec) = pass_s, stage_s
    prefill = pass_pre + (m - 1) * stage_pre
    decode = np.where(np.asarray(steps) > 0, np.maximum(pass_dec, m * stage_dec), 0.0)
    return np.asarray(prefill, dtype=float), np.asarray(decode, dtype=float)


def predict_parallel(arch: ArchSpec, gpu: GPUSpec, p: ArrayLike, o: ArrayLike, b: ArrayLike = 1,
                     t: int | None = None, pp: int | None = None, microbatches: int = 1, *, model=None,
                     **kwargs) -> Prediction:
    """`simulator.predict.predict` on pp pipeline stages with m = `microbatches` micro-batches (module
    docstring); t and pp None: the fewest GPUs that fit. kwargs go to predict."""
    model = model if model is not None else default_model(gpu)
    b_arr = np.asarray(b)
    t, pp = layout(arch, gpu, b_arr, np.asarray(p), np.asarray(o), t, pp)
    m = microbatches
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise UserError(f"microbatches: give a whole number >= 1, got {m!r}")
    if np.any(b_arr % m):
        raise UserError(f"microbatches={m}: must divide the batch ({b_arr.ravel()[np.argmax(b_arr % m > 0)]}); "
                        "use a divisor of --batch")
    if pp == 1 and m == 1:
        pred = predict(arch, gpu, p, o, b, t, model=model, **kwargs)
        return _with_network_note(pred, gpu) if pred.nodes > 1 else pred
    check_pp(arch, pp)
    whole = predict(arch, gpu, p, o, b_arr // m, t, model=model, **kwargs)
    stage = predict(stage_arch(arch, pp), gpu, p, o, b_arr // m, t, model=model, **kwargs)
    return _combine(arch, gpu, whole, stage, pp, m, model, np.broadcast_to(b_arr, whole.p.shape))


def _sends(arch: ArchSpec, gpu: GPUSpec, t: int, pp: int, tokens) -> tuple[np.ndarray, np.ndarray]:
    """(all pp − 1 boundaries, the slowest one): seconds of sending `tokens` tokens' activations, per GPU 1/t."""
    nbytes = ACT_BYTES * arch.hidden * np.asarray(tokens, dtype=float) / t
    within, across = stage_boundaries(gpu, t, pp)
    intra, inter = p2p_s(gpu, nbytes, False), p2p_s(gpu, nbytes, True)
    return within * intra + across * inter, inter if across else intra


def _combine(arch: ArchSpec, gpu: GPUSpec, whole: Prediction, stage: Prediction, pp: int, m: int, model,
             b: np.ndarray) -> Prediction:
    """The pipeline's Prediction from the whole model's and the stage's on one micro-batch."""
    t, bm, steps = whole.t, whole.b, np.maximum(whole.o - 1, 0)
    all_pre, one_pre = _sends(arch, gpu, t, pp, bm * whole.p)
    all_dec, one_dec = _sends(arch, gpu, t, pp, bm)
    pass_s = (whole.prefill_s + all_pre, whole.decode_s + steps * all_dec)
    stage_s = (stage.prefill_s + one_pre, stage.decode_s + steps * one_dec)
    prefill_s, decode_s = pipeline_times(pass_s, stage_s, m, steps)
    step = lambda w, s: np.maximum(w + all_dec, m * (s + one_dec))
    first, last = step(whole.decode_first_step_s, stage.decode_first_step_s), step(whole.decode_last_step_s,
                                                                                    stage.decode_last_step_s)
    total_s = prefill_s + decode_s
    n_gpus = t * pp
    energy = _energy(whole, model, gpu, m, n_gpus, prefill_s, decode_s)
    memory = memory_per_gpu(arch, b, whole.p, whole.o, t, pp)
    fits = memory.total_bytes <= gpu.mem_bytes
    warned = {k: v for k, v in whole.warned.items() if not k.startswith("memory:")}
    nodes = -(-n_gpus // gpu.gpus_per_node)
    if pp > 1 or nodes > 1:
        warned[note(gpu)] = np.ones(whole.p.shape, bool)
    if not fits.all():
        warned[f"memory: {float(memory.total_bytes.max()) / GIB:.1f} GiB per GPU at tp={t}, pp={pp} exceeds the "
               f"{gpu.mem_gib:.0f} GiB of {gpu.name}"] = ~fits
    info = {"stage_layers": -(-arch.n_layers // pp), "boundaries_across_nodes": stage_boundaries(gpu, t, pp)[1],
            "pass_prefill_s": pass_s[0], "stage_prefill_s": stage_s[0], "p2p_prefill_s": all_pre,
            "pass_decode_s": pass_s[1], "stage_decode_s": stage_s[1], "p2p_decode_step_s": all_dec,
            # idle fraction of the stages' GPU time: each of the pp stages works m · T_stage of the phase
            "bubble_prefill": 1.0 - m * stage_s[0] / prefill_s,
            "bubble_decode": 1.0 - m * stage_s[1] / np.where(decode_s > 0, decode_s, np.inf)}
    return replace(
        whole, b=b, pp=pp, microbatches=m, n_gpus=n_gpus, nodes=nodes,
        prefill_s=prefill_s, decode_s=decode_s, decode_first_step_s=first, decode_last_step_s=last,
        decode_step_s=np.where(whole.o > 1, decode_s / np.maximum(steps, 1), first), total_s=total_s,
        tokens_per_s=b * whole.o / total_s,
        prefill_by_class={c: m * v for c, v in whole.prefill_by_class.items()},
        decode_by_class={c: m * v for c, v in whole.decode_by_class.items()},
        memory=memory, fits=fits, cost_usd=total_s * n_gpus * whole.price_per_hour_usd / 3600.0, **energy,
        warnings=tuple(sorted(warned)), warned=warned, expected_error=None,
        outside_validated=(*whole.outside_validated, f"pipeline (pp={pp}, {m} micro-batches): modelled, not validated"),
        pipeline=info)


def _energy(whole: Prediction, model, gpu: GPUSpec, m: int, n_gpus: int, prefill_s: np.ndarray,
            decode_s: np.ndarray) -> dict:
    """Energy of the pipeline: m micro-batches' work as predicted on t GPUs, the other GPU-seconds idle (module
    docstring)."""
    power = power_model(model)
    t = whole.t
    if power is None:
        watts, _ = board_power(model, gpu)
        pre, dec = prefill_s * n_gpus * watts, decode_s * n_gpus * watts
        return {"prefill_energy_j": pre, "decode_energy_j": dec, "energy_j": pre + dec,
                "energy_by_class": {}, "power_w": watts}
    idle = lambda wall, work_s: power.idle_w * np.maximum(n_gpus * wall - t * m * work_s, 0.0)
    pre = m * whole.prefill_energy_j + idle(prefill_s, whole.prefill_s)
    dec = m * whole.decode_energy_j + idle(decode_s, whole.decode_s)
    by_class = {c: m * v for c, v in whole.energy_by_class.items()}
    by_class["idle"] = by_class.get("idle", 0.0) + idle(prefill_s, whole.prefill_s) + idle(decode_s, whole.decode_s)
    return {"prefill_energy_j": pre, "decode_energy_j": dec, "energy_j": pre + dec, "energy_by_class": by_class,
            "power_w": (pre + dec) / ((prefill_s + decode_s) * n_gpus)}


def _with_network_note(pred: Prediction, gpu: GPUSpec) -> Prediction:
    """A one-stage prediction whose t spans nodes, with the network warning on every request."""
    warned = {**pred.warned, note(gpu): np.ones(pred.p.shape, bool)}
    return replace(pred, warned=warned, warnings=tuple(sorted(warned)),
                   outside_validated=(*pred.outside_validated, f"t={pred.t} across {pred.nodes} nodes: modelled"))
