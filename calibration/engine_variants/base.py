"""The reference engine with another backend's kernels: what every backend variant builds on."""
from __future__ import annotations

from calibration.engine.backends import Backend
from calibration.engine.runner import Engine
from simulator.arch import ArchSpec


def engine_with_backend(arch: ArchSpec, be: Backend, base: str = "triton", **engine_args) -> Engine:
    """The engine of stack `base` (engine_args as Engine's) with every module's kernels replaced by `be`'s."""
    engine = Engine(arch, base, **engine_args)
    for module in engine.model.modules():
        if hasattr(module, "be"):
            module.be = be
    return engine
