"""`idealrt measure`: run configuration queries on the reference engine (or transformers' generate).

Appends one JSON row per query to calibration/measurements/<gpu>_t<t>.jsonl (CONTRACTS.md), atomically;
queries already in the file are skipped, so an interrupted run resumes. Tensor parallel runs start
under torchrun (`torchrun --nproc-per-node 2 -m idealrt measure --t 2 ...`); rank 0 writes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import glob
import os
import sys
import time
from dataclasses import dataclass

from calibration.query_timing import MIN_REPEATS, WIDE_SPREAD
from simulator.errors import UserError
from simulator.paths import MEASUREMENTS_DIR

ENGINES = ("idealrt", "hf-eager")


def add_args(parser: argparse.ArgumentParser) -> None:
    from calibration.engine.backends import BACKENDS
    from calibration.engine_variants import BACKEND_VARIANTS
    from calibration.queries import GRIDS

    parser.add_argument("--arch", action="append", default=[], metavar="NAME",
                        help="catalog name or config.json path; repeat or comma-separate for several")
    parser.add_argument("--config", action="append", default=[], metavar="PATH",
                        help="a Hugging Face config.json of an architecture (repeat for several); its rows carry "
                             "the spec ('arch_spec'), so fit, validate and profile rebuild it")
    parser.add_argument("--grid", default="h100", choices=sorted(GRIDS), help="query grid (calibration/queries.py)")
    parser.add_argument("--queries", metavar="P,O,B;...", help="explicit queries instead of --grid")
    parser.add_argument("--queries-from", metavar="FILE",
                        help="the queries (arch, p, o, b at this t) of a JSON Lines file of rows instead of --grid; "
                             "the architectures default to the file's")
    parser.add_argument("--t", type=int, default=None, help="tensor-parallel degree (default: torchrun's world size)")
    parser.add_argument("--backend", default="triton", choices=BACKENDS + BACKEND_VARIANTS,
                        help="kernels: ours (triton), torch's, or an engine variant's (calibration/engine_variants)")
    parser.add_argument("--engine", default="idealrt", choices=ENGINES, help="idealrt, or transformers' eager generate")
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS,
                        help=f"timed runs per query, at least {MIN_REPEATS} (median kept, min/max as spread; "
                             f"measured again when they spread over {WIDE_SPREAD * 100:.0f}%%)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed short runs per query")
    parser.add_argument("--gpu", help="GPU catalog name for the rows (default: detected from the device name)")
    parser.add_argument("--out", help="JSON Lines file (default: calibration/measurements/<gpu>_t<t>.jsonl)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop cleanly before a query would end past this many seconds (re-run to resume)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: tests only (float32, no graphs)")
    parser.add_argument("--energy-window", type=float, metavar="SECONDS", default=None,
                        help="meter each query's energy over its runs back to back for at least SECONDS, edge to "
                             "edge of the energy counter (calibration/energy_window.py), not around single runs")
    parser.add_argument("--summary", nargs="*", metavar="FILE",
                        help="print row counts of measurement files (default: all shipped) and exit")


def _archs(names: list[str], configs: list[str]) -> tuple[list, set[str]]:
    """The architectures of --arch and --config, and the names of those that came from a config file."""
    from simulator.catalog import get_arch
    from simulator.hf_config import load_config

    paths = [n for item in names for n in item.split(",") if n.endswith(".json")] + list(configs)
    specs = [get_arch(n) for item in names for n in item.split(",") if n and not n.endswith(".json")]
    from_files = [load_config(p) for p in paths]
    if not specs and not from_files:
        raise UserError("no --arch or --config given: name at least one catalog architecture or config.json")
    for arch in from_files:  # the reference engine runs bf16 weights and KV cache only
        if arch.precision.weights != "bf16" or arch.precision.kv != "bf16":
            raise UserError(f"--config {arch.name}: precision {arch.precision.label}; the reference engine runs bf16 "
                            "only: remove 'quantization_config' and set 'torch_dtype' to bfloat16 to measure the "
                            "model in bf16")
    return specs + from_files, {a.name for a in from_files}


def _listed(path: str) -> list[dict]:
    """The rows of a --queries-from file, each with arch, t, b, p and o (a missing field is a one-line error)."""
    from calibration.measurements_io import read_rows

    if not os.path.exists(path):
        raise UserError(f"--queries-from {path}: no such file")
    rows = read_rows(path)
    for i, r in enumerate(rows, 1):
        for name in ("arch", "t", "b", "p", "o"):
            if name not in r:
                raise UserError(f"--queries-from {path}: row {i} has no '{name}'; each row needs arch, t, b, p and o")
    if not rows:
        raise UserError(f"--queries-from {path}: no rows (a JSON Lines file of arch, t, b, p, o)")
    return rows


def _listed_archs(path: str) -> tuple[list, set[str]]:
    """The architectures of a --queries-from file: catalog names, or specs where its rows carry `arch_spec`."""
    from calibration.measurements_io import arch_of
    from simulator.catalog import get_arch

    first: dict[str, dict] = {}
    for r in _listed(path):
        first.setdefault(r["arch"], r)
    archs = [arch_of(r, f"--queries-from {path}") if "arch_spec" in r else get_arch(name)
             for name, r in sorted(first.items())]
    return archs, {name for name, r in first.items() if "arch_spec" in r}


def _queries(arch, args, t: int) -> list:
    from calibration.queries import (
        Query,
        check_fits_positions,
        grid_queries,
        parse_queries,
    )

    if args.queries_from:
        qs = [Query(r["b"], r["p"], r["o"], t) for r in _listed(args.queries_from) if r["arch"] == arch.name and r["t"] == t]
    else:
        qs = parse_queries(args.queries, t) if args.queries else grid_queries(arch, args.grid, t)
    for q in qs:
        check_fits_positions(arch, q)
    return qs


def _gpu_key(args, device_name: str) -> str:
    from simulator.gpus import get_gpu, gpu_for_device_name

    if args.gpu:
        return get_gpu(args.gpu).name
    if args.device == "cpu":
        return "cpu"
    spec = gpu_for_device_name(device_name)
    if spec is None:
        raise UserError(f"device '{device_name}' is not in the GPU catalog; pass --gpu NAME")
    return spec.name


def _make_engine(arch, args, rank: int, t: int, group):
    import torch

    if args.engine == "hf-eager":
        from calibration.engine.hf_eager import HFEngine
        return HFEngine(arch, device=args.device)
    from calibration.engine.runner import Engine
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    variant = _variant(args.backend)
    if variant is not None:
        return variant.make_engine(arch, t=t, rank=rank, group=group, device=args.device, dtype=dtype)
    return Engine(arch, args.backend, t, rank, group, device=args.device, dtype=dtype)


def _variant(backend: str):
    """The engine-variant module of a variant backend (calibration/engine_variants), None for the engine's own."""
    import importlib

    from calibration.engine_variants import BACKEND_VARIANTS

    return importlib.import_module(f"calibration.engine_variants.{backend}") if backend in BACKEND_VARIANTS else None


