"""The engine version a measurement row carries: a short SHA-256 over the sources of the engine and the kernels
it imports.

Two rows of the same version were measured by the same engine and kernel code, so a fit or a validation can
keep to rows of the code it describes. Only file contents count (paths relative to the repository, sorted),
not dates or the machine; nothing is imported (kernel imports are read from the sources' syntax trees), so it is
the same on a CPU machine and on the GPU, and a kernel the engine does not run yet leaves the version alone.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from simulator.paths import REPO

ENGINE = "calibration/engine/*.py"  # every engine source counts
KERNELS = "kernels"  # of these, the package's __init__ and the modules the engine imports, transitively
DIGITS = 12  # hex digits kept


def _kernel_imports(path: Path) -> set[Path]:
    """Kernel modules a source file imports (`from kernels import x`, `from kernels.x import y`, `import kernels.x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == KERNELS:
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith(KERNELS + ".")]
        else:
            continue
        found |= {REPO / KERNELS / f"{n}.py" for n in names if (REPO / KERNELS / f"{n}.py").is_file()}
    return found


def sources() -> list[Path]:
    """The files the version covers: the engine's sources and the kernel modules they reach, sorted."""
    todo = sorted(REPO.glob(ENGINE))
    seen = set(todo) | {REPO / KERNELS / "__init__.py"}
    while todo:
        for dep in _kernel_imports(todo.pop()) - seen:
            seen.add(dep)
            todo.append(dep)
    return sorted(seen)


@lru_cache(maxsize=1)
def engine_version() -> str:
    """Short SHA-256 (DIGITS hex digits) over `sources()`, each file named and hashed."""
    h = hashlib.sha256()
    for path in sources():
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:DIGITS]
