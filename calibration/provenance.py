"""Where a measurement came from: GPU, driver, library versions, date, host and command.

Every file of measured numbers carries this record; it is read on the machine that measured.
"""
from __future__ import annotations

import datetime as _dt
import platform
import shlex
import subprocess
import sys


def _driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(command: str | None = None, device: int = 0) -> dict:
    """Provenance record of the current process on CUDA device `device` (torch imported lazily)."""
    import torch

    rec = {
        "gpu_name": torch.cuda.get_device_name(device) if torch.cuda.is_available() else "cpu",
        "driver": _driver_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host": platform.node(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join(shlex.quote(a) for a in sys.argv),
    }
    try:
        import triton
        rec["triton"] = triton.__version__
    except ImportError:
        rec["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        rec["sm_count"] = props.multi_processor_count
        rec["mem_bytes"] = props.total_memory
        rec["device_count"] = torch.cuda.device_count()
    return rec


def cpu_provenance(command: str, computed: str) -> dict:
    """Provenance record of a CPU benchmark: what it computed, this CPU, its load, commit, Python, date, command."""
    import os
    from pathlib import Path

    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    return {"computed": computed, "cpu": f"{model}, {os.cpu_count()} logical CPUs",
            "load_average_1_5_15min": list(os.getloadavg()), "commit": commit, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "command": command}
