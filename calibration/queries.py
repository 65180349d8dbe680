"""Configuration queries (p, o, b, t) as data: the measurement grids, the fit/heldout rule, a cost estimate.

A grid is a tuple of blocks (b, prompt lengths, output lengths); each block is a cross product. A
prompt longer than the architecture allows (p + o - 1 > max_positions) is clamped to the longest that
fits, and repeats are dropped. Grids were sized with `estimate_s` so a whole GPU run fits its budget:
most o are small, one is 512, and b x p stays at or under 32k tokens.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from simulator.arch import ArchSpec
from simulator.errors import UserError

Block = tuple[int, tuple[int, ...], tuple[int, ...]]  # (b, p values, o values)

GRIDS: dict[str, tuple[Block, ...]] = {
    # one GPU, t = 1: 60-70 queries per architecture, p 1..8192, o 1..512, b in {1, 8, 32}
    "h100": (
        (1, (1, 16, 64, 128, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192), (1, 8, 32)),
        (1, (1024, 4096), (128,)),
        (1, (256,), (512,)),
        (8, (1, 16, 128, 512, 1024, 2048), (1, 8, 32)),
        (8, (256, 4096), (1,)),
        (32, (1, 16, 128, 256, 512), (1, 8)),
        (32, (64, 256), (32,)),
    ),
    # tensor parallel, t = 2 or 4: 30-35 queries per architecture
    "tp": (
        (1, (1, 16, 128, 512, 1024, 2048, 4096), (1, 8, 32)),
        (1, (512,), (128,)),
        (8, (1, 128, 512, 2048), (1, 16)),
        (32, (1, 128, 512), (1, 16)),
    ),
    # one GPU, t = 1, many architectures in one lent session: 33-36 queries per architecture
    "t1": (
        (1, (1, 16, 128, 512, 1024, 2048, 4096), (1, 8, 32)),
        (1, (1024,), (128,)),
        (8, (1, 128, 512, 2048), (1, 16)),
        (32, (1, 128, 512), (1, 8)),
    ),
    # transformers' eager generate: slow, so few queries and short outputs
    "hf": ((1, (16, 512, 2048), (1, 8)), (8, (128,), (8,))),
    # a GPU smoke test: three queries
    "smoke": ((1, (128,), (1, 16)), (8, (512,), (8,))),
}

FIT_PERCENT = 30  # share of queries marked "fit" by `split_of`


@dataclass(frozen=True, order=True)
class Query:
    """One configuration query: b sequences of p prompt tokens, o output tokens each, on t GPUs."""

    b: int
    p: int
    o: int
    t: int = 1


def grid_queries(arch: ArchSpec, grid: str, t: int = 1) -> list[Query]:
    """The queries of grid `grid` for `arch` at tensor-parallel degree t, sorted by (b, p, o)."""
    if grid not in GRIDS:
        raise UserError(f"grid '{grid}' is unknown; use one of {', '.join(GRIDS)}")
    out = set()
    for b, ps, os_ in GRIDS[grid]:
        for o in os_:
            for p in ps:
                out.add(Query(b, max(1, min(p, arch.max_positions - o + 1)), o, t))
    return sorted(out)


def parse_queries(text: str, t: int = 1) -> list[Query]:
    """'p,o,b;p,o,b;...' -> queries at tensor-parallel degree t; a bad entry is a UserError."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        try:
            p, o, b = (int(x) for x in item.split(","))
        except ValueError:
            raise UserError(f"--queries entry '{item}': write each query as p,o,b (integers), "
                            "queries separated by ';'") from None
        if min(p, o, b) < 1:
            raise UserError(f"--queries entry '{item}': p, o and b must be >= 1")
        out.append(Query(b, p, o, t))
    if not out:
        raise UserError("--queries is empty: give at least one p,o,b")
    return out


def check_fits_positions(arch: ArchSpec, q: Query) -> None:
    """A UserError when the query's context (p + o - 1) exceeds the architecture's max_positions."""
    if q.p + q.o - 1 > arch.max_positions:
        raise UserError(f"{arch.name}: p + o - 1 = {q.p + q.o - 1} exceeds max_positions="
                        f"{arch.max_positions}; shorten p or o")


def split_of(arch: str, q: Query) -> str:
    """'fit' or 'heldout': fit when sha256('arch|p|o|b|t') mod 100 < FIT_PERCENT (fixed, ~30% fit)."""
    key = f"{arch}|{q.p}|{q.o}|{q.b}|{q.t}".encode()
    return "fit" if int(hashlib.sha256(key).hexdigest(), 16) % 100 < FIT_PERCENT else "heldout"


def estimate_s(arch: ArchSpec, q: Query, repeats: int = 2, bw_bytes_s: float = 2.2e12,
               flops_s: float = 4.5e14) -> float:
    """Device seconds one query takes: a warm-up (prefill + a step) and `repeats` full runs.

    Roofline of our own counts: prefill is max(FLOPs / rate, weight bytes / bandwidth); a decode step
    reads every weight (MoE: all experts, an upper bound) and the KV cache of its context. The default
    rates are what the engine reached on an H100 in its smoke run (decode ~2.0 TB/s, prefill ~410 TFLOP/s).
    """
    w = arch.weight_bytes() / q.t
    tokens = q.b * q.p
    flops = (2 * arch.param_count(active=True) * tokens
             + 2 * q.b * q.p ** 2 * arch.q_dim * arch.n_layers) / q.t
    prefill = max(flops / flops_s, w / bw_bytes_s) + 2e-5 * arch.n_layers
    ctx = q.p + q.o / 2
    step = (w + q.b * ctx * arch.kv_bytes_per_token() / q.t) / bw_bytes_s + 3e-6 * arch.n_layers
    return (prefill + step) + repeats * (prefill + (q.o - 1) * step)
