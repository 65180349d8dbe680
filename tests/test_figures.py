"""The shipped figures (validation, predictions on three GPUs, the study) are those in tests/data/figures.json:
a change of structure changes no figure. After an intended model change: `python -m tests.figures --write`."""
import json
import math

from tests.figures import GOLDEN, snapshot


def _diff(a, b, where="") -> list[str]:
    """Places where two JSON values differ (floats beyond a relative 1e-9, for summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in (_diff(a.get(k), b.get(k), f"{where}.{k}") if k in a and k in b
                                          else [f"{where}.{k}: only in one"])]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    if isinstance(a, str) and isinstance(b, str):
        try:
            a, b = float(a), float(b)
        except ValueError:
            return [] if a == b else [f"{where}: {a!r} vs {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def test_diff_finds_a_changed_figure():
    assert _diff({"x": [1.0, "2.5"]}, {"x": [1.0, "2.5000001"]}) == [".x[1]: 2.5 vs 2.5000001"]


def test_shipped_figures_unchanged():
    golden = json.loads(GOLDEN.read_text())
    differences = _diff(golden, snapshot())
    assert not differences, f"{len(differences)} figures changed, e.g. {differences[:5]}"
