"""Runs a grid of points through the timer into a table: progress bar with ETA, resume, fail-soft, time guard.

`run_sweep` takes the measuring function as an argument: `measure_on_gpu` on the GPU, a fake in the tests
(the fake never writes a shipped table). Points already in the table are skipped, points that stand out from
their neighbours are measured a second time (calibration.recheck), a point that raises is recorded under
`errors` and the sweep goes on, and `max_seconds` stops it cleanly (the table stays valid, status "partial";
the same command continues it).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from calibration.grids import GridPoint, estimate_s, point, work
from calibration.power import merge_power
from calibration.recheck import keep_faster, suspects
from calibration.table_io import TableWriter, point_key


# Points run in a fixed pseudo-random order, so heavy and light ops interleave and the GPU's power and clocks stay
# as in ordinary use: run in grid order, the block of the largest GEMMs sagged (H100, seed-7 check: m = 8582,
# n = 4096, k = 1024 measured alone took 103 us, where the table's m = 8192 node took 122 us).
ORDER_SEED = 0


@dataclass
class SweepResult:
    """What one run of the sweep did."""

    measured: int
    skipped: int
    errors: int
    stopped_early: bool
    gpu_s: float  # time spent measuring, first (compiling) calls left out
    wall_s: float
    compile_s: float


def measure_on_gpu(p: GridPoint) -> dict:
    """Build the op on the GPU with fresh random inputs and time it (calibration.timing)."""
    import torch

    from calibration.opbench import build
    from calibration.timing import measure

    try:
        bench = build(p.op, p.stack, p.shape_dict)
        timing = measure(bench.call, rotate=bench.rotate, use_graph=bench.graph)
        return {"kernel": bench.kernel, **timing.row()}
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise


def ceilings(points: list[dict]) -> dict:
    """Best achieved copy bandwidth and matmul rate over the measured points (bytes/s, FLOP/s); points whose inputs
    were left in L2 (`l2`: "hot") do not say what HBM moves."""
    out = {}
    for key, op, i in (("copy_bw_bytes_s", "elementwise", 1), ("matmul_flops", "gemm", 0)):
        rates = [work(op, p["shape"])[i] / (p["median_us"] * 1e-6) for p in points
                 if p["op"] == op and p["shape"].get("l2") != "hot"]
        if rates:
            out[key] = float(max(rates))
    return out


class _Progress:
    """rich progress bar weighted by each point's estimated cost (so the ETA means seconds), plus a plain
    line every `every_s` seconds when the output is not a terminal (logs of the GPU machine)."""

    def __init__(self, total_s: float, label: str = "sweep", every_s: float = 15.0):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[n]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self.task = self.bar.add_task(label, total=max(total_s, 1e-9), n="")
        self.label, self.every_s, self.t0, self.last, self.done_s, self.total_s = \
            label, every_s, time.monotonic(), 0.0, 0.0, total_s

    def __enter__(self) -> "_Progress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def advance(self, p: GridPoint, cost_s: float, i: int, n: int) -> None:
        self.done_s += cost_s
        self.bar.update(self.task, advance=cost_s, description=f"{self.label} {p.op}/{p.stack}", n=f"{i}/{n}")
        now = time.monotonic() - self.t0
        if not self.console.is_terminal and now - self.last >= self.every_s:
            eta = now * (self.total_s - self.done_s) / max(self.done_s, 1e-9)
            print(f"  {self.label}: {i}/{n} points ({p.op}/{p.stack}), {now:.0f} s, about {eta:.0f} s left",
                  file=sys.stderr)
            self.last = now


def run_sweep(points: list[GridPoint], writer: TableWriter, *, measure_point: Callable[[GridPoint], dict],
              max_seconds: float | None = None, power=None, show_progress: bool = True) -> SweepResult:
    """Measure every point of `points` not yet in `writer`'s table, then once more each point that stands out
    from its neighbours (calibration.recheck); return counts and times."""
    todo = [p for p in points if point_key(p.op, p.stack, p.shape_dict) not in writer.done]
    todo = [todo[i] for i in np.random.default_rng(ORDER_SEED).permutation(len(todo))]
    res = SweepResult(0, len(points) - len(todo), 0, False, 0.0, 0.0, 0.0)
    t0 = time.perf_counter()
    deadline = None if max_seconds is None else t0 + max_seconds
    try:
        _measure(todo, writer, measure_point, res, deadline, power, show_progress, writer.add)
        if not res.stopped_early:
            wanted = {point_key(p.op, p.stack, p.shape_dict) for p in points}
            again = [point(r["op"], r["stack"], **r["shape"]) for r in suspects(writer.table["points"])
                     if point_key(r["op"], r["stack"], r["shape"]) in wanted]
            _measure(again, writer, measure_point, res, deadline, power, show_progress,
                     lambda row: writer.replace(keep_faster(writer.get(row), row)), label="recheck")
    finally:
        res.wall_s = time.perf_counter() - t0
        _account(writer, res, power)
    return res


def _measure(todo: list[GridPoint], writer: TableWriter, measure_point: Callable[[GridPoint], dict],
             res: SweepResult, deadline: float | None, power, show_progress: bool, store: Callable[[dict], None],
             label: str = "sweep") -> None:
    """Measure `todo` in order into `store`, counting into `res`; a point that raises goes to the errors."""
    costs = [estimate_s(p) for p in todo]
    progress = _Progress(sum(costs), label) if show_progress and todo else None
    if progress:
        progress.__enter__()
    try:
        for i, (p, cost) in enumerate(zip(todo, costs), 1):
            if deadline is not None and time.perf_counter() > deadline:
                res.stopped_early = True
                break
            if power is not None:
                power.label = p.op
            start = time.perf_counter()
            try:
                row = measure_point(p)
            except Exception as e:  # noqa: BLE001 — fail-soft: record and go on
                writer.add_error(p.op, p.stack, p.shape_dict, f"{type(e).__name__}: {e}")
                res.errors += 1
            else:  # (GPU time stops before the table is written: its checkpoints are not measuring)
                res.gpu_s += time.perf_counter() - start - row.get("compile_s", 0.0)
                res.compile_s += row.get("compile_s", 0.0)
                res.measured += 1
                store({"op": p.op, "stack": p.stack, "shape": p.shape_dict, **row})
            finally:
                if power is not None:
                    power.label = None
            if progress:
                progress.advance(p, cost, i, len(todo))
    finally:
        if progress:
            progress.__exit__(None, None, None)


def _account(writer: TableWriter, res: SweepResult, power) -> None:
    """Add this run's times to the provenance (summed over resumed runs), ceilings and power; write."""
    prov = writer.provenance
    for key, val in (("gpu_seconds", res.gpu_s), ("wall_seconds", res.wall_s), ("compile_seconds", res.compile_s)):
        prov[key] = round(prov.get(key, 0.0) + val, 2)
    writer.table["ceilings"] = ceilings(writer.table["points"])
    if power is not None and power.summary() is not None:
        writer.table["power_w"] = merge_power(writer.table.get("power_w"), power.summary())
    writer.finish(complete=not res.stopped_early and not writer.table["errors"])
