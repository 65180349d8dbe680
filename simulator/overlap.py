"""How an eager host and the GPU overlap within a phase: a queue. The host issues kernels in order; a kernel starts
at the later of its issue and the previous kernel's end. Over a layer-periodic op list the phase then takes

    max(G + X, H + Y)

with G the GPU's seconds, H the host's, X the host's seconds the GPU waits for when it is the bottleneck and Y the
GPU's seconds after the host's last issue when the host is. A stack whose host costs nothing a kernel (a replayed
CUDA graph) has X = Y = 0: the longer of G and H.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.hostmodel import is_host_mode
from simulator.ops import EMBED_OPS, HEAD_OPS, Op

HOST_CLASS = "launch"


def _part_of(name: str, ops: tuple[str, ...]) -> bool:
    """Whether an op of this name is one of `ops` or one of the kernels one of them is run as (`<op>_<part>`)."""
    return any(name == o or name.startswith(o + "_") for o in ops)


def _split(runs: Sequence[tuple[Op, np.ndarray]]) -> tuple[list, list, list]:
    """The (op, seconds a run) of a phase's GPU kernels before its layers (embedding), in its layers and after them
    (the head), in the op list's order; the host's `launch` ops left out."""
    kernels = [(op, s) for op, s in runs if op.op_class != HOST_CLASS]
    head = [i for i, (op, _) in enumerate(kernels) if _part_of(op.name, HEAD_OPS)]
    start = head[0] if head else len(kernels)
    pre = [k for k in kernels[:start] if _part_of(k[0].name, EMBED_OPS)]
    return pre, kernels[len(pre):start], kernels[start:]


def _host(runs: Sequence[tuple[Op, np.ndarray]], part: str) -> np.ndarray:
    """Seconds of the measured host model's `part` ("call" or "layer") of a phase: one run of its launch op."""
    return sum((np.asarray(s, dtype=float) for op, s in runs if op.op_class == HOST_CLASS
                and is_host_mode(op.shape["mode"]) and op.shape["mode"].split(":")[0].endswith(f"_{part}")),
               np.zeros(()))


def exposed_s(runs: Sequence[tuple[Op, np.ndarray]], n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) of a phase (module docstring) from its ops' seconds a run, in issue order: its kernels and the measured
    host model's launch ops (simulator.hostmodel), whose seconds a call are issued before the first kernel (the GPU
    idles meanwhile: each phase ends in a synchronisation) and whose seconds a layer spread evenly over the layer's
    kernels (the head's issue is in the call's)."""
    call_s, layer_s = _host(runs, "call"), _host(runs, "layer")
    pre, layer, post = _split(runs)
    g_pre = sum((op.count * s for op, s in pre), np.zeros(()))
    g_post = sum((op.count * s for op, s in post), np.zeros(()))
    weights = [np.asarray(op.count, dtype=float) / n_layers for op, _ in layer]  # runs a layer
    kernels = sum(weights, np.zeros(()))
    h = layer_s / np.maximum(kernels, 1.0)  # host seconds to issue one kernel
    lead = np.zeros(())  # max over a layer's kernels of (host time to issue it − GPU time of the kernels before it)
    issued, gpu_before = np.zeros(()), np.zeros(())
    for w, (_, s) in zip(weights, layer):
        issued = issued + w * h
        lead = np.maximum(lead, np.where(w > 0, issued - gpu_before, lead))
        gpu_before = gpu_before + w * s
    x = call_s + np.maximum(lead - g_pre, 0.0)
    y = g_post + np.maximum(lead + gpu_before - layer_s, 0.0)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)
