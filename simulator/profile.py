"""The paper's form T(p, o) ≈ F(p) + g·(o − 1), derived from the simulator itself.

F is continuous piecewise linear in p: flat while prefill is latency-bound, then linear, steeper once
attention's p² term shows. It is fitted to the simulator's prefill over a p grid by weighted least squares
(numpy, weights 1/F so the error is relative) on hinge functions max(0, p − knot), adding knots greedily;
g is one decode step at a reference context.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.predict import predict
from simulator.timemodel import TimeModel

DEFAULT_P_MAX = 8192
DEFAULT_C_REF = 1024


@dataclass(frozen=True)
class Profile:
    """F's knots (segment ends, first and last grid points included) and values, and g."""

    knots_p: tuple[int, ...]
    f_knots_s: tuple[float, ...]  # F at each knot
    g_s: float  # one decode step at context c_ref
    c_ref: int
    max_rel_err: float  # of F against the simulator's prefill over the grid

    @property
    def slopes_s_per_token(self) -> tuple[float, ...]:
        """Slope of F on each segment between consecutive knots."""
        return tuple(np.diff(self.f_knots_s) / np.diff(self.knots_p))

    def f_s(self, p) -> np.ndarray:
        """F(p), continued with the last slope beyond the last knot."""
        p = np.asarray(p, dtype=float)
        beyond = np.maximum(p - self.knots_p[-1], 0.0) * self.slopes_s_per_token[-1]
        return np.interp(p, self.knots_p, self.f_knots_s) + beyond

    def total_s(self, p, o) -> np.ndarray:
        """F(p) + g·(o − 1)."""
        return self.f_s(p) + self.g_s * (np.asarray(o) - 1)


def _hinge_basis(p: np.ndarray, knots: list[float]) -> np.ndarray:
    """Columns 1, p, max(0, p − knot) for each knot: any continuous piecewise-linear F."""
    return np.column_stack([np.ones_like(p), p] + [np.maximum(p - k, 0.0) for k in knots])  # (P, 2 + K)


def _fit(p: np.ndarray, y: np.ndarray, knots: list[float]) -> np.ndarray:
    """min_w Σ ((basis·w − y) / y)²: least squares on the relative error; returns the fitted values."""
    basis = _hinge_basis(p, knots)
    w, *_ = np.linalg.lstsq(basis / y[:, None], np.ones_like(y), rcond=None)
    return basis @ w


def fit_piecewise_linear(p: np.ndarray, y: np.ndarray, max_knots: int = 3,
                         rel_tol: float = 0.01) -> tuple[list[float], np.ndarray]:
    """Interior knots (chosen greedily among the grid points) and fitted values; stops at max_knots or
    once the largest relative error is under rel_tol."""
    knots: list[float] = []
    fitted = _fit(p, y, knots)
    candidates = list(p[1:-1])
    while len(knots) < max_knots and np.max(np.abs(fitted / y - 1)) > rel_tol and candidates:
        errs = [np.sum((_fit(p, y, knots + [k]) / y - 1) ** 2) for k in candidates]
        best = candidates.pop(int(np.argmin(errs)))
        knots = sorted(knots + [best])
        fitted = _fit(p, y, knots)
    return knots, fitted


def p_grid(p_max: int) -> np.ndarray:
    """Prompt lengths 1..p_max, dense at small p where F bends: geometric plus linear points."""
    geometric = np.geomspace(1, p_max, 40)
    linear = np.linspace(1, p_max, 24)
    return np.unique(np.round(np.concatenate([geometric, linear])).astype(np.int64))


def fit_profile(arch: ArchSpec, gpu: GPUSpec, t: int, b: int = 1, *, model: TimeModel | None = None,
                coefficients: dict | None = None, p_max: int | None = None, c_ref: int | None = None,
                max_knots: int = 3) -> Profile:
    """F(p) + g·(o − 1) of the simulator for this arch, GPU, t and batch: F over p in 1..p_max
    (default min(8192, max_positions − 1)), g at context c_ref (default 1024)."""
    top = arch.max_positions - 1
    if top < 2:
        raise UserError(f"{arch.name}: max_positions={arch.max_positions} leaves no prompt range to profile")
    p_max = min(p_max or DEFAULT_P_MAX, top)
    c_ref = int(np.clip(c_ref or DEFAULT_C_REF, 2, top))
    p = p_grid(p_max)
    prefill = predict(arch, gpu, p, 1, b, t, model=model, coefficients=coefficients).prefill_s
    knots, fitted = fit_piecewise_linear(p.astype(float), prefill, max_knots)
    ends = [float(p[0])] + knots + [float(p[-1])]
    f_at = fitted[np.searchsorted(p, ends)]  # knots are grid points
    g = predict(arch, gpu, c_ref - 1, 2, b, t, model=model, coefficients=coefficients).decode_s
    return Profile(knots_p=tuple(int(k) for k in ends), f_knots_s=tuple(float(v) for v in f_at),
                   g_s=float(g), c_ref=c_ref, max_rel_err=float(np.max(np.abs(fitted / prefill - 1))))
