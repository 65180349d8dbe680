"""`idealrt explain`: a profile of the reference engine (benchmarks/profile_engine.py) beside the simulator's op
list, per query and op class, on the GPU's table without a fit; and the time between kernels."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from idealrt.output import fmt_s, print_json, print_lines, print_table
from simulator.errors import UserError


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt explain`."""
    parser.add_argument("--profile", required=True, help="JSON written by benchmarks/profile_engine.py")
    parser.add_argument("--gpu", default=None, help="GPU name (default: the one the profile ran on)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _load(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"--profile {path}: cannot read it ({e.strerror}); pass a profile_engine.py output") from None
    except json.JSONDecodeError as e:
        raise UserError(f"--profile {path}: not valid JSON ({e.msg}); pass a profile_engine.py output") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UserError(f"--profile {path}: no 'rows' list; pass a profile_engine.py output")
    return data


def run(args: argparse.Namespace) -> int:
    """Run `idealrt explain`; returns the exit code (bad input raises UserError)."""
    from calibration.explain import compare_row, served_arch, table_stack, totals
    from simulator.catalog import get_arch
    from simulator.gpus import get_gpu, gpu_for_device_name
    from simulator.tables import default_model

    data = _load(args.profile)
    prov = data.get("provenance") or {}
    gpu = get_gpu(args.gpu) if args.gpu else gpu_for_device_name(str(prov.get("gpu_name", "")))
    if gpu is None:
        raise UserError(f"--profile {args.profile}: GPU '{prov.get('gpu_name')}' is not in the catalog; pass --gpu")
    rows, models = [], {}
    for row in data["rows"]:
        if "error" in row:
            continue
        stack = table_stack(row["backend"])
        model = models.setdefault(stack, default_model(gpu, stack))
        rows.append(compare_row(row, served_arch(row["backend"], get_arch(row["arch"])), model))
    out = {"gpu": gpu.name, "profile": args.profile, "profile_provenance": prov,
           "time_model": {s: m.source for s, m in models.items()}, "rows": rows, "totals": totals(rows)}
    if args.json:
        print_json(out)
        return 0
    for r in rows:
        print_table(f"{r['arch']} {r['phase']} b={r['b']} {'p' if r['phase'] == 'prefill' else 'c'}={r['size']}: "
                    f"event {fmt_s(r['event_s'])}, kernels {fmt_s(r['kernels_s'])}, between kernels "
                    f"{fmt_s(r['between_kernels_s'])} ({r['kernel_count']} kernels)",
                    ["class", "simulated", "profiled", "sim/prof", "sim kernels", "prof kernels"],
                    [[c, fmt_s(v["simulated_s"]), fmt_s(v["profiled_s"]),
                      f"{v['simulated_s'] / v['profiled_s']:.2f}" if v["profiled_s"] else "-",
                      f"{v['simulated_count']:g}", str(v["profiled_count"])] for c, v in r["classes"].items()])
    print_table("All rows (in graph: each kernel of a replayed graph with its share of the time between kernels)",
                ["class", "simulated", "profiled", "difference", "profiled in graph", "difference"],
                [[c, fmt_s(t["simulated_s"]), fmt_s(t["profiled_s"]),
                  f"{t['rel_diff']:+.1%}" if t["rel_diff"] is not None else "-", fmt_s(t["profiled_in_graph_s"]),
                  f"{t['rel_diff_in_graph']:+.1%}" if t["rel_diff_in_graph"] is not None else "-"]
                 for c, t in out["totals"].items()])
    print_lines([f"time model: {', '.join(f'{s}: {m}' for s, m in out['time_model'].items())} (no fit)"])
    return 0
