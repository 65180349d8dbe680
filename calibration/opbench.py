"""Op builders for the microbenchmarks: per op class and software stack, fresh random inputs and a call to time.

`build(op, stack, shape)` returns a `Bench`; `calibration.timing.measure(bench.call, rotate=bench.rotate,
use_graph=bench.graph)` times it. Stacks: `triton` runs our kernels (`kernels.*`, docs/CONTRACTS.md);
`torch` runs torch's own (F.linear on cuBLAS, SDPA flash, the reference engine's SDPA decode over a static
cache, torch.add; its unfused element-wise functions: calibration.opbench_torch). Shapes use the contract's keys.
Builders also run on CPU (torch stack; the triton stack under TRITON_INTERPRET=1) so the tests can check every
runner without a GPU.
"""
from __future__ import annotations

from collections.abc import Callable

from calibration.opbench_base import Bench, _copies, _cycle, _random_sets
from calibration.opbench_torch import norm, strided
from simulator.errors import UserError

STACKS = ("triton", "torch")


def gemm(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """C (m, n) = A (m, k) · W (n, k)ᵀ with W laid out like nn.Linear.weight."""
    import torch.nn.functional as F

    m, n, k = shape["m"], shape["n"], shape["k"]
    sets = _random_sets(_copies("gemm", shape, device), [(m, k), (n, k)], device)
    if stack == "triton":
        from kernels.gemm import matmul
        return Bench(_cycle(matmul, sets), len(sets), "kernels.gemm.matmul")
    return Bench(_cycle(F.linear, sets), len(sets), "torch.nn.functional.linear")


SCALED_MM_ROWS = 16  # torch._scaled_mm with row-wise scales takes a multiple of 16 rows: A is padded to it


def gemm_fp8(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """FP8 (e4m3) C (m, n) = A (m, k) · W (n, k)ᵀ, scaled per row of A (per token) and of W (per channel), bf16 out:
    ours (kernels.gemm_fp8) or torch._scaled_mm (cuBLASLt; A padded to SCALED_MM_ROWS rows, as it needs)."""
    import torch

    m, n, k = shape["m"], shape["n"], shape["k"]
    rows = m if stack == "triton" else -(-m // SCALED_MM_ROWS) * SCALED_MM_ROWS
    sets = [(a.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn))
            for a, w in _random_sets(_copies("gemm_fp8", shape, device), [(rows, k), (n, k)], device)]
    sa, sw = torch.ones(rows, device=device), torch.ones(n, device=device)
    if stack == "triton":
        from kernels.gemm_fp8 import matmul_fp8
        return Bench(_cycle(lambda a, w: matmul_fp8(a, w, sa, sw), sets), len(sets),
                     "kernels.gemm_fp8.matmul_fp8 (row scales)")
    return Bench(_cycle(lambda a, w: torch._scaled_mm(a, w.t(), scale_a=sa[:, None], scale_b=sw[None, :],
                                                      out_dtype=torch.bfloat16), sets), len(sets),
                 "torch._scaled_mm (row scales)")


INT4_GROUP = 128  # weights per scale along K of an int4 grid node (the op class's bytes assume it)


def gemm_int4(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """4-bit weight-only C (m, n) = A (m, k) · dequant(W)ᵀ, W packed two a byte with a scale per group of INT4_GROUP
    (kernels.gemm_int4; the only stack that has it)."""
    import torch

    from kernels.gemm_int4 import matmul_int4

    m, n, k = shape["m"], shape["n"], shape["k"]
    copies = _copies("gemm_int4", shape, device)
    sets = [(a, torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device=device),
             torch.rand(n, k // INT4_GROUP, device=device, dtype=torch.bfloat16))
            for (a,) in _random_sets(copies, [(m, k)], device)]
    return Bench(_cycle(matmul_int4, sets), len(sets), f"kernels.gemm_int4.matmul_int4 (group {INT4_GROUP})")


def prefill_attn(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """Self-attention over s tokens: q (b, h, s, d), k/v (b, kv_h, s, d), causal or not.

    The torch stack's operands are laid out as the engine's (calibration/engine/model.py, backends.py): q a
    head-major view of the token-major projection (b, s, h + kv_h, d), K and V the first s rows of static caches of
    the engine's rows for s (its context bucket), all kv_h heads passed (enable_gqa): at one token a sequence flash
    then runs a KV head's g query heads as one program's rows."""
    import torch.nn.functional as F

    b, h, kv_h, s, d, causal = (shape[x] for x in ("b", "h", "kv_h", "s", "d", "causal"))
    if stack == "triton":
        sets = _random_sets(_copies("prefill_attn", shape, device), [(b, h, s, d), (b, kv_h, s, d), (b, kv_h, s, d)],
                            device)
        from kernels.prefill_attention import prefill_attention
        return Bench(_cycle(lambda q, k, v: prefill_attention(q, k, v, causal=bool(causal)), sets),
                     len(sets), "kernels.prefill_attention.prefill_attention")
    from calibration.engine.runner import cache_rows

    rows = cache_rows(s)
    sets = _random_sets(_copies("prefill_attn", shape, device),
                        [(b, s, h + kv_h, d), (b, kv_h, rows, d), (b, kv_h, rows, d)], device)
    gqa = h != kv_h

    def sdpa(qk, k_cache, v_cache):
        q, k, v = qk[:, :, :h].transpose(1, 2), k_cache[:, :, :s], v_cache[:, :, :s]  # (b, h, s, d), (b, kv_h, s, d)
        return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), enable_gqa=gqa)  # (b, h, s, d)
    if device == "cpu":
        return Bench(_cycle(sdpa, sets), len(sets), "torch SDPA (math, cpu)")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa_flash(qk, k_cache, v_cache):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return sdpa(qk, k_cache, v_cache)
    return Bench(_cycle(sdpa_flash, sets), len(sets), "torch SDPA (flash, enable_gqa) on the engine's layouts")


CACHE_ROWS_ALIGN = 16  # static KV caches hold a multiple of 16 rows (the engine's buckets are multiples of 128)


def _torch_decode(q, k_cache, v_cache, lengths=None):
    """Decode attention as the reference engine's torch stack runs it (calibration.engine.backends): SDPA over
    the static cache, rows past `lengths` (default: all) masked. q (b, h, d), caches (b, kv_h, rows, d)."""
    import torch

    from calibration.engine.backends import get_backend

    if lengths is None:
        lengths = torch.full((q.shape[0],), k_cache.shape[2], dtype=torch.int32, device=q.device)
    return get_backend("torch").decode_attn(q, k_cache, v_cache, lengths)  # (b, h, d)


def decode_attn(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """One query token per sequence against a KV cache of c tokens: q (b, h, d), caches (b, kv_h, c, d).

    The torch stack reads a static cache of c rounded up to CACHE_ROWS_ALIGN rows, c of them valid, as the
    engine does: an unaligned cache (c odd) sends torch's kernels down slow unaligned paths (5x at c ~ 10^4
    on the H100), which no engine with a static cache runs."""
    import torch

    b, h, kv_h, c, d = (shape[x] for x in ("b", "h", "kv_h", "c", "d"))
    rows = c if stack == "triton" else -(-c // CACHE_ROWS_ALIGN) * CACHE_ROWS_ALIGN
    sets = _random_sets(_copies("decode_attn", shape, device), [(b, h, d), (b, kv_h, rows, d), (b, kv_h, rows, d)],
                        device)
    lengths = torch.full((b,), c, dtype=torch.int32, device=device)
    if stack == "triton":
        from kernels.decode_attention import decode_attention
        return Bench(_cycle(lambda q, k, v: decode_attention(q, k, v, lengths), sets), len(sets),
                     "kernels.decode_attention.decode_attention")
    from calibration.engine.backends import get_backend
    engine_decode = get_backend("torch").decode_attn
    return Bench(_cycle(lambda q, k, v: engine_decode(q, k, v, lengths), sets), len(sets),
                 "torch SDPA decode, static cache (calibration.engine.backends)")


FP8_KV_SCALE = 0.5  # the per-tensor K and V scale a decode_attn_fp8 point reads its cache at (any value times the same)


def decode_attn_fp8(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """Decode attention over float8_e4m3fn caches with per-tensor scales (kernels.decode_attention_fp8), as the
    fp8_kv engine variant runs it: q (b, h, d) bf16, caches (b, kv_h, c, d), c tokens valid."""
    import torch

    from kernels.decode_attention_fp8 import decode_attention_fp8

    b, h, kv_h, c, d = (shape[x] for x in ("b", "h", "kv_h", "c", "d"))
    sets = [(q, k.to(torch.float8_e4m3fn), v.to(torch.float8_e4m3fn)) for q, k, v in _random_sets(
        _copies("decode_attn_fp8", shape, device), [(b, h, d), (b, kv_h, c, d), (b, kv_h, c, d)], device)]
    lengths = torch.full((b,), c, dtype=torch.int32, device=device)
    return Bench(_cycle(lambda q, k, v: decode_attention_fp8(q, k, v, lengths, FP8_KV_SCALE, FP8_KV_SCALE), sets),
                 len(sets), "kernels.decode_attention_fp8.decode_attention_fp8")


def elementwise(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """z = x + y over bf16 tensors: `bytes` read and written in all (two reads, one write)."""
    import torch

    n = max(1, int(shape["bytes"]) // 6)
    sets = _random_sets(_copies("elementwise", shape, device), [(n,), (n,), (n,)], device)
    return Bench(_cycle(lambda x, y, z: torch.add(x, y, out=z), sets), len(sets), "torch.add")


def add_norm(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The engine's residual add + RMSNorm (kernels.fused.add_norm) over `rows` rows of `hidden`."""
    from kernels.fused import add_norm as fused_add_norm

    rows, hidden = int(shape["rows"]), int(shape["hidden"])
    sets = _random_sets(_copies("add_norm", shape, device), [(rows, hidden), (rows, hidden), (hidden,)], device)
    return Bench(_cycle(lambda x, y, w: fused_add_norm(x, y, w), sets), len(sets), "kernels.fused.add_norm")


ROPE_HEADS = 48  # q, k and v heads of a rope_kv_write grid node (32 + 2 x 8, GQA 4); nodes under it: 4 + 2 x 1


def rope_kv_write(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The engine's rotary + KV-cache write (kernels.fused.rope_write) over `rows` (token, head) rows of head dim
    d: tokens = rows / heads of one sequence, writing a cache of that many positions."""
    import torch

    from kernels.fused import rope_write

    rows, d = int(shape["rows"]), int(shape["d"])
    heads = ROPE_HEADS if rows % ROPE_HEADS == 0 else 6
    hkv, tokens = heads // 6, max(1, rows // heads)
    sets = _random_sets(_copies("rope_kv_write", shape, device),
                        [(1, tokens, heads, d), (1, hkv, tokens, d), (1, hkv, tokens, d)], device)
    cos, sin = (torch.randn(tokens, d, device=device, dtype=torch.bfloat16) for _ in range(2))
    return Bench(_cycle(lambda qkv, k, v: rope_write(qkv, cos, sin, k, v), sets), len(sets),
                 "kernels.fused.rope_write")


ACT_WIDTH = 2048  # output columns of an activation grid node (rows fill the bytes)


def act(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The engine's SwiGLU activation (kernels.fused.act): [gate | up] (rows, 2F) -> (rows, F), 6 bytes an output."""
    from kernels.fused import act as fused_act

    n = max(1, int(shape["bytes"]) // 6)
    f = min(ACT_WIDTH, n)
    sets = _random_sets(_copies("act", shape, device), [(max(1, n // f), 2 * f)], device)
    return Bench(_cycle(lambda up: fused_act(up, "swiglu"), sets), len(sets), "kernels.fused.act swiglu")


def quant_fp8(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """Per-token FP8 quantization of a w8a8 GEMM's input (kernels.quant_fp8.quantize_rows): `rows` rows of k bf16."""
    from kernels.quant_fp8 import quantize_rows

    sets = _random_sets(_copies("quant_fp8", shape, device), [(int(shape["rows"]), int(shape["k"]))], device)
    return Bench(_cycle(quantize_rows, sets), len(sets), "kernels.quant_fp8.quantize_rows")


def sample(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """Greedy sampling as the engine runs it: torch.argmax over the vocabulary of `rows` logit rows."""
    import torch

    rows, vocab = int(shape["rows"]), int(shape["vocab"])
    sets = _random_sets(_copies("sample", shape, device), [(rows, vocab)], device)
    return Bench(_cycle(lambda logits: torch.argmax(logits, dim=-1), sets), len(sets), "torch.argmax")


EMBED_HIDDEN, EMBED_VOCAB = 4096, 32000  # the table an embedding grid node gathers from


def embed(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """Embedding lookup as the engine runs it (F.embedding): tokens = bytes / (4 x hidden) rows gathered."""
    import torch
    import torch.nn.functional as F

    tokens = max(1, int(shape["bytes"]) // (4 * EMBED_HIDDEN))
    table = torch.randn(EMBED_VOCAB, EMBED_HIDDEN, device=device, dtype=torch.bfloat16)
    ids = [torch.randint(0, EMBED_VOCAB, (tokens,), device=device) for _ in range(_copies("embed", shape, device))]
    return Bench(lambda i: F.embedding(ids[i % len(ids)], table), len(ids), "torch.nn.functional.embedding")


TRANSPOSE_HEADS, TRANSPOSE_D = 32, 128  # the attention output a transpose grid node copies


def transpose(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The attention output copied from head-major (1, h, s, d) to token-major (s, h x d), as the engine does before
    its output projection: s = bytes / (4 h d) tokens."""
    s = max(1, int(shape["bytes"]) // (4 * TRANSPOSE_HEADS * TRANSPOSE_D))
    sets = _random_sets(_copies("transpose", shape, device), [(1, TRANSPOSE_HEADS, s, TRANSPOSE_D)], device)
    return Bench(_cycle(lambda o: o.transpose(1, 2).reshape(s, TRANSPOSE_HEADS * TRANSPOSE_D), sets), len(sets),
                 "torch copy (1, h, s, d) -> (s, h*d)")


def launch(stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The stack's smallest kernel (a 1x64x64 GEMM for triton, a 1-element add for torch): launched eagerly
    ("eager": the host's cost of one launch), replayed inside a graph ("graph"), or as a graph of its own
    launched from the host ("graph_launch": the host's cost of one graph replay, the engine's per step)."""
    import torch

    graph = shape["mode"] == "graph"
    if shape["mode"] == "graph_launch":
        x = torch.zeros(1, device=device)
        g = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            torch.add(x, 1.0, out=x)
            with torch.cuda.graph(g):
                torch.add(x, 1.0, out=x)
        torch.cuda.synchronize()
        return Bench(lambda i: g.replay(), 1, "CUDA graph of a 1-element add, replayed", False)
    if stack == "triton":
        from kernels.gemm import matmul
        a, w = _random_sets(1, [(1, 64), (64, 64)], device)[0]
        return Bench(lambda i: matmul(a, w), 1, "kernels.gemm.matmul 1x64x64", graph)
    x = torch.zeros(1, device=device)
    return Bench(lambda i: torch.add(x, 1.0, out=x), 1, "torch.add 1 element", graph)


BUILDERS: dict[str, Callable[[str, dict, str], Bench]] = {
    "gemm": gemm, "gemm_fp8": gemm_fp8, "gemm_int4": gemm_int4, "prefill_attn": prefill_attn,
    "decode_attn": decode_attn, "decode_attn_fp8": decode_attn_fp8,
    "elementwise": elementwise, "add_norm": add_norm, "rope_kv_write": rope_kv_write, "act": act,
    "quant_fp8": quant_fp8,
    "sample": sample, "embed": embed, "transpose": transpose, "strided": strided, "norm": norm, "launch": launch,
}


def build(op: str, stack: str, shape: dict, device: str = "cuda") -> Bench:
    """The Bench of one op class, stack and shape (contract shape keys)."""
    if op not in BUILDERS:
        raise UserError(f"op class '{op}' has no microbenchmark; use one of {', '.join(BUILDERS)}")
    if stack not in STACKS:
        raise UserError(f"stack '{stack}': use one of {', '.join(STACKS)}")
    return BUILDERS[op](stack, shape, device)
