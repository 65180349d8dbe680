"""The host's measured costs, from the table's `host` section, each measured on tiny models where the GPU's work
is negligible:
- transformers' eager `generate` (engine `hf-eager`): per call and per layer of each phase, for each model
  family (calibration/host_bench.py);
- the reference engine (engine `idealrt`, calibration/engine): per call and per kernel, for each stack, the
  start of a graphed prefill (the host launching its CUDA graph after a sync, which no GPU work hides) and the
  host's launching of an eager prefill (which the GPU's work overlaps) (calibration/engine_host.py)."""
from __future__ import annotations

from simulator.arch import ArchSpec
from simulator.errors import UserError

HOST_SECTION = "host"  # table key
ENGINE = "hf-eager"  # the host mode and the engine it describes
FAMILIES = ("llama", "opt", "neox")
MODE_PREFIX = "hf_eager_"  # launch modes: hf_eager_<phase>_<call|layer>:<family>
PHASES = ("prefill", "decode")
REFERENCE = "idealrt"  # the reference engine: its host section is keyed by stack
REFERENCE_PREFIX = "idealrt_"  # its launch modes: idealrt_<part>_<call|kernel>:<stack>
GRAPH_START, GRAPH_START_AFTER_STEPS, EAGER_PREFILL = "graph_start", "graph_start_after_steps", "eager"
ENGINE_PARTS = (GRAPH_START, GRAPH_START_AFTER_STEPS, EAGER_PREFILL)
PREFILL_GRAPH_TOKENS = 2048  # it replays a captured prefill of up to b x p tokens (calibration/engine/runner.py)
MOE_SYNC_FREE_TOKENS = 128  # its torch-stack MoE captures a forward of up to this many tokens (engine/model.py)


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
    return mode.startswith((MODE_PREFIX, REFERENCE_PREFIX))


def engine_host(stack: str, after_steps: bool = False) -> str:
    """The host of the reference engine's rows of `stack` (simulator.ops with_launches): its graphed prefills
    start after the graph's launch, its eager ones take the longer of the host's launches and the GPU's work;
    `after_steps`: each timed prefill follows the decode steps of the run before (a query with o > 1)."""
    return f"{REFERENCE}:{stack}" + (":steps" if after_steps else "")


def parse_engine_host(host: str) -> tuple[str, bool] | None:
    """(stack, after_steps) of an engine_host string, None for any other host."""
    parts = host.split(":")
    if parts[0] != REFERENCE or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "steps"):
        return None
    return parts[1], len(parts) == 3


def engine_mode(part: str, unit: str, stack: str) -> str:
    """The launch mode of one part (ENGINE_PARTS) of the reference engine's host, per 'call' or per 'kernel'."""
    return f"{REFERENCE_PREFIX}{part}_{unit}:{stack}"


def has_engine_host(table: dict | None, stack: str) -> bool:
    """Whether the table holds the reference engine's measured host model of `stack`."""
    return stack in ((table or {}).get(HOST_SECTION) or {}).get(REFERENCE, {})


def host_mode_seconds(table: dict | None, mode: str) -> float:
    """Seconds of one run of a host mode from the table's `host` section; a UserError when it is not measured."""
    prefix = REFERENCE_PREFIX if mode.startswith(REFERENCE_PREFIX) else MODE_PREFIX
    engine, bench = {MODE_PREFIX: (ENGINE, "host_bench"), REFERENCE_PREFIX: (REFERENCE, "engine_host")}[prefix]
    head, key = mode[len(prefix):].split(":")  # key: a family (hf-eager) or a stack (the reference engine)
    part, unit = head.rsplit("_", 1)
    entry = ((table or {}).get(HOST_SECTION) or {}).get(engine, {}).get(key)
    if entry is None:
        raise UserError(f"no measured host model of {engine} ({key}) in this GPU's table; run "
                        f"'python3 -m calibration.{bench}' on its machine and merge it")
    return float(entry[part][f"{unit}_s"])


def has_host_model(table: dict | None, arch: ArchSpec) -> bool:
    """Whether the table holds the measured host model of the architecture's family."""
    family = hf_family(arch)
    return family is not None and family in ((table or {}).get(HOST_SECTION) or {}).get(ENGINE, {})
