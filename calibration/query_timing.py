"""A configuration query's timed runs made into its measurement fields: a trustworthy median, and energy.

Statistic: the median of at least MIN_REPEATS timed runs per query (prefill, decode and total each their own
median), min and max kept as `spread`. When the runs' totals spread by more than WIDE_SPREAD
((max - min) / median), the query is measured again, as many runs once more, and the median is taken over
all runs (a transient slowdown of a few runs then does not move it); the row notes `remeasured` and, when the
second set of runs is wide as well, `wide_spread: true`. Energy: the GPU's total energy counter is read around
each timed run (`energy_j`, the median per run; `mean_power_w`, all runs' energy over their time); a row
whose GPU has no counter, or whose counter did not advance within a run, gets neither field.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, TypeVar

MIN_REPEATS = 3
WIDE_SPREAD = 0.10  # (max - min) / median of the runs' totals above which a query is measured again

T = TypeVar("T")
EnergyReader = Callable[[], float]  # joules since some fixed moment (NVML's counter); NaN where unknown


@dataclass(frozen=True)
class RunTimes:
    """One timed run of a query; energy_j is the GPU energy over it (None: not measured)."""

    prefill_s: float
    decode_s: float
    energy_j: float | None = None

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


def metered(energy: EnergyReader | None, fn: Callable[[], T]) -> tuple[T, float | None]:
    """fn()'s result and the energy counter's advance over the call (None without a reader)."""
    if energy is None:
        return fn(), None
    start = energy()
    out = fn()
    return out, energy() - start


def spread_of(runs: list[RunTimes]) -> float:
    """(max - min) / median of the runs' total times (0 for a single run or a zero median)."""
    totals = [r.total_s for r in runs]
    mid = statistics.median(totals)
    return (max(totals) - min(totals)) / mid if mid > 0 else 0.0


def summarize(runs: list[RunTimes], o: int) -> dict:
    """Measurement fields of CONTRACTS.md from the timed runs: medians, min/max as the spread, and energy."""
    pre = statistics.median(r.prefill_s for r in runs)
    dec = statistics.median(r.decode_s for r in runs)
    totals = [r.total_s for r in runs]
    steps = o - 1
    out = {"prefill_s": pre, "decode_s": dec, "decode_steps": steps,
           "decode_step_s": dec / steps if steps else 0.0, "total_s": pre + dec, "repeats": len(runs),
           "spread": {"total_s_min": min(totals), "total_s_max": max(totals),
                      "prefill_s_min": min(r.prefill_s for r in runs),
                      "prefill_s_max": max(r.prefill_s for r in runs),
                      "decode_s_min": min(r.decode_s for r in runs), "decode_s_max": max(r.decode_s for r in runs)}}
    return {**out, **energy_fields(runs)}


def energy_fields(runs: list[RunTimes]) -> dict:
    """{"energy_j", "mean_power_w"} when every run has a positive, finite energy; else {}."""
    joules = [r.energy_j for r in runs]
    if not joules or any(j is None or not math.isfinite(j) or j <= 0 for j in joules):
        return {}
    busy_s = sum(r.total_s for r in runs)
    if busy_s <= 0:
        return {}
    return {"energy_j": statistics.median(joules), "mean_power_w": sum(joules) / busy_s}


def measure_query(run: Callable[[], RunTimes], repeats: int, o: int,
                  agree: Callable[[bool], bool] = lambda wide: wide) -> dict:
    """The row fields of one query from `repeats` (at least MIN_REPEATS) calls of `run`, measured once more
    when they spread wide. `agree` makes every rank of a tensor-parallel run take the same decision."""
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats={repeats}: a query takes at least {MIN_REPEATS} timed runs")
    runs = [run() for _ in range(repeats)]
    if not agree(spread_of(runs) > WIDE_SPREAD):
        return summarize(runs, o)
    first = spread_of(runs)
    again = [run() for _ in range(repeats)]
    wide = agree(spread_of(again) > WIDE_SPREAD)
    out = {**summarize(runs + again, o), "remeasured": True, "first_spread": round(first, 4)}
    return {**out, "wide_spread": True} if wide else out
