"""Op builders for the torch stack's unfused element-wise functions: each runs the expression the reference engine's
torch backend runs (calibration/engine/backends.py, `_torch_backend`), on operands laid out as the engine's are.

`strided` (shape `fn`, `bytes`): SwiGLU's silu of the gate half and its product with the up half of a (rows, 2F)
projection; rotary's q and k (a view inside the (tokens, q + 2 kv heads, d) projection) times cos broadcast over
heads, the swap of their halves (torch.cat) and the addcmul with sin; a decode step's K written into one row of the
cache (index_copy_). `norm` (shape `fn`, `rows`, `hidden`): F.rms_norm or F.layer_norm alone. A node's tensors hold
`bytes` rounded down to whole rows (up to ACT_WIDTH outputs, at least two rows), tokens (ROPE_QK_HEADS heads of ROPE_D) or cache rows.
"""
from __future__ import annotations

ACT_WIDTH = 2048  # F of a SwiGLU node: (rows, 2F) in, rows fill the bytes (calibration.opbench.act's width)
ROPE_QK_HEADS, ROPE_KV_HEADS, ROPE_D = 40, 8, 128  # q and k heads a token (32 + 8, GQA 4), v heads, head dim
SMALL_QK_HEADS = 5  # nodes below one token of 40 heads: 4 + 1 heads
INDEX_KV_HEADS, INDEX_D, INDEX_CACHE_ROWS = 8, 128, 4  # a decode cache write: (b, 8, 1, 128) into (b, 8, 4, 128)
EPS = 1e-5


def _swiglu(fn: str, nbytes: int, copies, device: str):
    """silu(g) of the gate half (2 bytes an output) or silu(g) x u with u the up half (3 bytes an output)."""
    import torch.nn.functional as F

    from calibration.opbench_base import Bench, _cycle, _random_sets

    n = max(2, nbytes // (4 if fn == "silu" else 6))  # outputs
    f = min(ACT_WIDTH, n // 2)  # at least two rows: on one, a half is contiguous and torch vectorizes
    rows = n // f
    if fn == "silu":
        sets = _random_sets(copies(rows * 2 * f * 2), [(rows, 2 * f)], device)
        return Bench(_cycle(lambda up: F.silu(up[:, :f]), sets), len(sets), "F.silu of the gate half of (rows, 2F)")
    sets = _random_sets(copies(rows * 3 * f * 2), [(rows, f), (rows, 2 * f)], device)
    return Bench(_cycle(lambda s, up: s * up[:, f:], sets), len(sets), "silu(gate) x the up half of (rows, 2F)")


def _rotary(fn: str, nbytes: int, copies, device: str):
    """One of rotary's three kernels over q and k of `tokens` tokens: x*cos reads x (a view inside qkv) and writes
    2 bytes a value, the half swap the same, the addcmul reads two values and writes one."""
    import torch

    from calibration.opbench_base import Bench, _cycle, _random_sets

    per_value = 6 if fn == "rotary_addcmul" else 4
    heads = ROPE_QK_HEADS if nbytes >= per_value * ROPE_QK_HEADS * ROPE_D else SMALL_QK_HEADS
    tokens = max(1, nbytes // (per_value * heads * ROPE_D))
    qk_shape = (1, tokens, heads, ROPE_D)
    cos, sin = (torch.randn(tokens, ROPE_D, device=device, dtype=torch.bfloat16)[None, :, None] for _ in range(2))
    half = ROPE_D // 2
    if fn == "rotary_addcmul":  # qk*cos and the swapped halves, both fresh tensors of q and k
        sets = _random_sets(copies(tokens * heads * ROPE_D * 6), [qk_shape, qk_shape], device)
        return Bench(_cycle(lambda a, b: torch.addcmul(a, b, sin), sets), len(sets), "torch.addcmul(qk*cos, swap, sin)")
    kv = ROPE_KV_HEADS if heads == ROPE_QK_HEADS else 1
    sets = _random_sets(copies(tokens * (heads + kv) * ROPE_D * 2), [(1, tokens, heads + kv, ROPE_D)], device)
    if fn == "rotary_mul":
        return Bench(_cycle(lambda qkv: qkv[:, :, :heads] * cos, sets), len(sets), "q and k inside qkv x cos")
    return Bench(_cycle(lambda qkv: torch.cat([qkv[:, :, :heads, half:], qkv[:, :, :heads, :half]], dim=-1), sets),
                 len(sets), "torch.cat of the swapped halves of q and k inside qkv")


def _index_copy(nbytes: int, copies, device: str):
    """A decode step's K (or V) of b sequences, a (b, kv, 1, d) view of the token-major projection, into cache row
    `pos` of (b, kv, rows, d): 4 bytes a value (read, written)."""
    import torch

    from calibration.opbench_base import Bench, _cycle, _random_sets

    values = max(1, nbytes // 4)
    kv = INDEX_KV_HEADS if values >= INDEX_KV_HEADS * INDEX_D else 1
    b = max(1, values // (kv * INDEX_D))
    sets = _random_sets(copies(b * kv * INDEX_D * 4), [(b, 1, 3 * kv, INDEX_D)], device)  # (B, S=1, k + v + q, D)
    cache = torch.zeros(b, kv, INDEX_CACHE_ROWS, INDEX_D, device=device, dtype=torch.bfloat16)
    pos = torch.ones(1, dtype=torch.long, device=device)
    return Bench(_cycle(lambda x: cache.index_copy_(2, pos, x[:, :, :kv].transpose(1, 2)), sets), len(sets),
                 "KVCache.write_step: index_copy_ of one cache row")


def strided(stack: str, shape: dict, device: str = "cuda"):
    """The torch stack's function `fn` (simulator.opclasses.STRIDED_FNS) on `bytes` read + written."""
    from calibration.opbench_base import _l2
    from calibration.timing import rotation_count

    fn, nbytes = str(shape["fn"]), int(shape["bytes"])
    hot = device == "cpu" or shape.get("l2") == "hot"  # inputs left in L2: one input set
    copies = (lambda op_bytes: 1) if hot else (lambda op_bytes: rotation_count(op_bytes, _l2(device)))
    if fn in ("silu", "mul"):
        return _swiglu(fn, nbytes, copies, device)
    if fn.startswith("rotary_"):
        return _rotary(fn, nbytes, copies, device)
    if fn == "index_copy":
        return _index_copy(nbytes, copies, device)
    from simulator.errors import UserError
    raise UserError(f"strided shape 'fn' is {fn!r}; use one of simulator.opclasses.STRIDED_FNS")


def norm(stack: str, shape: dict, device: str = "cuda"):
    """F.rms_norm or F.layer_norm (`fn`) over `rows` rows of `hidden`, with a gain (and a bias for LayerNorm)."""
    import torch
    import torch.nn.functional as F

    from calibration.opbench_base import Bench, _copies, _cycle, _random_sets

    fn, rows, hidden = str(shape["fn"]), int(shape["rows"]), int(shape["hidden"])
    sets = _random_sets(_copies("norm", shape, device), [(rows, hidden)], device)
    w, b = (torch.randn(hidden, device=device, dtype=torch.bfloat16) for _ in range(2))
    if fn == "rms_norm":
        return Bench(_cycle(lambda x: F.rms_norm(x, (hidden,), w, eps=EPS), sets), len(sets), "F.rms_norm")
    return Bench(_cycle(lambda x: F.layer_norm(x, (hidden,), w, b, eps=EPS), sets), len(sets), "F.layer_norm")
