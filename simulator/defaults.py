"""What every front end (CLI, Python API, reports) starts from: the architecture from a catalog name or a
config.json, and a GPU's default time model with its fit."""
from __future__ import annotations

from pathlib import Path

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.fits import PATH_KEY, fit_path, load_fit
from simulator.gpus import GPUSpec
from simulator.tables import IDEAL, default_model
from simulator.timemodel import TimeModel


def resolve_arch(model: str | None, config: str | None) -> ArchSpec:
    """The architecture from a catalog name or a config.json path."""
    if config is not None:
        from simulator.hf_config import load_config

        if not Path(config).exists():
            raise UserError(f"--config {config}: no such file; pass a Hugging Face config.json")
        return load_config(config)
    from simulator.catalog import get_arch

    return get_arch(model)


def with_precision(arch: ArchSpec, weights: str | None = None, kv: str | None = None) -> ArchSpec:
    """The architecture served at `--weights` / `--kv` (None: as its config says). Weights given on the command line
    leave the other tensors (embeddings, LM head) in 16 bits; a bad value is a UserError naming the flag."""
    if weights is None and kv is None:
        return arch
    precision = arch.precision.with_flags(weights, kv)
    return arch.with_(precision=precision, bytes_per_weight=2.0 if weights is not None else arch.bytes_per_weight)


def model_and_fit(gpu: GPUSpec, stack: str, no_fit: bool) -> tuple[TimeModel, dict | None, str]:
    """Time model, fit coefficients (or None) and a line saying which fit applies."""
    model = default_model(gpu, stack)
    if no_fit:
        return model, None, "none (--no-fit)"
    if stack == IDEAL:
        return model, None, "none (no engine runs the ideal envelope: table only)"
    fit = load_fit(gpu.name, stack)
    if fit is None:
        return model, None, f"none ({fit_path(gpu.name, stack).name} not found in calibration/fits)"
    return model, fit, fit[PATH_KEY]
