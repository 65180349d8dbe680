"""The simulator fit: a few bounded, interpretable coefficients per GPU and software stack.

The measured throughput table already gives each op class's time, so the fit only corrects it: one
multiplier per coefficient of simulator.opclasses (the engine's element-wise kernels share one), bounded near 1,
plus a non-negative fixed cost per prefill and per decode step (the host's work the GPU waits for).
It chooses at most a handful of informative configuration queries from the `fit` split itself (greedy
D-optimal design on the relative-error design matrix) and fits them with cvxpy (imported lazily).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from simulator.errors import UserError
from simulator.paths import repo_relative
from simulator.fits import FIXED_KEYS as FIXED  # per prefill; per decode step
from simulator.opclasses import COEFFICIENTS, OP_CLASS
from simulator.timemodel import phase_time

MULTIPLIER_BOUNDS = (0.7, 1.5)  # every coefficient; a fitted one near a bound is a modelling defect to find
RIDGE = 1e-5  # weight of the pull of each multiplier towards 1 (settles coefficients the queries cannot see)
MIN_QUERIES = 3


@dataclass(frozen=True)
class ClassTimes:
    """Simulated seconds per op class of one query at unit coefficients: prefill, and decode summed over
    its o - 1 steps (the sums that a fit's multipliers scale)."""

    prefill: dict[str, float]
    decode: dict[str, float]
    # an eager host's (X, Y) seconds (simulator.overlap) of the prefill and summed over the decode steps; None where
    # host and GPU overlap fully
    prefill_exposed: tuple[float, float] | None = None
    decode_exposed: tuple[float, float] | None = None


# rows -> their per-class times; SimulatorFeatures is the real one, tests pass stand-ins
Features = Callable[[Sequence[dict]], list[ClassTimes]]


@dataclass
class FitResult:
    """A solved fit: coefficients, their bounds, the queries used and the relative residuals."""

    coefficients: dict[str, float]
    bounds: dict[str, list[float | None]]
    queries: list[dict]
    residuals: list[dict]
    unfitted: list[str] = field(default_factory=list)  # left at 1: no time in the queries, or not free to move
    objective: float = 0.0

    def to_json(self, gpu: str, stack: str, provenance: dict) -> dict:
        """The fit file's content (contract: docs/CONTRACTS.md, "Fit")."""
        return {"gpu": gpu, "stack": stack, "coefficients": self.coefficients, "bounds": self.bounds,
                "unfitted": self.unfitted, "objective": self.objective, "queries": self.queries,
                "residuals": self.residuals, "provenance": provenance}


# -- measurement rows (read and checked by calibration/measurements_io.py) --------------------------
def data_provenance(rows: Sequence[dict]) -> list[dict]:
    """Per source file: its path, SHA-256, rows used, their date range and the distinct provenance records
    they carry (dates left out)."""
    out = []
    for path in sorted({r["_file"] for r in rows}):
        provs = [r.get("provenance") or {} for r in rows if r["_file"] == path]
        dates = sorted(str(p["date"]) for p in provs if "date" in p)
        distinct = {json.dumps({k: v for k, v in p.items() if k != "date"}, sort_keys=True) for p in provs}
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).exists() else None
        out.append({"file": repo_relative(path), "sha256": digest, "rows_used": len(provs),
                    "dates": [dates[0], dates[-1]] if dates else None,
                    "provenance": [json.loads(p) for p in sorted(distinct)]})
    return out


# -- design matrix ---------------------------------------------------------------------------------
def coefficient_names(times: Sequence[ClassTimes]) -> list[str]:
    """The coefficients of the op classes present in the simulated times, then the two fixed costs."""
    seen = {OP_CLASS[c].coefficient for ct in times for c in (*ct.prefill, *ct.decode)}
    return [c for c in COEFFICIENTS if c in seen] + list(FIXED)


