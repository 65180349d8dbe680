"""The paper's per-model profile T(p, o) = F(p) + g·(o − 1), fitted with cvxpy (imported lazily).

F is piecewise linear in the prompt length p, non-negative and non-decreasing, with knots chosen from the
data (greedily, among the grid's prompt lengths); g ≥ 0 is the per-token decode time; an optional q·p²
term (q ≥ 0) covers long prompts. Each form's error is reported so a user sees where the linear one breaks.
`calibration/denoise.py` fits the same form under another loss.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from simulator.errors import UserError
from simulator.profile import ProfileForm

MAX_CANDIDATE_KNOTS = 16  # more distinct prompt lengths than this: candidates at quantiles of p


# residual vector (cvxpy expression, measured − modelled, in units of `scale`) -> scalar loss
Loss = Callable[[object], object]
# (sorted knots, the best form so far or None) -> the form fitted with those knots and its loss
Solve = Callable[[Sequence[float], "ProfileForm | None"], tuple[ProfileForm, float]]


def check_grid(p: np.ndarray, o: np.ndarray, y: np.ndarray) -> None:
    """Refuse grids that cannot identify F and g: one prompt length, one output length, bad times."""
    if p.size < 4:
        raise UserError(f"the profile needs at least 4 queries, got {p.size}")
    if np.unique(p).size < 2:
        raise UserError(f"all queries have p={int(p[0])}: F(p) needs at least two prompt lengths")
    if np.unique(o).size < 2:
        raise UserError(f"all queries have o={int(o[0])}: the per-token term g needs at least two output lengths")
    if not np.all(np.isfinite(y)) or np.any(y <= 0) or np.any(p < 1) or np.any(o < 1):
        raise UserError("profile data: p and o must be >= 1 and every time finite and > 0")


def candidate_knots(p: np.ndarray) -> np.ndarray:
    """Interior prompt lengths of the data where F may bend (quantiles of p when there are many)."""
    inner = np.unique(p)[1:-1]
    if inner.size > MAX_CANDIDATE_KNOTS:
        inner = np.unique(np.quantile(p, np.linspace(0, 1, MAX_CANDIDATE_KNOTS + 2)[1:-1], method="nearest"))
    return inner


def solve_form(p, o, y, knots, quadratic: bool, loss: Loss, name: str) -> tuple[ProfileForm, float]:
    """Fit one form with fixed knots: min loss((y − T(p, o)) / scale) s.t. F(0) ≥ 0, every slope of F ≥ 0,
    quad ≥ 0, g ≥ 0. Inputs are scaled to O(1) for the solver and the result is scaled back."""
    import cvxpy as cp

    p_top, o_top, scale = float(p.max()), float(max(o.max() - 1, 1)), float(np.median(y))
    u = p / p_top  # (n,) prompt length in units of the longest
    cols = [np.ones_like(u), u] + [np.maximum(u - k / p_top, 0) for k in knots] + ([u**2] if quadratic else [])
    basis = np.column_stack(cols + [(o - 1) / o_top])  # (n, 3 + len(knots) [+ 1])
    x = cp.Variable(basis.shape[1])
    n_seg = len(knots) + 1
    cons = [x[0] >= 0, x[-1] >= 0] + [cp.sum(x[1:2 + j]) >= 0 for j in range(n_seg)]
    if quadratic:
        cons.append(x[-2] >= 0)
    prob = cp.Problem(cp.Minimize(loss((y - scale * (basis @ x)) / scale)), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise UserError(f"the {name} profile fit did not solve (cvxpy status '{prob.status}'); check the data")
    v = np.asarray(x.value) * scale
    slopes = tuple(float(s) / p_top for s in np.cumsum(v[1:1 + n_seg]))
    form = ProfileForm(name, tuple(float(k) for k in knots), max(float(v[0]), 0.0),
                       tuple(max(s, 0.0) for s in slopes), max(float(v[-2]), 0.0) / p_top**2 if quadratic else 0.0,
                       max(float(v[-1]), 0.0) / o_top)
    return form, float(prob.value)


def fit_knots(p: np.ndarray, solve: Solve, max_knots: int, penalty: float) -> ProfileForm:
    """Greedy knot choice: add the candidate knot that lowers the loss most, up to `max_knots` knots, while
    it pays for its parameter under a Schwarz criterion: log(loss) falls by more than `penalty` (log n / n
    for least squares, log n / 2n for quantile regression), and the fit is not already exact. Each knot
    is then moved to the best of the data's prompt lengths between its neighbouring candidates. `solve` fits
    the form with given knots."""
    (form, best), knots, cands = solve((), None), [], candidate_knots(p)
    for _ in range(max_knots):
        trials = [(solve(sorted(knots + [k]), form), k) for k in cands if k not in knots]
        if not trials or best <= 1e-8 * p.size:
            break
        (cand, value), k = min(trials, key=lambda tr: tr[0][1])
        if value >= best * np.exp(-penalty):
            break
        form, best, knots = cand, value, knots + [k]
    for i, k in enumerate(knots):
        for k2 in _between_candidates(p, cands, k):
            cand, value = solve(sorted(knots[:i] + [k2] + knots[i + 1:]), form)
            if value < best:
                form, best, knots[i] = cand, value, float(k2)
    return form


def _between_candidates(p: np.ndarray, cands: np.ndarray, knot: float, most: int = 8) -> np.ndarray:
    """Up to `most` of the data's prompt lengths strictly between the candidates either side of `knot`."""
    lo, hi = max(cands[cands < knot], default=p.min()), min(cands[cands > knot], default=p.max())
    near = np.unique(p[(p > lo) & (p < hi) & (p != knot)])
    return near[np.unique(np.linspace(0, near.size - 1, most).round().astype(int))] if near.size > most else near


def ape_pct(form: ProfileForm, p, o, y) -> np.ndarray:
    """Absolute percentage error of a form at each query."""
    return 100.0 * np.abs(form(p, o) - y) / y


def profile(p, o, y, max_knots: int = 2) -> list[dict]:
    """Fit the linear, piecewise-linear and piecewise-linear + p² forms to the grid (p, o) → time y by least
    squares of the relative error:  min Σ_i ((T(p_i, o_i) − y_i) / y_i)²  s.t. the constraints of
    `solve_form`. Returns per form its parameters, median / P95 / max APE and the worst APE at each p."""
    import cvxpy as cp

    p, o, y = (np.asarray(a, dtype=float).ravel() for a in (p, o, y))
    check_grid(p, o, y)
    weight = np.median(y) / y  # solve_form's residuals are in units of median(y); these make them relative

    def loss(r):
        return cp.sum_squares(cp.multiply(weight, r))

    penalty = np.log(p.size) / p.size  # Schwarz criterion of least squares, per parameter
    def solver(quadratic: bool, name: str) -> Solve:
        return lambda knots, near: solve_form(p, o, y, knots, quadratic, loss, name)

    forms = [solve_form(p, o, y, (), False, loss, "linear")[0],
             fit_knots(p, solver(False, "piecewise"), max_knots, penalty),
             fit_knots(p, solver(True, "piecewise+quadratic"), max_knots, penalty)]
    out = []
    for form in forms:
        ape = ape_pct(form, p, o, y)
        worst = {int(pv): float(ape[p == pv].max()) for pv in np.unique(p)}
        out.append({"form": form.to_json(), "median_pct": float(np.median(ape)),
                    "p95_pct": float(np.percentile(ape, 95)), "max_pct": float(ape.max()), "worst_by_p": worst})
    return out

