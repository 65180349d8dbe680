"""Catalog lookup by name: case-insensitive, with aliases, and the nearest names when it fails."""
from __future__ import annotations

import difflib
from typing import TypeVar

from simulator.errors import UserError

T = TypeVar("T")


def lookup(name: str, table: dict[str, T], aliases: dict[str, str], what: str, fallback_hint: str) -> T:
    """table[name] after lower-casing and aliasing; else a UserError naming the nearest entries."""
    key = name.strip().lower()
    key = aliases.get(key, key)
    if key in table:
        return table[key]
    family = [k for k in table if key and k.startswith(key + "-")]  # "h100": h100-sxm, h100-pcie
    if family:
        raise UserError(f"{what} '{name}' is ambiguous: it could be {' or '.join(family)}; give the full name")
    near = difflib.get_close_matches(key, list(table) + list(aliases), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(near)}?" if near else fallback_hint
    raise UserError(f"unknown {what} '{name}': {hint}")
