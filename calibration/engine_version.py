"""The engine version a measurement row carries: a short SHA-256 over the sources of the engine and its kernels.

Two rows of the same version were measured by the same engine and kernel code, so a fit or a validation can
keep to rows of the code it describes. Only file contents count (paths relative to the repository, sorted),
not dates or the machine; nothing is imported, so it is the same on a CPU machine and on the GPU.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

from simulator.paths import REPO

SOURCES = ("calibration/engine/*.py", "kernels/*.py")  # what the version covers
DIGITS = 12  # hex digits kept


@lru_cache(maxsize=1)
def engine_version() -> str:
    """Short SHA-256 (DIGITS hex digits) over the engine's and kernels' sources, each file named and hashed."""
    h = hashlib.sha256()
    for path in sorted(p for pattern in SOURCES for p in REPO.glob(pattern)):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:DIGITS]
