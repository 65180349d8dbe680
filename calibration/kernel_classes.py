"""Which simulator op class a profiled GPU kernel belongs to, by its name (torch.profiler's kernel names of the
reference engine on either stack), so a profile can be set beside the simulated op list."""
from __future__ import annotations

import re

# (pattern on the kernel name, op class), first match wins. "step" marks the engine's own bookkeeping between
# steps (position updates, cache indices, copies of the next token), which the op list does not hold.
KERNEL_CLASSES: tuple[tuple[str, str], ...] = (
    (r"_decode_fp8_kernel", "decode_attn_fp8"),
    (r"_rope_write_fp8_kernel", "rope_kv_write"),
    (r"_fp8_kernel|_fp8_tma_kernel|_fp8_gemv_kernel|e4m3", "gemm_fp8"),  # ours, and cuBLASLt's (torch._scaled_mm)
    (r"_int4_kernel", "gemm_int4"),
    # attention before GEMMs: torch's flash kernels name their cutlass tile types
    (r"_prefill_kernel|flash_fwd(?!.*splitkv_combine)|fmha.*fwd|pytorch_flash", "prefill_attn"),
    # the torch stack's decode attention: SDPA (cuDNN), the valid-row mask it builds each call (arange, <) and SDPA's
    # additive bias made from it (where, and the fill of its padded copy)
    (r"_decode|cudnn|flash_fwd_splitkv_combine|fmha|arange_cuda_out|CompareFunctor|where_kernel|FillFunctor<c10::BFloat16>",
     "decode_attn"),
    (r"_matmul|gemm|cutlass|sm90_xmma|nvjet|cublas|_moe_.*gemm|_grouped", "gemm"),
    (r"_add_norm_kernel", "add_norm"),
    (r"_quant_rows_kernel", "quant_fp8"),
    (r"_rope_write_kernel", "rope_kv_write"),
    (r"_act_kernel", "act"),
    (r"ArgMaxOps|argmax", "sample"),
    (r"gather_kernel|embedding|index_select", "embed"),
    (r"_align|_route|topk|softmax", "elementwise"),
    (r"direct_copy_kernel_cuda.*elementwise_kernel<128, 4|elementwise_kernel<128, 4.*direct_copy", "transpose"),
    # torch's non-vectorized kernels on strided or broadcast operands, the concatenation of two strided halves, and
    # a decode step's cache row write (index_copy_)
    (r"gpu_kernel_impl_nocast<.*(MulFunctor|silu|addcmul)|CatArrayBatchedCopy|index_copy_kernel", "strided"),
    (r"layer_norm_kernel", "norm"),  # F.rms_norm and F.layer_norm (the torch stack's norms)
    (r"CUDAFunctor_add<c10::BFloat16>|[Mm]ul|silu|[Gg]elu|norm|rsqrt|pow|mean|[Cc]at|neg|cos|sin", "elementwise"),
    (r"Memcpy|Memset|memcpy|FillFunctor|index_elementwise|CUDAFunctorOnSelf_add<long>|direct_copy", "step"),
)
_COMPILED = [(re.compile(p), c) for p, c in KERNEL_CLASSES]


def kernel_class(name: str) -> str:
    """The op class of a kernel name; "other" for a kernel no pattern names."""
    return next((c for rx, c in _COMPILED if rx.search(name)), "other")


def by_class(kernels: list[dict]) -> dict[str, dict]:
    """Per op class: kernel count and summed device time (seconds) of a profile row's kernel list."""
    out: dict[str, dict] = {}
    for k in kernels:
        entry = out.setdefault(kernel_class(k["name"]), {"count": 0, "time_s": 0.0})
        entry["count"] += int(k["count"])
        entry["time_s"] += float(k["total_us"]) * 1e-6
    return out
