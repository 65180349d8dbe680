"""The paper's form T(p, o) ≈ F(p) + g·(o − 1): the form itself (`ProfileForm`, also what calibration/profile_fit.py
fits to measured queries with cvxpy), and its fit to the simulator.

F is continuous piecewise linear in p: flat while prefill is latency-bound, then linear, steeper once
attention's p² term shows. It is fitted to the simulator's prefill over a p grid by weighted least squares
(numpy, weights 1/F so the error is relative) under profile_fit's constraints: F(0) ≥ 0 and every slope of F
≥ 0, so F does not fall where the simulator's prefill, not monotone in p everywhere, does; knots are added
greedily; g is one decode step at a reference context.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.nnls import nonneg_lstsq
from simulator.predict import predict
from simulator.timemodel import TimeModel

DEFAULT_P_MAX = 8192
DEFAULT_C_REF = 1024


@dataclass(frozen=True)
class ProfileForm:
    """T(p, o) = intercept + Σ segment slopes·p (F, kinks at `knots`) + quad·p² + g·(o − 1); seconds."""

    name: str
    knots: tuple[float, ...]  # prompt lengths where F's slope changes
    intercept_s: float  # F(0): for a black-box API log, its fixed overhead
    slopes_s: tuple[float, ...]  # F's slope in seconds per prompt token, one per segment (len(knots) + 1)
    quad_s: float  # seconds per prompt token squared
    g_s: float  # seconds per decode step

    def prefill_s(self, p) -> np.ndarray:
        """F(p) + quad·p²."""
        p = np.asarray(p, dtype=float)
        f = self.intercept_s + self.slopes_s[0] * p
        for knot, before, after in zip(self.knots, self.slopes_s, self.slopes_s[1:]):
            f = f + (after - before) * np.maximum(p - knot, 0.0)
        return f + self.quad_s * p**2

    def __call__(self, p, o) -> np.ndarray:
        return self.prefill_s(p) + self.g_s * (np.asarray(o, dtype=float) - 1)

    def to_json(self) -> dict:
        return {**asdict(self), "knots": list(self.knots), "slopes_s": list(self.slopes_s)}


@dataclass(frozen=True)
class Profile(ProfileForm):
    """The form fitted to the simulator itself: F over prompt lengths p_first..p_last, g at context c_ref."""

    p_first: int
    p_last: int
    c_ref: int
    max_rel_err: float  # of F against the simulator's prefill over the grid

    @property
    def knots_p(self) -> tuple[int, ...]:
        """F's segment ends: the grid's first point, the knots, its last point."""
        return (self.p_first, *(int(k) for k in self.knots), self.p_last)

    @property
    def f_knots_s(self) -> tuple[float, ...]:
        """F at each segment end."""
        return tuple(float(v) for v in self.prefill_s(np.array(self.knots_p)))

    @property
    def slopes_s_per_token(self) -> tuple[float, ...]:
        """Slope of F on each segment."""
        return self.slopes_s

    def f_s(self, p) -> np.ndarray:
        """F(p), continued with the last slope beyond the last knot."""
        return self.prefill_s(p)

    def total_s(self, p, o) -> np.ndarray:
        """F(p) + g·(o − 1)."""
        return self(p, o)


def _ramp_basis(p: np.ndarray, knots: list[float]) -> np.ndarray:
    """Columns 1 and, per segment of F, p's length inside it: coefficients F(0) and each segment's slope."""
    edges = [0.0, *sorted(knots), np.inf]
    return np.column_stack([np.ones_like(p)] + [np.clip(p - a, 0.0, b - a) for a, b in pairwise(edges)])


def _fit(p: np.ndarray, y: np.ndarray, knots: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """min_w Σ ((basis·w − y) / y)² over w ≥ 0 (F(0) ≥ 0, non-decreasing): (F(0) and the slopes, fitted values)."""
    basis = _ramp_basis(p, knots)
    w = nonneg_lstsq(basis / y[:, None], np.ones_like(y))
    return w, basis @ w


def fit_piecewise_linear(p: np.ndarray, y: np.ndarray, max_knots: int = 3,
                         rel_tol: float = 0.01) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Interior knots (chosen greedily among the grid points), F(0) and the slopes, and fitted values; stops at
    max_knots or once the largest relative error is under rel_tol."""
    knots: list[float] = []
    coef, fitted = _fit(p, y, knots)
    candidates = list(p[1:-1])
    while len(knots) < max_knots and np.max(np.abs(fitted / y - 1)) > rel_tol and candidates:
        errs = [np.sum((_fit(p, y, knots + [k])[1] / y - 1) ** 2) for k in candidates]
        best = candidates.pop(int(np.argmin(errs)))
        knots = sorted(knots + [best])
        coef, fitted = _fit(p, y, knots)
    return knots, coef, fitted


def p_grid(p_max: int) -> np.ndarray:
    """Prompt lengths 1..p_max, dense at small p where F bends: geometric plus linear points."""
    geometric = np.geomspace(1, p_max, 40)
    linear = np.linspace(1, p_max, 24)
    return np.unique(np.round(np.concatenate([geometric, linear])).astype(np.int64))


def fit_profile(arch: ArchSpec, gpu: GPUSpec, t: int, b: int = 1, *, model: TimeModel | None = None,
                coefficients: dict | None = None, p_max: int | None = None, c_ref: int | None = None,
                max_knots: int = 4) -> Profile:
    """F(p) + g·(o − 1) of the simulator for this arch, GPU, t and batch: F over p in 1..p_max
    (default min(8192, max_positions − 1)), g at context c_ref (default 1024)."""
    top = arch.max_positions - 1
    if top < 2:
        raise UserError(f"{arch.name}: max_positions={arch.max_positions} leaves no prompt range to profile")
    p_max = min(p_max or DEFAULT_P_MAX, top)
    c_ref = int(np.clip(c_ref or DEFAULT_C_REF, 2, top))
    p = p_grid(p_max)
    prefill = predict(arch, gpu, p, 1, b, t, model=model, coefficients=coefficients).prefill_s
    knots, coef, fitted = fit_piecewise_linear(p.astype(float), prefill, max_knots)
    g = predict(arch, gpu, c_ref - 1, 2, b, t, model=model, coefficients=coefficients,
                recovery=False).decode_s  # a step of a long decode: no clocks left low by a prefill
    return Profile(name="simulated", knots=tuple(knots), intercept_s=float(coef[0]),
                   slopes_s=tuple(float(v) for v in coef[1:]), quad_s=0.0, g_s=float(g), p_first=int(p[0]),
                   p_last=int(p[-1]), c_ref=c_ref, max_rel_err=float(np.max(np.abs(fitted / prefill - 1))))
