"""The engine version a measurement row carries: a short SHA-256 over the sources of the engine and the kernels
it imports.

Two rows of the same version were measured by the same engine and kernel code, so a fit or a validation can
keep to rows of the code it describes. Only file contents count (paths relative to the repository, sorted),
not dates or the machine; nothing is imported (kernel imports are read from the sources' syntax trees), so it is
the same on a CPU machine and on the GPU, and a kernel the engine does not run yet leaves the version alone.

An engine variant (`calibration/engine_variants/<name>.py`: the engine with other kernels or another driver,
such as continuous batching) has its own version: the engine's sources, the variant's module and the variant
modules and kernels it imports. A new or changed variant leaves the version of the engine's own rows alone.
"""
from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from simulator.paths import REPO

ENGINE = "calibration/engine/*.py"  # every engine source counts
KERNELS = "kernels"  # of these, the package's __init__ and the modules the engine imports, transitively
VARIANTS = "calibration/engine_variants"  # a variant's module and the variant modules it imports, transitively
DIGITS = 12  # hex digits kept


def _module_file(parts: list[str]) -> Path | None:
    """The source of a kernels.x or calibration.engine_variants.x module, None for any other module."""
    if len(parts) >= 2 and parts[0] == KERNELS:
        path = REPO / KERNELS / f"{parts[1]}.py"
    elif len(parts) >= 3 and parts[:2] == VARIANTS.split("/"):
        path = REPO / VARIANTS / f"{parts[2]}.py"
    else:
        return None
    return path if path.is_file() else None


def _imports(path: Path) -> set[Path]:
    """Kernel and variant modules a source file imports (`from kernels import x`, `from kernels.x import y`,
    `import kernels.x`, and the same for calibration.engine_variants)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            found |= {_module_file(parts + [alias.name]) for alias in node.names} | {_module_file(parts)}
        elif isinstance(node, ast.Import):
            found |= {_module_file(alias.name.split(".")) for alias in node.names}
    return found - {None}


def sources(variant: str | None = None) -> list[Path]:
    """The files the version covers: the engine's sources (and the variant's module) and the kernel and variant
    modules they reach, sorted."""
    todo = sorted(REPO.glob(ENGINE))
    if variant is not None:
        module = REPO / VARIANTS / f"{variant}.py"
        if not module.is_file():
            raise ValueError(f"engine variant '{variant}': no {module.relative_to(REPO)}")
        todo.append(module)
    seen = set(todo) | {REPO / KERNELS / "__init__.py"}
    while todo:
        for dep in _imports(todo.pop()) - seen:
            seen.add(dep)
            todo.append(dep)
    return sorted(seen)


@cache
def engine_version(variant: str | None = None) -> str:
    """Short SHA-256 (DIGITS hex digits) over `sources(variant)`, each file named and hashed."""
    h = hashlib.sha256()
    for path in sources(variant):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:DIGITS]