def _line(by_class: dict[str, float], names: Sequence[str],
          exposed: tuple[float, float] | None = None) -> list[float]:
    """Seconds per coefficient of one phase at unit coefficients, on its binding side: the GPU's classes, or
    the host's launches (`launch`) when they take longer (simulator.timemodel.phase_time); with an eager host's
    `exposed` (X, Y), the GPU's classes plus X as the host's, or the host's plus Y shared out over the GPU's
    classes as their times are."""
    x, y = exposed or (0.0, 0.0)
    gpu = sum(float(v) for c, v in by_class.items() if c != "launch")
    host = by_class.get("launch", 0.0) > 0 and by_class["launch"] + y >= gpu + x
    out = dict.fromkeys(names, 0.0)
    for c, v in by_class.items():
        if (c == "launch") == host:
            out[OP_CLASS[c].coefficient] += float(v)
        elif c != "launch" and gpu > 0:  # host-bound: the GPU's seconds after the host's last issue
            out[OP_CLASS[c].coefficient] += y * float(v) / gpu
    if not host and "launch" in out:
        out["launch"] += x
    return [out[n] for n in names]


def design(rows: Sequence[dict], times: Sequence[ClassTimes], names: Sequence[str]):
    """Design matrix A, targets y and (row index, phase) labels: one line per prefill and per decode with
    o > 1, so that time = A @ coefficients. Shapes: A (m, len(names)), y (m,)."""
    lines, ys, labels = [], [], []
    for i, (row, ct) in enumerate(zip(rows, times)):
        steps = row["o"] - 1
        for phase, by_class, exposed, y, fixed in (
                ("prefill", ct.prefill, ct.prefill_exposed, row["prefill_s"], (1.0, 0.0)),
                ("decode", ct.decode, ct.decode_exposed, row["decode_s"], (0.0, float(steps)))):
            if phase == "decode" and steps == 0:
                continue
            lines.append(_line(by_class, names[:-2], exposed) + list(fixed))
            ys.append(float(y))
            labels.append((i, phase))
    return np.array(lines).reshape(len(lines), len(names)), np.array(ys), labels


def apply_coefficients(ct: ClassTimes, steps: int, coefs: dict[str, float]) -> tuple[float, float]:
    """(prefill_s, decode_s over all steps) under a fit, as simulator.predict applies it: each phase the longer of
    GPU and host work, plus the fixed costs. A coefficient the fit does not name is 1."""
    full = {n: 1.0 for n in COEFFICIENTS} | {n: coefs[n] for n in COEFFICIENTS if n in coefs}
    pre = float(phase_time(ct.prefill, full, ct.prefill_exposed)) + coefs.get("prefill_fixed_s", 0.0)
    dec = float(phase_time(ct.decode, full, ct.decode_exposed)) + coefs.get("decode_fixed_s", 0.0) * steps
    return pre, dec if steps else 0.0


# -- query choice ----------------------------------------------------------------------------------
def _config_coords(rows: Sequence[dict]) -> np.ndarray:
    """(n, 4) coordinates of the rows' log2 p, o, b, t, each scaled to [0, 1] over the rows."""
    z = np.log2(np.array([[r[k] for k in ("p", "o", "b", "t")] for r in rows], dtype=float))
    span = z.max(axis=0) - z.min(axis=0)
    return (z - z.min(axis=0)) / np.where(span > 0, span, 1.0)


def select_queries(rows: Sequence[dict], times: Sequence[ClassTimes], max_queries: int,
                   near_best: float = 0.8) -> list[int]:
    """Indices of at most `max_queries` rows, chosen greedily for Bayesian D-optimality of the relative
    design: lines of A scaled by 1/y (time shares), columns scaled to unit RMS over the pool, each pick
    maximising the gain in log det(I + Σ aᵀa). Among the candidates whose gain is within `near_best` of the
    best, the one farthest (max-min distance in log p, o, b, t, plus 1 for another architecture) from the
    picks so far wins, so the queries spread over the configuration space instead of piling on extremes."""
    names = coefficient_names(times)
    a, y, labels = design(rows, times, names)
    rel = a / y[:, None]  # (m, k): each line's time shares per coefficient
    rms = np.sqrt(np.mean(rel**2, axis=0))
    rel = rel / np.where(rms > 0, rms, 1.0)
    coords, arch = _config_coords(rows), [r["arch"] for r in rows]
    by_row = {i: [j for j, (r, _) in enumerate(labels) if r == i] for i in range(len(rows))}
    info, chosen = np.eye(len(names)), []

    def spread(i: int) -> float:  # distance to the nearest pick so far
        return min((np.linalg.norm(coords[i] - coords[j]) + (arch[i] != arch[j]) for j in chosen), default=0.0)

    for _ in range(min(max_queries, len(rows))):
        base = np.linalg.slogdet(info)[1]
        gain = {i: np.linalg.slogdet(info + rel[lines].T @ rel[lines])[1] - base
                for i, lines in by_row.items() if i not in chosen}
        top = max(gain.values())
        best = max((i for i in gain if gain[i] >= near_best * top), key=lambda i: (spread(i), gain[i], -i))
        chosen.append(best)
        info = info + rel[by_row[best]].T @ rel[by_row[best]]
    return sorted(chosen)


