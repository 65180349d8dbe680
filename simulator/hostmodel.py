"""The host's measured cost of an eager stack with its own Python: transformers' eager `generate` (engine
`hf-eager`), per call and per layer of each phase, for each model family, from the table's `host` section
(measured by calibration/host_bench.py on tiny models, where the GPU's work is negligible)."""
from __future__ import annotations

from simulator.arch import ArchSpec
from simulator.errors import UserError

HOST_SECTION = "host"  # table key
ENGINE = "hf-eager"  # the host mode and the engine it describes
FAMILIES = ("llama", "opt", "neox")
MODE_PREFIX = "hf_eager_"  # launch modes: hf_eager_<phase>_<call|layer>:<family>
PHASES = ("prefill", "decode")


def hf_family(arch: ArchSpec) -> str | None:
    """The transformers family generate runs an architecture as (the mapping of calibration/engine/hf_eager.py),
    None when it has none."""
    if arch.is_moe:
        return None
    if arch.norm == "rmsnorm" and arch.ffn_kind == "swiglu" and arch.positions == "rotary":
        return "llama"
    if arch.positions == "learned" and arch.ffn_kind == "gelu" and not arch.parallel_block:
        return "opt"
    if arch.parallel_block and arch.positions == "rotary" and arch.n_kv_heads == arch.n_heads:
        return "neox"
    return None


def host_modes(arch: ArchSpec, phase: str) -> list[tuple[str, int]]:
    """(launch mode, runs) of one phase's host work (prefill, or one decode step): one call, one per layer."""
    family = hf_family(arch)
    if family is None:
        raise UserError(f"{arch.name}: transformers' eager generate has no family for this architecture "
                        f"(host '{ENGINE}' covers {', '.join(FAMILIES)}-like dense models)")
    return [(f"{MODE_PREFIX}{phase}_call:{family}", 1), (f"{MODE_PREFIX}{phase}_layer:{family}", arch.n_layers)]


def is_host_mode(mode: str) -> bool:
    """Whether a launch mode is a measured host model's (not a kernel-launch time)."""
    return mode.startswith(MODE_PREFIX)


def host_mode_seconds(table: dict | None, mode: str) -> float:
    """Seconds of one run of a host mode from the table's `host` section; a UserError when it is not measured."""
    phase_part, family = mode[len(MODE_PREFIX):].split(":")
    phase, part = phase_part.rsplit("_", 1)
    entry = ((table or {}).get(HOST_SECTION) or {}).get(ENGINE, {}).get(family)
    if entry is None:
        raise UserError(f"no measured host model of {ENGINE} ({family}) in this GPU's table; run "
                        "'python3 -m calibration.host_bench' on its machine and merge it")
    return float(entry[phase][f"{part}_s"])


def has_host_model(table: dict | None, arch: ArchSpec) -> bool:
    """Whether the table holds the measured host model of the architecture's family."""
    family = hf_family(arch)
    return family is not None and family in ((table or {}).get(HOST_SECTION) or {}).get(ENGINE, {})
