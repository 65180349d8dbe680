"""`idealrt models`: the architecture catalog, one row per model (or JSON with every ArchSpec field)."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from idealrt.output import print_json, print_table


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt models`."""
    parser.add_argument("--json", action="store_true", help="print every field of every spec as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `idealrt models`; returns the exit code (bad input raises UserError)."""
    from simulator.catalog import ARCHS

    if args.json:
        print_json([asdict(a) | {"params": a.param_count(), "active_params": a.param_count(active=True)}
                    for a in ARCHS.values()])
        return 0
    rows = []
    for a in ARCHS.values():
        ffn = f"{a.ffn_kind} {a.expert_ffn_hidden if a.is_moe else a.ffn_hidden}"
        experts = f"{a.experts_per_token}/{a.n_experts}" + (f"+{a.n_shared_experts}" if a.n_shared_experts else "")
        rows.append([a.name, f"{a.param_count() / 1e9:.2f}", f"{a.param_count(active=True) / 1e9:.2f}",
                     a.n_layers, a.hidden, f"{a.n_heads}/{a.n_kv_heads}", a.head_dim, ffn,
                     experts if a.is_moe else "-", a.vocab, a.max_positions])
    print_table("Architecture catalog ('idealrt predict --model NAME')",
                ["name", "params B", "active B", "layers", "hidden", "heads/kv", "head dim", "ffn",
                 "experts k/E", "vocab", "max positions"], rows)
    return 0
