"""`idealrt calibrate`: measure the throughput table of the GPU at hand (or derive one for another GPU).

Runs from the repo root with no install: `python3 -m idealrt calibrate [--quick] [--out FILE]`.
The op sweep and the all-reduce sweep (`--allreduce --tp 2,4`, via torchrun) are separate runs that
write into the same table file. A killed or time-limited run is continued by the same command.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulator.errors import UserError
from simulator.paths import REPO, TABLES_DIR as TABLES


def add_args(parser) -> None:
    """Options of `idealrt calibrate`."""
    parser.add_argument("--quick", action="store_true", help="small grid (a smoke test, ~5 s of GPU time)")
    parser.add_argument("--stack", default="triton,torch", help="software stacks to time: triton, torch or both")
    parser.add_argument("--ops", default=None,
                        help="op classes to sweep (default all): gemm,prefill_attn,decode_attn,elementwise,launch")
    parser.add_argument("--out", default=None, help="table file (default calibration/tables/<gpu>.json)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of continuing the file")
    parser.add_argument("--max-seconds", type=float, default=480.0,
                        help="stop cleanly after this many seconds (default 480); rerun to continue")
    parser.add_argument("--allreduce", action="store_true", help="sweep NCCL all-reduce instead (torchrun)")
    parser.add_argument("--tp", default="2,4", help="tensor-parallel degrees of the all-reduce sweep")
    parser.add_argument("--merge-allreduce", metavar="TABLE",
                        help="copy the all-reduce points of another table of this GPU into --out, each "
                             "keeping its own provenance (no GPU needed)")
    parser.add_argument("--merge", metavar="TABLE",
                        help="copy the points of the --ops classes (default all) of another table of this GPU into "
                             "--out, each keeping its own provenance (no GPU needed)")
    parser.add_argument("--replace", action="store_true",
                        help="with --merge: drop --out's points of the classes and stacks the merged table holds first (a "
                             "class re-measured on a new grid or under new conditions supersedes its old nodes)")
    parser.add_argument("--derive", metavar="GPU", help="write a table for GPU derived by spec ratios (no GPU needed)")
    parser.add_argument("--from", dest="source", metavar="GPU", default="h100-sxm",
                        help="measured GPU to derive from (with --derive)")


def _csv(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UserError(f"{flag} {text!r}: use a comma-separated subset of {','.join(allowed)}")
    return items


def _gpu_here() -> tuple[str, str]:
    """(catalog name or a slug of the device name, device name) of CUDA device 0."""
    import torch

    from simulator.gpus import gpu_for_device_name

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU visible: run 'idealrt calibrate' on the GPU machine (or use --derive)")
    device = torch.cuda.get_device_name(0)
    spec = gpu_for_device_name(device)
    return (spec.name if spec else re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")), device


def _command(argv_tail: list[str]) -> str:
    return "idealrt calibrate " + " ".join(shlex.quote(a) for a in argv_tail)


def run(args) -> int:
    """Run the op sweep, the all-reduce sweep or a derivation, as the options ask."""
    if args.derive:
        return _derive(args)
    if args.merge_allreduce:
        return _merge_allreduce(args)
    if args.merge:
        from calibration.grids import FULL
        return _merge(args.merge, _csv(args.ops, tuple(FULL), "--ops") if args.ops else tuple(FULL), args.out, "--merge",
                      replace=args.replace)
    gpu, device = _gpu_here()
    out = Path(args.out) if args.out else TABLES / f"{gpu}.json"
    if args.allreduce:
        return _allreduce(args, out, gpu)
    return _sweep(args, out, gpu, device)


def _merge_allreduce(args) -> int:
    """Carry measured all-reduce points from one table into another of the same GPU, unchanged."""
    return _merge(args.merge_allreduce, ("allreduce",), args.out, "--merge-allreduce")


def _merge(source: str, ops: tuple[str, ...], out: str | None, flag: str, replace: bool = False) -> int:
    """Carry the measured points of op classes `ops` from table `source` into table `out` of the same GPU,
    unchanged, each with its run's provenance; `replace`: `out`'s points of those classes are dropped first."""
    from calibration.table_io import load_table, merge_points, write_json_atomic

    if not out:
        raise UserError(f"{flag} needs --out, the table to merge into")
    src, dst = load_table(Path(source)), load_table(Path(out))
    gpus = {t["provenance"].get("gpu_name") for t in (src, dst)}
    if len(gpus) != 1:
        raise UserError(f"{flag}: the tables were measured on different GPUs {sorted(map(str, gpus))}")
    runs: dict[str, list[dict]] = {}
    for p in src["points"]:
        if p["op"] in ops:
            runs.setdefault(json.dumps(p.get("provenance", src["provenance"]), sort_keys=True), []).append(p)
    if not runs:
        raise UserError(f"{flag}: {source} holds no points of {', '.join(ops)}")
    if replace:  # only the (class, stack) pairs the source measured
        pairs = {(p["op"], p["stack"]) for rows in runs.values() for p in rows}
        kept = [p for p in dst["points"] if (p["op"], p["stack"]) not in pairs]
        write_json_atomic(Path(out), dict(dst, points=kept))
        print(f"calibrate: {len(dst['points']) - len(kept)} points of {', '.join(sorted(map('/'.join, pairs)))} "
              f"dropped from {out}")
    for prov, rows in runs.items():
        merge_points(out, [{k: v for k, v in r.items() if k != "provenance"} for r in rows], json.loads(prov))
    print(f"calibrate: {sum(map(len, runs.values()))} points of {', '.join(ops)} merged into {out}")
    return 0


def _sweep(args, out: Path, gpu: str, device: str) -> int:
    from calibration.grids import FULL, grid_points
    from calibration.power import PowerSampler
    from calibration.provenance import provenance
    from calibration.sweep import measure_on_gpu, run_sweep
    from calibration.table_io import TableWriter

    stacks = _csv(args.stack, ("triton", "torch"), "--stack")
    ops = _csv(args.ops, tuple(FULL), "--ops") if args.ops else None
    if out.exists() and args.fresh:
        out.unlink()
    grid = "quick" if args.quick else "full"
    prov = provenance(_command(sys.argv[2:]))
    prov.update(gpu=gpu, grid=grid, stacks=list(stacks))
    writer = TableWriter(out, prov)
    points = grid_points(grid, stacks, ops)
    print(f"calibrate: {device} ({gpu}), {grid} grid, {len(points)} points, stacks {','.join(stacks)} -> {out}",
          file=sys.stderr)
    with PowerSampler() as power:
        res = run_sweep(points, writer, measure_point=measure_on_gpu, max_seconds=args.max_seconds, power=power)
    if power.error:
        print(f"calibrate: no board power recorded ({power.error})", file=sys.stderr)
    flagged = sum(bool(p.get("flagged")) for p in writer.table["points"])
    print(f"calibrate: {res.measured} measured, {res.skipped} already in the file, {res.errors} errors, "
          f"{flagged} flagged (wide spread); this run: {res.gpu_s:.1f} s measuring, {res.compile_s:.1f} s "
          f"compiling, {res.wall_s:.1f} s wall; table total gpu_seconds={writer.provenance['gpu_seconds']}")
    for e in writer.table["errors"][:5]:
        print(f"  error {e['op']}/{e['stack']} {e['shape']}: {e['error']}", file=sys.stderr)
    if res.stopped_early:
        print(f"calibrate: stopped at --max-seconds {args.max_seconds:g}; run the same command to continue",
              file=sys.stderr)
    print(f"calibrate: wrote {out} ({writer.table['status']})")
    return 1 if res.measured == 0 and res.errors else 0


def _allreduce(args, out: Path, gpu: str) -> int:
    """One torchrun per t; rank 0's points are merged into the table with their own provenance."""
    import torch

    from calibration.table_io import merge_points
    from simulator.tables import load_table

    tps = [int(x) for x in _csv(args.tp, ("2", "4", "8"), "--tp")]
    have = torch.cuda.device_count()
    if max(tps) > have:
        raise UserError(f"--tp {args.tp}: this machine has {have} GPU(s); pass degrees up to {have}")
    env = dict(os.environ, NCCL_NVLS_ENABLE=os.environ.get("NCCL_NVLS_ENABLE", "0"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    deadline = time.monotonic() + args.max_seconds
    for t in tps:
        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / f"allreduce_t{t}.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={t}",
                   "-m", "calibration.allreduce", "--out", str(part)] + (["--quick"] if args.quick else [])
            print(f"calibrate: {' '.join(cmd)}", file=sys.stderr)
            try:
                done = subprocess.run(cmd, env=env, cwd=REPO, timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise UserError(f"all-reduce sweep for t={t} passed --max-seconds {args.max_seconds:g}; "
                                "raise it (points merged so far are kept)") from None
            if done.returncode != 0 or not part.exists():
                raise UserError(f"all-reduce sweep for t={t} failed (exit {done.returncode}); see the torchrun output")
            result = load_table(part)
            prov = dict(result["provenance"], command=_command(sys.argv[2:]), gpu=gpu)
            merge_points(out, result["points"], prov)
            print(f"calibrate: {len(result['points'])} all-reduce points for t={t} merged into {out}")
    return 0


def _derive(args) -> int:
    """Write calibration/tables/<gpu>.json (or --out) derived from the measured table of --from."""
    from calibration.table_io import write_json_atomic
    from simulator.gpus import get_gpu
    from simulator.derive import derive_table
    from simulator.tables import load_table

    dst, src = get_gpu(args.derive), get_gpu(args.source)
    src_path = TABLES / (src.table or f"{src.name}.json")
    table = load_table(src_path)
    if table.get("derived"):
        raise UserError(f"--from {src.name}: {src_path.name} is itself derived; derive from a measured table")
    out = Path(args.out) if args.out else TABLES / f"{dst.name}.derived.json"
    from idealrt.output import option_named

    with option_named("--out"):
        write_json_atomic(out, derive_table(table, src, dst, src_path.name))
    print(f"calibrate: wrote {out} (derived from {src_path.name} by spec ratios)")
    return 0