def check_queries(rows: Sequence[dict]) -> None:
    """Refuse query sets that cannot separate the fixed costs from the per-token terms."""
    if len(rows) < MIN_QUERIES:
        raise UserError(f"the fit needs at least {MIN_QUERIES} 'fit'-split queries, got {len(rows)}; "
                        "measure more configurations with 'idealrt measure'")
    ps = sorted({r["p"] for r in rows})
    if len(ps) < 2:
        raise UserError(f"all {len(rows)} fit queries have p={ps[0]}: the fixed costs and per-token terms "
                        "cannot be told apart; measure at least two prompt lengths")


# -- the fit ---------------------------------------------------------------------------------------
def fit_coefficients(rows: Sequence[dict], times: Sequence[ClassTimes],
                     multiplier_bounds: tuple[float, float] = MULTIPLIER_BOUNDS, ridge: float = RIDGE,
                     free: Sequence[str] | None = None) -> FitResult:
    """Fit the multipliers β (one per op class) and fixed costs f to the measured rows:

        min_{β,f}  Σ_i ((A_i·[β, f] − y_i) / y_i)² + ridge·Σ_c (β_c − 1)²   s.t.  lo_c ≤ β_c ≤ hi_c,  f ≥ 0

    where i runs over each query's prefill and decode (y = prefill_s, decode_s) and A holds the simulated
    per-coefficient times on each phase's binding side (GPU or host) and the fixed-cost counts (1 per prefill,
    o − 1 per decode); [lo_c, hi_c] is `multiplier_bounds` for every coefficient. With `free`, only the
    coefficients it names are fitted: the others stay at 1 and the fixed costs at 0 unless named.
    """
    import cvxpy as cp

    if not 0 < multiplier_bounds[0] <= 1 <= multiplier_bounds[1]:
        raise UserError(f"multiplier bounds {list(multiplier_bounds)} are infeasible: use 0 < low <= 1 <= high, "
                        "e.g. 0.7 1.5")
    check_queries(rows)
    names = coefficient_names(times)
    a, y, labels = design(rows, times, names)
    k = len(names) - 2
    lo, hi = np.full(k, float(multiplier_bounds[0])), np.full(k, float(multiplier_bounds[1]))
    if free is not None:
        fixed_at_one = np.array([n not in free for n in names[:k]])
        lo[fixed_at_one], hi[fixed_at_one] = 1.0, 1.0
    scale = float(np.median(y))  # fixed costs solved in units of a typical time, for conditioning
    rel = a / y[:, None]
    rel[:, k:] *= scale
    beta, fixed = cp.Variable(k), cp.Variable(2)
    loss = cp.sum_squares(rel @ cp.hstack([beta, fixed]) - 1) + ridge * cp.sum_squares(beta - 1)
    held = [] if free is None else [fixed[j] == 0 for j, n in enumerate(FIXED) if n not in free]
    prob = cp.Problem(cp.Minimize(loss), [beta >= lo, beta <= hi, fixed >= 0, *held])
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise UserError(f"the fit did not solve (cvxpy status '{prob.status}'); check the measurements")
    x = np.concatenate([np.clip(beta.value, lo, hi), np.maximum(fixed.value, 0) * scale])
    coefs = {n: float(v) for n, v in zip(names, x)}
    fitted = a @ x
    unfitted = [n for j, n in enumerate(names[:k]) if not np.any(a[:, j] > 0) or (free is not None and n not in free)]
    residuals = [{**query_key(rows[i]), "phase": ph, "measured_s": float(y[j]), "fitted_s": float(fitted[j]),
                  "rel_err": float((fitted[j] - y[j]) / y[j])} for j, (i, ph) in enumerate(labels)]
    bounds = {n: [float(lo[j]), float(hi[j])] for j, n in enumerate(names[:k])} | {n: [0.0, None if free is None or n in free else 0.0] for n in FIXED}
    return FitResult(coefs, bounds, [query_key(r) for r in rows], residuals, unfitted, float(prob.value))


