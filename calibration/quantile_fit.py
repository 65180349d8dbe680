"""Quantile regression with non-negative coefficients, solved exactly as a linear program by HiGHS
(scipy.optimize.linprog), with the preprocessing of Portnoy and Koenker (1997, Statistical Science 12(4)) for
many rows:

    min_θ Σ_i ρ_τ(y_i − z_i·θ)  s.t. θ ≥ 0,  ρ_τ(r) = max(τ·r, (τ − 1)·r)

It is solved through its dual, one variable a row and one constraint a coefficient:

    max_d y·d  s.t. Zᵀd ≤ 0,  τ − 1 ≤ d ≤ τ;  θ = the multipliers of Zᵀd ≤ 0

Preprocessing: from a nearby fit (a subsample's, or the caller's guess), keep the rows whose residual lies near
the τ-quantile of the residuals and merge the rows below them into one row (their sums), and those above into
another. Once every merged row keeps its residual's sign at the reduced problem's solution, that solution is the
full problem's optimum (each merged row's d sits at the bound its sign gives, as the merged row's does); rows
that do not keep it join the kept ones and the reduced problem is solved again.
"""
from __future__ import annotations

import numpy as np

from simulator.errors import UserError

DIRECT_ROWS = 5000  # up to this many rows: one LP over all of them
FIXUPS, MOST_WRONG = 8, 0.1  # re-solves with the wrong rows kept, while they are under this share of the kept rows
# HiGHS's dual simplex, and its interior point method for the merged problems, whose kept rows all sit near the
# fit (a degenerate start for the simplex)
DIRECT_METHOD, MERGED_METHOD = "highs-ds", "highs-ipm"


def pinball(r: np.ndarray, tau: float) -> float:
    """Σ ρ_τ(r) of residuals r."""
    return float(np.sum(np.maximum(tau * r, (tau - 1) * r)))


def _solve_dual(z: np.ndarray, y: np.ndarray, tau: float, weight: np.ndarray | None = None) -> np.ndarray:
    """θ of the dual LP over rows z (m, k), y (m,), each standing for `weight` rows (default 1):
    max y·d s.t. zᵀd ≤ 0, (τ − 1)·weight ≤ d ≤ τ·weight."""
    from scipy.optimize import linprog

    bounds = (tau - 1, tau) if weight is None else np.column_stack([(tau - 1) * weight, tau * weight])
    res = linprog(-y, A_ub=z.T, b_ub=np.zeros(z.shape[1]), bounds=bounds,
                  method=DIRECT_METHOD if weight is None else MERGED_METHOD)
    if res.status != 0:
        raise UserError(f"the quantile fit did not solve (HiGHS: {res.message}); check the data")
    return np.maximum(-res.ineqlin.marginals, 0.0)


def _band(r: np.ndarray, tau: float, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows fixed below and above: residuals outside the `rows` nearest the τ-quantile of r."""
    n = r.size
    lo, hi = np.quantile(r, [max(tau - rows / (2 * n), 0.0), min(tau + rows / (2 * n), 1.0)])
    return r < lo, r > hi


def _merged(z: np.ndarray, y: np.ndarray, below: np.ndarray, above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept rows, then the mean row of those below and of those above (when there are any)."""
    keep = ~(below | above)
    zs, ys = [z[keep]], [y[keep]]
    for side in (below, above):
        if side.any():
            zs.append(z[side].mean(0)[None])
            ys.append(y[side].mean(keepdims=True))
    return np.concatenate(zs), np.concatenate(ys)


def _weights(below: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Rows each row of `_merged` stands for."""
    merged = [float(side.sum()) for side in (below, above) if side.any()]
    return np.concatenate([np.ones(int((~(below | above)).sum())), merged])


def quantile_fit(z: np.ndarray, y: np.ndarray, tau: float, guess: np.ndarray | None = None,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """θ ≥ 0 minimising Σ ρ_τ(y − zθ) over rows z (n, k), y (n,), and that minimum. `guess`: fitted values
    (n,) of a nearby solution, which picks the rows to keep; without it, a random subsample's fit does."""
    n, k = z.shape
    if n <= DIRECT_ROWS:
        theta = _solve_dual(z, y, tau)
        return theta, pinball(y - z @ theta, tau)
    rows = int(np.ceil(np.sqrt(k) * n ** (2 / 3)))  # Portnoy and Koenker's size of the kept set
    if guess is None:
        sub = np.random.default_rng(seed).choice(n, min(rows, n), replace=False)
        guess = z @ _solve_dual(z[sub], y[sub], tau)
    r = y - guess
    while True:
        below, above = _band(r, tau, rows)
        for _ in range(FIXUPS):
            theta = _solve_dual(*_merged(z, y, below, above), tau, _weights(below, above))
            r = y - z @ theta
            wrong = (below & (r > 0)) | (above & (r < 0))
            n_wrong = int(wrong.sum())
            if n_wrong == 0:
                return theta, pinball(r, tau)
            if n_wrong > MOST_WRONG * rows:
                break
            below, above = below & ~wrong, above & ~wrong
        rows = min(2 * rows, n)  # a wider band (at n rows nothing is merged and the solve is exact)
