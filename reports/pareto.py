"""Pareto frontiers: which points no other point beats on both of two metrics."""
from __future__ import annotations

from typing import Sequence


def pareto_front(cost: Sequence[float], value: Sequence[float], maximize_value: bool = False) -> list[int]:
    """Indices of the non-dominated points, by increasing cost.

    A point is dominated when another has cost <= and value <= (or >= with `maximize_value`), one of
    them strictly; e.g. cost = runtime, value = accuracy with maximize_value=True.
    """
    sign = -1.0 if maximize_value else 1.0
    order = sorted(range(len(cost)), key=lambda i: (cost[i], sign * value[i]))
    front, best = [], float("inf")
    for i in order:
        v = sign * value[i]
        if v < best:
            front.append(i)
            best = v
    return front