def fit_pool(rows: Sequence[dict], exclude_archs: frozenset = frozenset()) -> list[dict]:
    """The rows a fit may choose from: the `fit` split, without the excluded architectures."""
    return [r for r in rows if r["split"] == "fit" and r["arch"] not in exclude_archs]


# the table stack whose kernels a backend runs: transformers torch's; the fp8 and fp8_kv engine variants (rows at
# FP8 through their arch_spec) the triton stack's, whose tables hold the FP8 classes
TABLE_STACK = {"transformers": "torch", "fp8": "triton", "fp8_kv": "triton"}


def host_of(row: dict) -> str:
    """How the row's engine launches its kernels: the row's `host`, else "hf-eager" (its measured host model,
    simulator.hostmodel) for transformers' eager generate, else the reference engine's own for the row's stack
    (simulator.hostmodel engine_host: decode steps replayed from graphs, a prefill graphed or eager by its length,
    each timed prefill after the decode steps of the run before when o > 1)."""
    if row.get("host"):
        return row["host"]
    if row.get("engine") == "hf-eager":
        return "hf-eager"
    from simulator.hostmodel import engine_host

    return engine_host(row.get("backend", "triton"), row["o"] > 1)  # rows without a backend: the default stack


def fused_elementwise(row: dict) -> bool:
    """Whether the engine that measured the row fused its elementwise kernels (the row's `fused`; rows written
    before the field existed were not)."""
    return bool(row.get("fused", False))


def query_key(row: dict) -> dict:
    """The configuration of a measured row: architecture, GPU, t, b, p, o."""
    return {k: row[k] for k in ("arch", "gpu", "t", "b", "p", "o")}


def free_coefficients(rows: Sequence[dict]) -> tuple[str, ...] | None:
    """The coefficients a fit to `rows` may move: only the host's (`launch`) for a stack timed with a measured host
    model (transformers' eager generate: its GPU kernels are the table's, timed as measured), else all (None)."""
    return ("launch",) if rows and all(host_of(r) == "hf-eager" for r in rows) else None


def fit_rows(rows: Sequence[dict], features: Features, max_queries: int = 6,
             multiplier_bounds: tuple[float, float] = MULTIPLIER_BOUNDS, exclude_archs: frozenset = frozenset()) -> FitResult:
    """Choose at most `max_queries` informative rows of the `fit` split (architectures in `exclude_archs`
    left out) and fit the coefficients to them (free_coefficients says which)."""
    if max_queries < MIN_QUERIES:
        raise UserError(f"--max-queries is {max_queries}; the fit needs at least {MIN_QUERIES}")
    pool = fit_pool(rows, exclude_archs)
    check_queries(pool)
    times = features(pool)
    picks = select_queries(pool, times, max_queries)
    return fit_coefficients([pool[i] for i in picks], [times[i] for i in picks], multiplier_bounds,
                            free=free_coefficients(pool))


