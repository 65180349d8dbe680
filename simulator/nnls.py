"""Least squares with non-negative coefficients, for the few columns of the simulator's small fits (numpy only:
scipy.optimize would add ~0.35 s to `idealrt predict`'s start-up)."""
from __future__ import annotations

import numpy as np


def nonneg_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin |x c − y|² over c ≥ 0, for a few columns. The optimum is the unconstrained solve on its own support,
    so: the solve on every column when it is non-negative, else the best non-negative solve over every subset of
    the columns (2^n − 1 of them, solved at once from the normal equations of the columns scaled to unit norm)."""
    full = np.linalg.lstsq(x, y, rcond=None)[0]
    if np.all(full >= 0):
        return full
    n = x.shape[1]
    norm = np.linalg.norm(x, axis=0)
    norm[norm == 0] = 1.0
    xs = x / norm
    gram, xty = xs.T @ xs, xs.T @ y  # (n, n), (n,)
    on = (np.arange(1, 2**n)[:, None] >> np.arange(n) & 1).astype(bool)  # (2^n − 1, n): each subset's columns
    a = np.where(on[:, :, None] & on[:, None, :], gram, np.eye(n))  # a column left out solves to 0
    c = np.where(on, np.einsum("sij,sj->si", np.linalg.pinv(a), np.where(on, xty, 0.0)), 0.0)  # (2^n − 1, n)
    err = np.einsum("si,ij,sj->s", c, gram, c) - 2 * c @ xty  # |xs c − y|² − |y|²
    err[np.any(c < 0, axis=1)] = np.inf
    best = int(np.argmin(err))
    return c[best] / norm if err[best] < 0 else np.zeros(n)
