"""GEMMs at the catalog's own layer shapes: the table section `gemm_layers` (simulator.tables reads it).

The sweep grid times GEMMs at (m, n, k) nodes with n and k on a coarse ladder (256 ... 65,536) and interpolates
between them; a layer's (n, k) falls between nodes. Here each distinct (n, k) of a dense GEMM of a catalog
architecture (the simulator's own op list; MoE experts excluded, they run grouped) is timed at the small-m
nodes `M_NODES`, the rows of a decode step or a short prefill, as the table's points are timed
(`calibration.sweep.measure_on_gpu`: CUDA-graph replay, inputs rotated so the working set exceeds 2 x L2).
Order: t = 1 shapes first, then the other t; per t the stacks in `--stacks` order; `--max-seconds` stops the
run cleanly and the file stays valid (status "partial").

`--after` also times each t = 1 shape at `AFTER_M` rows as the engine runs it inside a layer: right after one
of our fused element-wise kernels (kernels.fused.add_norm over m rows of k, the kernel before a layer's first
GEMM), both captured in one CUDA graph, minus the element-wise kernel timed alone (points with
"context": "after_add_norm"; the others have "context": "alone"). The sweep times one GEMM back to back with
itself; the difference is what a GEMM costs when its neighbours are other kernels.

    python -m calibration.gemm_layers --out OUT.json [--stacks torch,triton] [--max-seconds 180]
    python -m calibration.gemm_layers --merge OUT.json --table calibration/tables/h200.json
"""
from __future__ import annotations

import argparse
import sys
import time

M_NODES = (1, 2, 4, 8, 16, 32, 64)  # powers of two up to the grid's 64-row node: decode and short prefills
AFTER_M = M_NODES  # rows of the --after points
OURS_MAX_ELEMENTS = 2**31  # our GEMM kernel (kernels/gemm.py) offsets the weight in 32 bits: larger ones crash
SECTION = "gemm_layers"
MAX_ERRORS = 10  # errors a merged section keeps (with their total)


def layer_shapes_by_t() -> dict[int, list[tuple[int, int]]]:
    """Distinct (n, k) of the dense GEMMs of every catalog architecture (simulator.layer_points.gemm_shapes), per
    tensor-parallel degree t; a shape is listed under the smallest t that has it."""
    from simulator.catalog import get_arch, list_archs
    from simulator.layer_points import gemm_shapes
    from simulator.memory import valid_tps

    by_t: dict[int, set[tuple[int, int]]] = {}
    for name in list_archs():
        arch = get_arch(name)
        for t in valid_tps(arch):
            by_t.setdefault(t, set()).update(gemm_shapes(arch, t))
    seen: set[tuple[int, int]] = set()
    out = {}
    for t in sorted(by_t):
        out[t] = sorted(by_t[t] - seen)
        seen |= by_t[t]
    return out


def runs(stack: str, n: int, k: int) -> bool:
    """Whether the stack's GEMM runs an (n, k) weight (ours: under OURS_MAX_ELEMENTS elements)."""
    return stack != "triton" or n * k < OURS_MAX_ELEMENTS


def plan(stacks: tuple[str, ...], ms: tuple[int, ...] = M_NODES, max_t: int = 0) -> list[tuple[str, dict]]:
    """(stack, shape) of every point alone, in measuring order (t up to `max_t`; 0: every t)."""
    return [(stack, {"m": m, "n": n, "k": k}) for t, shapes in layer_shapes_by_t().items() if not max_t or t <= max_t
            for stack in stacks for n, k in shapes for m in ms if runs(stack, n, k)]


def after_plan(stacks: tuple[str, ...], ms: tuple[int, ...] = AFTER_M) -> list[tuple[str, dict]]:
    """(stack, shape) of the --after points: the t = 1 shapes at `ms` rows."""
    first = next(iter(layer_shapes_by_t().values()))
    return [(stack, {"m": m, "n": n, "k": k}) for stack in stacks for m in ms for n, k in first if runs(stack, n, k)]


def measure_after(stack: str, shape: dict, sep_cache: dict) -> dict:
    """A GEMM right after our add_norm over (m, k), in one graph, less add_norm alone (calibration.timing)."""
    from calibration.opbench import build
    from calibration.timing import measure as time_call

    m, k = shape["m"], shape["k"]
    sep = build("add_norm", "triton", {"rows": m, "hidden": k})
    if (m, k) not in sep_cache:
        sep_cache[(m, k)] = time_call(sep.call, rotate=sep.rotate).median_us
    gemm = build("gemm", stack, shape)

    def pair(i: int) -> None:
        sep.call(i)
        gemm.call(i)
    timing = time_call(pair, rotate=max(sep.rotate, gemm.rotate)).row()
    pair_us, sep_us = timing["median_us"], sep_cache[(m, k)]
    return {"kernel": gemm.kernel, **timing, "median_us": pair_us - sep_us, "pair_us": pair_us, "sep_us": sep_us,
            "context": "after_add_norm"}


