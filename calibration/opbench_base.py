"""What every op builder shares (calibration/opbench.py, calibration/opbench_torch.py): the `Bench` a builder
returns, and input sets of fresh random tensors, enough copies that no call reads what the last one left in L2."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from calibration.grids import work
from calibration.timing import rotation_count


@dataclass
class Bench:
    """A ready-to-time op: `call(i)` runs it on input set i % rotate."""

    call: Callable[[int], object]
    rotate: int
    kernel: str
    graph: bool = True  # time under CUDA-graph replay (False: eager launches)


def _l2(device: str) -> int:
    from calibration.timing import l2_bytes

    return l2_bytes() if device.startswith("cuda") else 50 * 2**20


def _copies(op: str, shape: dict, device: str, max_copies: int = 64) -> int:
    """Input sets to rotate over: one on the CPU or where the shape asks for its inputs in L2 (`l2`: "hot")."""
    if device == "cpu" or shape.get("l2") == "hot":
        return 1
    return rotation_count(work(op, shape)[1], _l2(device), max_copies)


ALIGN = 128  # elements between input tensors carved from one buffer: 256-byte aligned, as the allocator gives


def _random_sets(copies: int, shapes: list[tuple[int, ...]], device: str) -> list[tuple]:
    """`copies` sets of fresh N(0, 1) bf16 tensors of the given shapes, carved from one buffer filled by a
    single launch (drawing thousands of small tensors one by one cost ~4 ms a grid point)."""
    import torch

    sizes = [math.prod(s) for s in shapes]
    spans = [-(-n // ALIGN) * ALIGN for n in sizes]
    buf = torch.randn(copies * sum(spans), device=device, dtype=torch.bfloat16)
    sets, off = [], 0
    for _ in range(copies):
        views = []
        for shape, n, span in zip(shapes, sizes, spans):
            views.append(buf[off:off + n].view(shape))
            off += span
        sets.append(tuple(views))
    return sets


def _cycle(fn: Callable, sets: list) -> Callable[[int], object]:
    n = len(sets)
    return lambda i: fn(*sets[i % n])
