"""The engine variant `best`: per call shape, the GEMM and attention kernels of the stack that simulator.dispatch
chooses from the GPU's measured table (ours, or cuBLAS / SDPA), the rest ours (fused element-wise kernels, the
grouped MoE GEMMs and router).

A shape's choice is made at its first call and cached; the engine captures its CUDA graphs after a warm-up call
of the same shapes, and the choice is a lookup on the host (numpy, no device sync), so it is graph-safe. The
table is the one simulator.tables reads for the GPU (calibration/tables/<gpu>.json), so the simulated `best`
stack times the kernels this engine runs.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from calibration.engine.backends import Backend, get_backend
from calibration.engine.runner import Engine
from calibration.engine_variants.base import engine_with_backend
from simulator.arch import ArchSpec
from simulator.dispatch import OURS, Dispatch

FUSED = True  # its element-wise kernels are ours, the fused ones (rows carry fused: true)
CPU_GPU = "h200"  # the table a CPU test run dispatches by (no GPU to detect)


def gemm_shape(x, w) -> dict:
    """x (T, K), w (N, K): the GEMM's m, n, k."""
    return {"m": int(x.shape[0]), "n": int(w.shape[0]), "k": int(w.shape[1])}


def prefill_shape(q, k) -> dict:
    """q (B, Hq, S, D), k (B, Hkv, S, D): causal prefill attention's shape."""
    return {"b": int(q.shape[0]), "h": int(q.shape[1]), "kv_h": int(k.shape[1]), "s": int(q.shape[2]),
            "d": int(q.shape[3]), "causal": 1}


def decode_shape(q, k_cache) -> dict:
    """q (B, Hq, D), k_cache (B, Hkv, C, D): decode attention's shape, c the cache rows the step reads."""
    return {"b": int(q.shape[0]), "h": int(q.shape[1]), "kv_h": int(k_cache.shape[1]), "c": int(k_cache.shape[2]),
            "d": int(q.shape[2])}


class Chooser:
    """The stack of each call shape, from the rule, decided at the shape's first call; `choices` keeps them."""

    def __init__(self, rule: Dispatch):
        self.rule = rule
        self.choices: dict[tuple, str] = {}  # (op class, *shape values) -> stack

    def __call__(self, op_class: str, shape: dict) -> str:
        key = (op_class, *shape.values())
        if key not in self.choices:
            self.choices[key] = self.rule.choose(op_class, shape)
        return self.choices[key]


def best_backend(chooser: Chooser) -> Backend:
    """Ours (the triton backend) with its GEMM and attention calls dispatched per shape by `chooser`."""
    ours, vendor = get_backend("triton"), get_backend("torch")

    def pick(op_class: str, shape_of: Callable, field: str) -> Callable:
        mine, theirs = getattr(ours, field), getattr(vendor, field)

        def call(*args):
            return (mine if chooser(op_class, shape_of(*args[:2])) == OURS else theirs)(*args)
        return call

    return dataclasses.replace(ours, name="best", linear=pick("gemm", gemm_shape, "linear"),
                               prefill_attn=pick("prefill_attn", prefill_shape, "prefill_attn"),
                               decode_attn=pick("decode_attn", decode_shape, "decode_attn"))


def rule_for(device: str, gpu: str | None = None) -> Dispatch:
    """The dispatch rule on the table of `gpu` (default: the GPU `device` is, CPU_GPU on the CPU)."""
    from simulator.errors import UserError
    from simulator.gpus import get_gpu, gpu_for_device_name
    from simulator.tables import BEST, default_model

    if gpu is None and device != "cpu":
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
        spec = gpu_for_device_name(name)
        if spec is None:
            raise UserError(f"device '{name}' is not in the GPU catalog: the best engine has no table to dispatch by")
    else:
        spec = get_gpu(gpu or CPU_GPU)
    model = default_model(spec, BEST)
    if not hasattr(model, "dispatch"):
        raise UserError(f"GPU {spec.name}: no measured or derived table to dispatch by; run 'idealrt calibrate'")
    return model.dispatch


def make_engine(arch: ArchSpec, t: int = 1, rank: int = 0, group=None, device: str = "cuda", dtype=None,
                gpu: str | None = None) -> Engine:
    """The reference engine with the best backend, in bf16 or fp16 (`dtype`; our kernels take no float32, so a
    CPU test run's float32 runs bf16); its Chooser is `engine.chooser` (the choices it made)."""
    import torch

    chooser = Chooser(rule_for(device, gpu))
    dtype = dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
    engine = engine_with_backend(arch, best_backend(chooser), t=t, rank=rank, group=group, device=device, dtype=dtype)
    engine.chooser = chooser
    return engine