def measure(out: str, stacks: tuple[str, ...], max_seconds: float, after: bool = False,
            after_m: tuple[int, ...] = AFTER_M, alone_m: tuple[int, ...] = M_NODES, max_t: int = 0) -> dict:
    """Time the points on the GPU into the file `out` (rewritten atomically every 50 points): the points alone
    at `alone_m` rows (t up to `max_t`), then when asked the --after points at `after_m` rows. A CUDA error ends
    the run (the context is lost: every later point would fail)."""
    from calibration.grids import point
    from calibration.provenance import provenance
    from calibration.sweep import measure_on_gpu
    from calibration.table_io import write_json_atomic

    sep_cache: dict = {}
    todo = [(s, sh, False) for s, sh in plan(stacks, alone_m, max_t)]
    todo += [(s, sh, True) for s, sh in after_plan(stacks, after_m)] if after else []
    section = {"provenance": provenance(), "method": __doc__.split("\n\n")[1].replace("\n", " "),
               "m_nodes": list(M_NODES), "status": "partial", "points": [], "errors": []}
    start = time.perf_counter()
    for i, (stack, shape, in_layer) in enumerate(todo):
        if time.perf_counter() - start > max_seconds:
            print(f"stopped at {max_seconds:.0f} s: {i} of {len(todo)} points", flush=True)
            break
        try:
            row = measure_after(stack, shape, sep_cache) if in_layer else \
                {**measure_on_gpu(point("gemm", stack, **shape)), "context": "alone"}
            section["points"].append({"op": "gemm", "stack": stack, "shape": shape, **row})
        except Exception as e:  # noqa: BLE001 - one failing point is recorded, the run goes on
            section["errors"].append({"stack": stack, "shape": shape, "error": f"{type(e).__name__}: {e}"[:300]})
            if "CUDA error" in str(e):
                print(f"CUDA error at {stack} {shape}: the context is lost, stopping", flush=True)
                break
        if (i + 1) % 50 == 0:
            write_json_atomic(out, section)
            print(f"{i + 1}/{len(todo)} points, {time.perf_counter() - start:.0f} s", flush=True)
    else:
        section["status"] = "complete"
    section["wall_s"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out, section)
    return section


def merge(path: str, table: str) -> int:
    """Merge a measured file into the table as its `gemm_layers` section (points of the same stack, shape and
    context replaced by the new ones, other points kept; the run's provenance appended to `runs`); returns the
    number of points merged."""
    import json

    from calibration.table_io import merge_section, point_key

    with open(path) as f:
        new = json.load(f)
    with open(table) as f:
        old = (json.load(f).get(SECTION) or {})
    def key(p: dict) -> tuple:
        return (*point_key(p["op"], p["stack"], p["shape"]), p.get("context", "alone"))
    keys = {key(p) for p in new["points"]}
    kept = [p for p in old.get("points", []) if key(p) not in keys]
    errors = new.get("errors", [])  # after a lost CUDA context every later point fails: keep the first few
    run = {"provenance": new.get("provenance"), "status": new.get("status"), "wall_s": new.get("wall_s"),
           "points": len(new["points"]), "errors": errors[:MAX_ERRORS], "errors_total": len(errors)}
    merge_section({"method": new.get("method"), "m_nodes": new.get("m_nodes"), "runs": old.get("runs", []) + [run],
                   "points": kept + new["points"]}, table, SECTION)
    return len(new["points"])


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m calibration.gemm_layers", description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="measure on the GPU into this JSON file")
    ap.add_argument("--stacks", default="torch,triton", help="comma-separated stacks, in measuring order")
    ap.add_argument("--max-seconds", type=float, default=180.0)
    ap.add_argument("--after", action="store_true", help="also time the t = 1 shapes after add_norm (docstring)")
    ap.add_argument("--after-m", default=",".join(map(str, AFTER_M)), help="rows of the --after points")
    ap.add_argument("--alone-m", default=",".join(map(str, M_NODES)), help="rows of the points alone ('' for none)")
    ap.add_argument("--max-t", type=int, default=0, help="points alone of layers up to this t (0: every t)")
    ap.add_argument("--merge", help="a measured file to merge into --table")
    ap.add_argument("--table", help="the table file --merge writes into")
    ap.add_argument("--plan", action="store_true", help="print the number of points per stack and t, measure nothing")
    args = ap.parse_args(argv)
    stacks = tuple(s for s in args.stacks.split(",") if s)
    after_m, alone_m = (tuple(int(v) for v in a.split(",") if v) for a in (args.after_m, args.alone_m))
    if args.plan:
        for t, shapes in layer_shapes_by_t().items():
            print(f"t = {t}: {len(shapes)} (n, k) x {len(M_NODES)} m x {len(stacks)} stacks")
        print(f"{len(plan(stacks, alone_m, args.max_t))} points alone, {len(after_plan(stacks, after_m))} with --after")
        return 0
    if args.merge:
        if not args.table:
            print("--merge needs --table FILE (the table to write the section into)", file=sys.stderr)
            return 2
        print(f"merged {merge(args.merge, args.table)} points into {args.table} [{SECTION}]")
        return 0
    if not args.out:
        print("give --out FILE to measure, --merge FILE --table TABLE to merge, or --plan", file=sys.stderr)
        return 2
    sec = measure(args.out, stacks, args.max_seconds, args.after, after_m, alone_m, args.max_t)
    print(f"{len(sec['points'])} points, {len(sec['errors'])} errors, {sec['status']}, {sec['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
