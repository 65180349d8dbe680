"""Engine variant `fp8`: the reference engine's triton stack with FP8 (e4m3) weights and activations (w8a8).

After the random init, every decoder layer's linear weight (QKV, attention output, up/gate, down) is quantized
once to float8_e4m3fn with one fp32 scale per output channel. A linear over such a weight quantizes its input
per token (kernels.quant_fp8, one launch) and runs kernels.gemm_fp8.matmul_fp8 with both row scales: the scaling
the tables' `gemm_fp8` class measures (calibration/opbench.py). Everything else is the triton stack's: fused
element-wise kernels, attention, a bf16 KV cache; the embeddings and the LM head stay bf16, as
simulator/precision.py models a quantized checkpoint. Dense architectures only (MoE experts would need an FP8
grouped GEMM). Rows measured with it carry the architecture at `PRECISION` (`arch_spec`), so fit and validate
predict them at FP8.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from calibration.engine.backends import Backend, get_backend
from calibration.engine.runner import Engine
from calibration.engine_variants.base import engine_with_backend
from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.precision import Precision

FUSED = True  # the triton stack's fused element-wise kernels (the rows' `fused`)
PRECISION = Precision(weights="fp8", activations="fp8", kv="bf16", scale="channel")
LAYER_WEIGHTS = ("wqkv", "wo", "w_up", "w2")  # the decoder layers' linear weights (calibration/engine/model.py)


@dataclass(frozen=True)
class Fp8Weight:
    """A linear weight (N, K) as float8_e4m3fn `q` with one fp32 scale per output channel: w ≈ q · scale[:, None]."""

    q: torch.Tensor  # (N, K) float8_e4m3fn
    scale: torch.Tensor  # (N,) float32


def _kernels() -> tuple[Callable, Callable]:
    """(per-token quantization, FP8 GEMM): the Triton kernels."""
    from kernels.gemm_fp8 import matmul_fp8
    from kernels.quant_fp8 import quantize_rows

    return quantize_rows, matmul_fp8


def reference_kernels() -> tuple[Callable, Callable]:
    """(per-token quantization, FP8 GEMM): their torch references (CPU checks of the variant's logic)."""
    from kernels.gemm_fp8 import matmul_fp8_ref
    from kernels.quant_fp8 import quantize_rows_ref

    return quantize_rows_ref, lambda a, w, sa, sw: matmul_fp8_ref(a, w, sa, sw).to(torch.bfloat16)


def fp8_backend(base: Backend, kernels: tuple[Callable, Callable] | None = None) -> Backend:
    """`base` with a linear that runs FP8 weights as w8a8 (input quantized per token) and any other weight
    (LM head) as `base` does; kernels: (quantize, gemm), default the Triton ones."""
    quantize, gemm = kernels or _kernels()

    def linear(x, w):
        if not isinstance(w, Fp8Weight):
            return base.linear(x, w)
        qa, sa = quantize(x)  # (T, K) e4m3, (T,) fp32
        return gemm(qa, w.q, sa, w.scale).to(x.dtype)  # (T, N); bf16 already on the GPU
    return replace(base, name="fp8", linear=linear)


@torch.no_grad()
def quantize_weights_(model: torch.nn.Module) -> int:
    """Replace every decoder-layer linear weight of `model` by its Fp8Weight (per-channel scales); returns how
    many were replaced."""
    from kernels.gemm_fp8 import quantize_fp8

    n = 0
    for module in model.modules():
        for name in LAYER_WEIGHTS:
            if name in module._parameters:
                w = module._parameters.pop(name)
                setattr(module, name, Fp8Weight(*quantize_fp8(w.data, rowwise=True)))
                del w
                n += 1
    return n


def make_engine(arch: ArchSpec, t: int = 1, rank: int = 0, group=None, device: str = "cuda",
                dtype=torch.bfloat16, kernels: tuple[Callable, Callable] | None = None, **engine_args) -> Engine:
    """The triton-stack engine of `arch` with its decoder-layer weights in FP8 (see the module docstring); on the
    CPU (tests, Triton's interpreter) in bf16 whatever `dtype`, as the triton stack's kernels take 16-bit inputs."""
    if str(device) == "cpu":
        dtype = torch.bfloat16
    if arch.is_moe:
        raise UserError(f"--backend fp8: {arch.name} is a mixture of experts; the FP8 engine runs dense "
                        "architectures only (its experts would need an FP8 grouped GEMM)")
    be = fp8_backend(get_backend("triton"), kernels)
    engine = engine_with_backend(arch, be, t=t, rank=rank, group=group, device=device, dtype=dtype, **engine_args)
    quantize_weights_(engine.model)
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()  # the bf16 weights the FP8 ones replaced
    return engine


def served_arch(arch: ArchSpec) -> ArchSpec:
    """The architecture as this engine serves it: at PRECISION (what its rows' `arch_spec` says)."""
    return replace(arch, precision=PRECISION)