class SimulatorFeatures:
    """Per-class times of measured rows from `simulator.predict`, on the GPU's default table for `stack`
    (or on the roofline alone with roofline=True); the simulator is imported when first called."""

    def __init__(self, stack: str = "triton", roofline: bool = False,
                 hide_layers: frozenset[tuple[int, int]] = frozenset()):
        """`hide_layers`: (n, k) whose layer-shape GEMM points the tables forget (simulator.layer_points)."""
        self.stack, self.roofline, self.hide_layers = TABLE_STACK.get(stack, stack), roofline, hide_layers
        self.models: dict[str, object] = {}  # gpu name -> time model
        self.warnings: set[str] = set()

    def model(self, gpu):
        """The time model this instance predicts with on `gpu`."""
        if gpu.name not in self.models:
            from simulator.tables import default_model
            from simulator.timemodel import RooflineModel
            model = RooflineModel(gpu) if self.roofline else default_model(gpu, self.stack)
            for m in getattr(model, "stacks", [model]):
                if hasattr(m, "layers"):
                    m.layers.hide(self.hide_layers)
            self.models[gpu.name] = model
        return self.models[gpu.name]

    def without_layers_of(self, rows: Sequence[dict]) -> SimulatorFeatures:
        """These features with the layer points only the rows' architecture has hidden (at the rows' t)."""
        from calibration.measurements_io import arch_of
        from simulator.layer_points import exclusive_shapes

        hidden = set().union(*(exclusive_shapes(arch_of(r), t) for r, t in {(r["arch"], r["t"]): (r, r["t"])
                                                                            for r in rows}.values()))
        return SimulatorFeatures(self.stack, self.roofline, frozenset(hidden))

    def table_info(self, gpu_name: str) -> dict:
        """What the times were computed on: the time model's source and, for a table, its provenance."""
        from simulator.gpus import get_gpu
        from simulator.timemodel import describe

        model = self.model(get_gpu(gpu_name))
        table = getattr(model, "table", None)
        return {"time_model": describe(model),
                "table_provenance": table.get("provenance") if isinstance(table, dict) else None,
                "derived": table.get("derived") if isinstance(table, dict) else None}

    @staticmethod
    def moe(row: dict) -> bool:
        """Whether the row's architecture is a mixture of experts (the reference engine runs those
        non-ideally, calibration/measurements/README.md, so fits leave them out by default)."""
        from calibration.measurements_io import arch_of
        return arch_of(row).is_moe

    def _predict(self, rows: Sequence[dict]):
        """One `predict` over rows of one (arch, gpu, t)."""
        from calibration.measurements_io import arch_of
        from simulator.gpus import get_gpu
        from simulator.predict import predict

        gpu = get_gpu(rows[0]["gpu"])
        p, o, b = (np.array([r[k] for r in rows]) for k in ("p", "o", "b"))  # (n,) each
        return predict(arch_of(rows[0]), gpu, p, o, b, rows[0]["t"], model=self.model(gpu),
                       fused=fused_elementwise(rows[0]), host=host_of(rows[0]))

    @staticmethod
    def _groups(rows: Sequence[dict]) -> dict[tuple, list[int]]:
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault((r["arch"], r["gpu"], r["t"], fused_elementwise(r), host_of(r)), []).append(i)
        return groups

    def predictable(self, rows: Sequence[dict]) -> list[dict]:
        """The rows the simulator accepts; each one it refuses is left out with a warning naming why."""
        keep = []
        for idx in self._groups(rows).values():
            for part in ([idx] if self._accepts([rows[i] for i in idx]) else [[i] for i in idx]):
                if self._accepts([rows[i] for i in part]):
                    keep += part
        return [rows[i] for i in sorted(keep)]

    def _accepts(self, rows: Sequence[dict]) -> bool:
        try:
            self._predict(rows)
            return True
        except UserError as e:
            if len(rows) == 1:
                self.warnings.add(f"left out {repo_relative(rows[0].get('_file', ''))} {query_key(rows[0])}: {e}")
            return False

    def __call__(self, rows: Sequence[dict]) -> list[ClassTimes]:
        out: list[ClassTimes | None] = [None] * len(rows)
        for idx in self._groups(rows).values():
            pred = self._predict([rows[i] for i in idx])
            self.warnings |= set(pred.warnings)
            def pick(xy, j):
                return None if xy is None else (float(xy[0][j]), float(xy[1][j]))
            for j, i in enumerate(idx):
                out[i] = ClassTimes({c: float(v[j]) for c, v in pred.prefill_by_class.items()},
                                    {c: float(v[j]) for c, v in pred.decode_by_class.items()},
                                    pick(pred.prefill_exposed, j), pick(pred.decode_exposed, j))
        return out  # type: ignore[return-value]
