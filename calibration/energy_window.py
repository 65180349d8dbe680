"""A query's energy metered over a window of its runs back to back, edge to edge of the energy counter.

NVML's total energy counter advances in steps (every 100 ms on the H200: calibration/energy_meter.py), so the
counter read around one run of 10-300 ms is off by up to a step. Here the query runs back to back for at least
`seconds` while a thread polls the counter and stamps each change with the host clock; the window's mean power
is the energy between the first and the last change inside the busy window over the time between them (whole
steps only, no partial step at either end), and the query's energy is that power times its median run time.

    fields = window_energy(engine, p, o, b, read, seconds=1.0)  # {"energy_j", "mean_power_w", "energy_window"}
"""
from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Self

from calibration.query_timing import EnergyReader, RunTimes

POLL_S = 0.5e-3  # host sleep between counter reads: the thread yields the interpreter to the launching thread
MIN_RUNS = 3
MIN_STEPS = 5  # counter changes the window must hold for its power to count


class CounterPoller:
    """Stamps every change of the energy counter with the host clock, in a background thread (a context manager)."""

    def __init__(self, read: EnergyReader, poll_s: float = POLL_S):
        self.read, self.poll_s = read, poll_s
        self.changes: list[tuple[float, float]] = []  # (perf_counter seconds, joules)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        last = self.read()
        while not self._stop.is_set():
            now = self.read()
            if now != last:
                self.changes.append((time.perf_counter(), now))
                last = now
            time.sleep(self.poll_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def window_power(changes: list[tuple[float, float]], start_s: float, end_s: float) -> tuple[float, int] | None:
    """(mean watts, counter steps) between the first and last counter change inside [start_s, end_s], or None
    when fewer than MIN_STEPS whole steps fall inside (the window is too short for the counter)."""
    inside = [(t, j) for t, j in changes if start_s <= t <= end_s]
    if len(inside) < MIN_STEPS + 1:
        return None
    (t0, j0), (t1, j1) = inside[0], inside[-1]
    return (j1 - j0) / (t1 - t0), len(inside) - 1


def run_window(run: Callable[[], RunTimes], read: EnergyReader, seconds: float) -> dict | None:
    """Run `run` back to back for at least `seconds` (and MIN_RUNS runs) under a CounterPoller; the window's
    fields, or None when the counter did not step MIN_STEPS times inside it."""
    runs: list[RunTimes] = []
    with CounterPoller(read) as poller:
        start = time.perf_counter()
        while len(runs) < MIN_RUNS or time.perf_counter() - start < seconds:
            runs.append(run())
        end = time.perf_counter()
    power = window_power(poller.changes, start, end)
    if power is None:
        return None
    watts, steps = power
    run_s = statistics.median(r.total_s for r in runs)
    return {"energy_j": watts * run_s, "mean_power_w": watts,
            "energy_window": {"seconds": end - start, "runs": len(runs), "counter_steps": steps,
                              "run_total_s_median": run_s, "poll_s": POLL_S}}


def window_energy(engine, p: int, o: int, b: int, read: EnergyReader, seconds: float) -> dict | None:
    """The energy fields of query (p, o, b) on a reference engine whose graphs `time_query` has captured: one
    warm-up run, then a window of runs back to back (run_window)."""
    import torch

    prompt = torch.randint(0, engine.arch.vocab, (b, p), device=engine.device)
    engine.run_once(prompt, o)
    return run_window(lambda: engine.run_once(prompt, o), read, seconds)