class _Bar:
    """rich progress bar on rank 0 (plain lines where rich is missing or the output is no terminal)."""

    def __init__(self, total: int, show: bool):
        self.bar, self.n, self.total, self.show = None, 0, total, show
        try:
            from rich.progress import Progress
            if show and sys.stderr.isatty():
                self.bar = Progress(transient=False)
                self.task = self.bar.add_task("measure", total=total)
                self.bar.start()
        except ImportError:
            pass

    def step(self, text: str) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        elif self.show:
            print(f"  [{self.n}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _agree(flag: bool, group) -> bool:
    """True on every rank when any rank says so (ranks stop together)."""
    if group is None:
        return flag
    import torch
    import torch.distributed as dist
    x = torch.tensor([int(flag)], device="cuda")
    dist.all_reduce(x, op=dist.ReduceOp.MAX, group=group)
    return bool(x.item())


@dataclass
class _Session:
    """What every query of one `measure` run shares: arguments, rank, output file, provenance, clock."""

    args: argparse.Namespace
    rank: int
    t: int
    group: object
    gpu: str
    out: str
    backend: str
    prov: dict
    bar: _Bar
    t0: float
    from_config: set[str]  # architectures given as config.json: their rows carry the spec
    energy: object = None  # this rank's GPU energy counter (calibration/power.py), None without one

    def row(self, arch, q, res: dict) -> dict:
        """One measurement row (CONTRACTS.md), the provenance dated now."""
        from calibration.engine_version import engine_version
        from calibration.measurements_io import arch_spec_fields
        from calibration.queries import split_of

        prov = dict(self.prov, date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        variant = _variant(self.backend)
        served = getattr(variant, "served_arch", None)  # a variant that serves another precision says so
        spec = {"arch_spec": arch_spec_fields(served(arch) if served else arch)} \
            if arch.name in self.from_config or served else {}
        name = None if variant is None else self.backend
        return {"arch": arch.name, **spec, "gpu": self.gpu, "gpu_name": self.prov["gpu_name"], "t": q.t,
                "b": q.b, "p": q.p, "o": q.o, **res, "engine": self.args.engine, "backend": self.backend,
                **({} if name is None else {"engine_variant": name}), "engine_version": engine_version(name),
                # the reference engine's Triton stack fuses its elementwise kernels (kernels/fused.py), and so
                # does a variant built on it (its FUSED)
                "fused": self.args.engine == "idealrt" and (self.backend == "triton" or getattr(variant, "FUSED", False)),
                "split": split_of(arch.name, q), "provenance": prov}

    def late(self, arch, q) -> bool:
        """True (on every rank) when the query would end past --max-seconds."""
        from calibration.queries import estimate_s

        lim = self.args.max_seconds
        end = time.perf_counter() - self.t0 + estimate_s(arch, q, self.args.repeats) + (self.args.energy_window or 0)
        return _agree(lim is not None and end > lim, self.group)


def run(args: argparse.Namespace) -> int:
    """Measure every query of every --arch not yet in the output file; returns 0 (also when stopped early)."""
    from calibration.measurements_io import read_rows, row_key, summary_table

    if args.summary is not None:
        print(summary_table(args.summary or sorted(glob.glob(os.path.join(MEASUREMENTS_DIR, "*.jsonl")))))
        return 0
    if args.repeats < MIN_REPEATS or args.warmup < 0:
        raise UserError(f"--repeats must be >= {MIN_REPEATS} (the median of fewer runs is not trustworthy) "
                        "and --warmup >= 0")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    t = args.t or world
    if t != world:
        raise UserError(f"--t {t} but {world} processes: start with "
                        f"'torchrun --nproc-per-node {t} -m idealrt measure ...'")
    if args.engine == "hf-eager" and t != 1:
        raise UserError("--engine hf-eager runs on one GPU: use --t 1")
    if args.energy_window is not None and not (args.energy_window > 0 and args.engine == "idealrt" and t == 1):
        raise UserError(f"--energy-window {args.energy_window}: give a positive number of seconds, with the reference "
                        "engine (--engine idealrt) at --t 1")
    if args.queries_from and not args.arch and not args.config:
        archs, from_config = _listed_archs(args.queries_from)
    else:
        archs, from_config = _archs(args.arch, args.config)
    plan = [(a, _queries(a, args, t)) for a in archs]  # validate all before touching the GPU
    if args.engine == "hf-eager":
        from calibration.engine.hf_eager import hf_config_kwargs
        for a, _ in plan:
            hf_config_kwargs(a)

    import torch

    from calibration.engine.tp import init_distributed
    from calibration.provenance import provenance

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA GPU visible: 'measure' needs one (or --device cpu for a test run)")
    rank, _, group = init_distributed()
    prov = provenance()
    gpu = _gpu_key(args, prov["gpu_name"])
    out = args.out or os.path.join(MEASUREMENTS_DIR, f"{gpu}_t{t}.jsonl")
    backend = "transformers" if args.engine == "hf-eager" else args.backend
    done = {row_key(r) for r in read_rows(out)}
    todo = [(a, [q for q in qs if (a.name, gpu, t, q.b, q.p, q.o, args.engine, backend) not in done])
            for a, qs in plan]
    n_todo = sum(len(qs) for _, qs in todo)
    if rank == 0:
        print(f"measure: {n_todo} queries to run, {sum(len(q) for _, q in plan) - n_todo} already in {out}",
              file=sys.stderr)
    ses = _Session(args, rank, t, group, gpu, out, backend, prov, _Bar(n_todo, rank == 0), time.perf_counter(),
                   from_config, _energy_counter(args.device))
    written, stopped, failed = 0, False, []
    try:
        for arch, qs in todo:
            if qs and not stopped:
                n, stopped, arch_failed = _measure_arch(arch, qs, ses)
                written += n
                failed += [arch.name] if arch_failed else []
    finally:
        ses.bar.close()
    if failed and written == 0:
        raise UserError(f"every query failed ({', '.join(failed)}; errors above); nothing written to {out}")
    if rank == 0:
        how = "stopped by --max-seconds; re-run the same command to resume" if stopped else "done"
        how += f"; failed: {', '.join(failed)} (errors above)" if failed else ""
        print(f"measure: {written} rows written to {out} in {time.perf_counter() - ses.t0:.0f} s ({how})",
              file=sys.stderr)
    return 0


def _energy_counter(device: str):
    """This rank's GPU energy counter (None on the CPU or where NVML has none)."""
    if device != "cuda":
        return None
    import torch

    from calibration.power import open_energy_counter

    index = torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return open_energy_counter(index, str(uuid) if uuid else None)


def _with_window(engine, q, res: dict, ses: _Session) -> dict:
    """res with its energy metered over a window of runs (--energy-window); without the per-run energy fields
    when the window could not be metered (no counter, too few counter steps), a note printed."""
    if ses.args.energy_window is None:
        return res
    from calibration.energy_window import window_energy

    fields = None if ses.energy is None else window_energy(engine, q.p, q.o, q.b, ses.energy, ses.args.energy_window)
    if fields is None:
        print(f"  note: b={q.b} p={q.p} o={q.o}: energy window not metered (no counter, or too few counter steps)",
              file=sys.stderr)
        return {k: v for k, v in res.items() if k not in ("energy_j", "mean_power_w")}
    return {**res, **fields}


def _measure_arch(arch, qs: list, ses: _Session) -> tuple[int, bool, bool]:
    """Build the model once, run its queries batch by batch; returns (rows written, stopped early, failed)."""
    import torch

    from calibration.engine.runner import cache_rows, memory_need_bytes
    from calibration.measurements_io import append_row

    cuda = ses.args.device == "cuda"
    total_mem = torch.cuda.mem_get_info()[1] if cuda else float("inf")
    fits = [q for q in qs if memory_need_bytes(arch, ses.t, q.b, q.p, cache_rows(q.p + q.o)) <= 0.95 * total_mem]
    if ses.rank == 0:
        for q in sorted(set(qs) - set(fits)):
            print(f"  skip {arch.name} b={q.b} p={q.p} o={q.o}: needs more than this GPU's memory", file=sys.stderr)
    if not fits:
        return 0, False, False
    start = time.perf_counter()
    try:
        engine = _make_engine(arch, ses.args, ses.rank, ses.t, ses.group)
    except Exception as e:  # out of memory, a family the engine cannot build: fail-soft on one GPU, next arch
        if ses.t > 1:
            raise
        print(f"  error building {arch.name}: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}; skipping it",
              file=sys.stderr)
        return 0, False, True
    if ses.rank == 0:
        print(f"  {arch.name}: built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    written, stopped, failed = 0, False, False
    for b in sorted({q.b for q in fits}):
        batch = [q for q in fits if q.b == b]
        for q in batch:
            stopped = ses.late(arch, q)
            if stopped:
                break
            try:
                engine.prepare(b, max(q.p + q.o for q in batch))  # the largest cache first: no re-allocation
                res = engine.time_query(q.p, q.o, q.b, ses.args.repeats, ses.args.warmup, energy=ses.energy)
                res = _with_window(engine, q, res, ses)
            except Exception as e:  # CUDA or Triton errors, out of memory: fail-soft on one GPU, next arch
                if ses.t > 1:
                    raise  # the other ranks would wait in a collective
                print(f"  error {arch.name} b={q.b} p={q.p} o={q.o}: {type(e).__name__}: {str(e).splitlines()[0]}; "
                      f"skipping the rest of {arch.name}", file=sys.stderr)
                failed = True
                break
            if ses.rank == 0:
                append_row(ses.out, ses.row(arch, q, res))
            written += 1
            ses.bar.step(f"{arch.name} b={q.b} p={q.p} o={q.o}: {res['total_s'] * 1e3:.1f} ms")
        if stopped or failed:
            break
    del engine
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return written, stopped, failed
