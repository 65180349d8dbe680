"""GPU power and energy through NVML: board power sampled in a background thread while the sweep runs, and
the total energy counter a configuration query reads around its runs.

Each sample is tagged with the label the sweep sets (the op class being measured; None between points),
so the table can keep the power of GEMM-heavy prefill apart from memory-bound decode. NVML's reading
is the board's power averaged by the driver over its own short window; we keep the median and p90.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

CLOCK_PERIOD_S = 0.002  # sampling period of the diagnostics that follow the SM clock through a phase


def nvml_handle(device_index: int = 0, uuid: str | None = None):
    """(pynvml module, device handle) of the GPU with this CUDA `uuid` (else NVML index `device_index`);
    raises when NVML is missing (CPU machine, other vendor)."""
    import pynvml

    pynvml.nvmlInit()
    if uuid:
        return pynvml, pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(device_index)


def open_energy_counter(device_index: int = 0, uuid: str | None = None) -> Callable[[], float] | None:
    """A reader of the GPU's total energy counter in joules (NVML `nvmlDeviceGetTotalEnergyConsumption`,
    millijoules since the driver loaded), or None when this GPU or machine has no such counter."""
    try:
        nvml, handle = nvml_handle(device_index, uuid)
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises NotSupported on GPUs without the counter
    except Exception:  # noqa: BLE001 — no NVML or no counter: no energy fields, never a made-up number
        return None
    return lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0


class PowerSampler:
    """Samples `nvmlDeviceGetPowerUsage` every `period_s` seconds; use as a context manager. With `clocks`, each
    sample is also kept in `stamped` as (perf_counter seconds, SM clock MHz, watts)."""

    def __init__(self, device_index: int = 0, period_s: float = 0.05, clocks: bool = False):
        self.device_index, self.period_s, self.clocks = device_index, period_s, clocks
        self.label: str | None = None
        self.samples: list[tuple[str | None, float]] = []  # (label, watts)
        self.stamped: list[tuple[float, int, float]] = []  # (seconds, SM MHz, watts), with `clocks`
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PowerSampler":
        try:
            self._nvml, self._handle = nvml_handle(self.device_index)
        except Exception as e:  # noqa: BLE001 — no NVML (CPU machine, other vendor): no power, said so
            self.error = f"NVML unavailable: {e}"
            return self
        self._thread = threading.Thread(target=self._run, name="nvml-power", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                mw = self._nvml.nvmlDeviceGetPowerUsage(self._handle)
                self.samples.append((self.label, mw / 1000.0))
                if self.clocks:
                    mhz = self._nvml.nvmlDeviceGetClockInfo(self._handle, self._nvml.NVML_CLOCK_SM)
                    self.stamped.append((time.perf_counter(), mhz, mw / 1000.0))
            except Exception as e:  # noqa: BLE001
                self.error = f"NVML read failed: {e}"
                return
            time.sleep(self.period_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._nvml.nvmlShutdown()

    def window(self, t0: float, t1: float) -> dict:
        """Median SM clock (MHz) and mean board power (W) of the stamped samples between perf_counter times t0
        and t1 (None without samples there)."""
        import statistics

        got = [(mhz, w) for s, mhz, w in self.stamped if t0 <= s <= t1]
        if not got:
            return {"sm_mhz": None, "power_w": None, "samples": 0}
        return {"sm_mhz": statistics.median(m for m, _ in got),
                "power_w": round(statistics.fmean(w for _, w in got), 1), "samples": len(got)}

    def summary(self) -> dict | None:
        """{"median", "p90", "samples", "by_op": {op: {...}}} over labelled samples, or None without any."""
        import numpy as np

        def stats(ws: list[float]) -> dict:
            p50, p90 = np.percentile(ws, [50, 90])
            return {"median": round(float(p50), 1), "p90": round(float(p90), 1), "samples": len(ws)}

        busy = [(lab, w) for lab, w in self.samples if lab is not None]
        if not busy:
            return None
        out = stats([w for _, w in busy])
        out["by_op"] = {lab: stats([w for l2, w in busy if l2 == lab]) for lab in sorted({lab for lab, _ in busy})}
        out["source"] = "nvml nvmlDeviceGetPowerUsage, sampled while points were measured"
        return out


def merge_power(old: dict | None, new: dict | None) -> dict | None:
    """A table's sampled board power after a resumed run: per op class the latest run's figures, overall those
    of whichever run sampled more (a short resume of one class does not replace a whole sweep's figure)."""
    if not old or not new:
        return new or old
    top = new if new.get("samples", 0) >= old.get("samples", 0) else old
    return {**top, "by_op": {**(old.get("by_op") or {}), **(new.get("by_op") or {})}}

